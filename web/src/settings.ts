/**
 * What the page fine-tunes, and with which settings: a few tasks of the bundled suite
 * (data/suite/<task>/), MoR on the MLP projections as `mor demo` does, with a short run that
 * finishes in about a minute in a browser tab on a 2-core machine.
 */

/** Suite tasks shipped with the page (short prompts and answers: quick to train and score). */
export const PAGE_TASKS = ['antonym', 'name_gender', 'rhyme', 'syllables'] as const;

/** One fine-tuning run of the page (all fields plain JSON: they cross the worker boundary). */
export interface RunSettings {
  /** Optimizer updates. */
  steps: number;
  batchSize: number;
  /** Training sequences are truncated to this many tokens. */
  maxLength: number;
  /** Peak learning rate (cosine decay after `warmup` linear updates). */
  lr: number;
  warmup: number;
  /** MoR rank and number of experts. */
  r: number;
  numExperts: number;
  targetModules: string[];
  /** Adapter init and data order. */
  seed: number;
  /** Test items per task scored before and after (the first ones). */
  evalItemsPerTask: number;
  /** Training examples per task for the routing heatmap. */
  routingExamplesPerTask: number;
}

export const PAGE_DEFAULTS: RunSettings = {
  steps: 150,
  batchSize: 8,
  maxLength: 64,
  lr: 5e-3,
  warmup: 10,
  r: 8,
  numExperts: 8,
  targetModules: ['gate_proj', 'up_proj', 'down_proj'],
  seed: 0,
  evalItemsPerTask: 50,
  routingExamplesPerTask: 16,
};

/** The fixed prompt whose logits the page publishes, to check a downloaded adapter elsewhere. */
export const PROBE_PROMPT = 'Is Lynette a female or a male name?';
