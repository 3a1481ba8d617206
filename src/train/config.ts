/**
 * The configuration of one training run (`mor train --config FILE`), validated once with zod.
 *
 * The file is JSON or YAML and uses the same camelCase keys as the code (`gradAccumulation`,
 * `maxGradNorm`, ...); only files written for other tools (HF `config.json`, PEFT
 * `adapter_config.json`) use snake_case. Unknown keys are errors naming their path
 * (`config.yaml: data.0.wieght: unknown key`), so a typo never silently falls back to a default.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import YAML from 'yaml';
import { UserError } from '../errors.ts';
import { readTextFileStrict } from '../io/text.ts';
import { adapterConfigSchema, parseAdapterConfig } from '../adapters/config.ts';

/** One training (or eval) data file, mixed with the others by `weight`. */
export const DataFileSchema = z.strictObject({
  /** JSONL file (chat `messages`, `prompt`/`completion` or `text` records). */
  path: z.string().min(1),
  /** Relative sampling weight in the multi-task mix. Default 1. */
  weight: z.number().positive().default(1),
  /** Task name for records without a `task` field. Default: the file's base name. */
  task: z.string().min(1).optional(),
});
export type DataFile = z.infer<typeof DataFileSchema>;


export const TrainConfigSchema = z
  .strictObject({
    /** Base model directory (HF layout: config.json, *.safetensors, tokenizer.json). */
    model: z.string().min(1),
    /** Adapter to train (`kind: mor | lora | dora | moelora | full`, ...). */
    adapter: adapterConfigSchema,
    /** Training data files with mixing weights. */
    data: z.array(DataFileSchema).min(1),
    /** Evaluation data for the periodic eval loss (same formats as `data`). */
    evalData: z.array(DataFileSchema).optional(),
    /**
     * Benchmark files scored on the saved adapter when training completes, as `mor eval` does:
     * multiple choice (`{task, question, choices, answer}`: acc, acc_norm) or
     * `{prompt, completion}` (exact match). Results go to `<outDir>/eval/`.
     */
    finalEval: z.array(z.string().min(1)).optional(),
    /** Truncate sequences to this many tokens. Default 512. */
    maxLength: z.int().positive().default(512),
    /** Sequences per micro-batch. Default 4. */
    batchSize: z.int().positive().default(4),
    /**
     * Gradient checkpointing per decoder layer (keep each layer's input, recompute the layer in
     * the backward: less memory, one more forward). true: every layer; a number n: the last n
     * layers. `auto` (default): off when the size estimate says the activations fit the wasm
     * heap, else the fewest (last) layers that make them fit.
     */
    gradientCheckpointing: z.union([z.boolean(), z.literal('auto'), z.int().nonnegative()]).default('auto'),
    /** Rows of the output head per chunk of the loss (0: the full `[tokens, vocab]` logits). Default: 2^24 / vocab (at least 64). */
    lossChunkSize: z.int().nonnegative().optional(),
    /** Micro-batches per optimizer update. Default 1. */
    gradAccumulation: z.int().positive().default(1),
    /** Number of optimizer updates (give this or `epochs`). */
    steps: z.int().positive().optional(),
    /** Passes over the training data (converted to steps; give this or `steps`). */
    epochs: z.number().positive().optional(),
    /** Peak learning rate. Default 2e-4. */
    lr: z.number().positive().default(2e-4),
    /** Linear warmup updates. Default 0. */
    warmup: z.int().nonnegative().default(0),
    /** Decay after warmup. Default cosine. */
    schedule: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
    /** Final learning rate of the decay. Default 0. */
    minLr: z.number().nonnegative().default(0),
    /** AdamW decoupled weight decay (not applied to norms, biases, omegas). Default 0. */
    weightDecay: z.number().nonnegative().default(0),
    /** AdamW betas and epsilon. Defaults 0.9, 0.999, 1e-8. */
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    /** Clip the global gradient norm (0 disables). Default 1.0. */
    maxGradNorm: z.number().nonnegative().default(1),
    /** Run seed (data order, adapter init, dropout). Default 0. */
    seed: z.int().nonnegative().default(0),
    /** Output directory: adapter, checkpoints/, metrics.jsonl, plots. */
    outDir: z.string().min(1),
    /** Save a checkpoint every N updates. Default 100. */
    checkpointEvery: z.int().positive().default(100),
    /** Checkpoints kept. Default 3. */
    keepCheckpoints: z.int().positive().default(3),
    /** Evaluate every N updates (needs `evalData`). */
    evalEvery: z.int().positive().optional(),
    /** Log (metrics file, progress lines) every N updates. Default 10. */
    logEvery: z.int().positive().default(10),
  })
  .superRefine((c, ctx) => {
    if ((c.steps === undefined) === (c.epochs === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['steps'], message: 'give exactly one of "steps" or "epochs"' });
    }
    if (c.evalEvery !== undefined && !c.evalData) {
      ctx.addIssue({ code: 'custom', path: ['evalEvery'], message: 'needs "evalData"' });
    }
  });

/** A validated training config, defaults filled in. */
export type TrainConfig = z.output<typeof TrainConfigSchema>;
/** What a config file may contain (defaults optional). */
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

/** One line per zod issue, naming the key path: `data.0.weight: expected number`. */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .flatMap((i) => {
      const at = i.path.map(String).join('.');
      if (i.code === 'unrecognized_keys') {
        return i.keys.map((k) => `${at ? `${at}.` : ''}${k}: unknown key`);
      }
      return [`${at || '(root)'}: ${i.message}`];
    })
    .join('; ');
}

/** Validate a config object; `source` (a file name) prefixes the error message. */
export function parseTrainConfig(value: unknown, source = 'config'): TrainConfig {
  const r = TrainConfigSchema.safeParse(value);
  if (!r.success) throw new UserError(`${source}: ${formatZodIssues(r.error)}`);
  // The adapter's cross-field checks (topK <= numExperts, regexes) live with its schema.
  parseAdapterConfig(r.data.adapter, `${source}: adapter`);
  return r.data;
}

/** Read a JSON or YAML config file (by content: YAML is a superset of JSON) without validating it. */
export function readConfigFile(file: string): unknown {
  const text = readTextFileStrict(file);
  if (file.endsWith('.json')) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new UserError(`${file}: invalid JSON (${(e as Error).message})`);
    }
  }
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const line = err.linePos?.[0]?.line;
    throw new UserError(`${file}${line ? `:${line}` : ''}: invalid YAML (${err.message.split('\n')[0]})`);
  }
  return doc.toJS();
}

/** Read and validate a training config file; `overrides` (CLI flags) win over the file. */
export function loadTrainConfig(file: string, overrides: Record<string, unknown> = {}): TrainConfig {
  const raw = readConfigFile(file);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UserError(`${file}: expected a mapping of config keys at the top level`);
  }
  const merged: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) merged[k] = v;
  return parseTrainConfig(merged, file);
}
