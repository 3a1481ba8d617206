/**
 * The configuration of `mor experiment --config FILE` (YAML or JSON, camelCase keys like the
 * training config), validated once with zod; unknown keys are errors naming their path.
 *
 * ```yaml
 * name: paper
 * model: models/base
 * trainData: data/suite/train.mix.jsonl
 * evalData: data/suite/test.mc.jsonl
 * seeds: [0, 1, 2]
 * train: { steps: 300, batchSize: 8, maxLength: 128, lr: 1.0e-3 }
 * methods:
 *   - { name: mor, adapter: { kind: mor, r: 8, numExperts: 8 } }
 *   - { name: lora, adapter: { kind: lora, targetModules: [gate_proj, up_proj, down_proj] }, matchBudget: mor }
 * ablations: { of: mor, experts: [2, 4, 8, 12], ranks: [8, 16, 32, 64], routers: [softmax, uniform, balanced] }
 * staticRouting: { of: mor }
 * ```
 *
 * The protocol of issue 16 (experiments/verdict.yaml) adds optional sections; without them a
 * config plans exactly the runs (and run ids) it planned before:
 *
 * ```yaml
 * selectData: data/suite/validation.mc.jsonl   # rates are chosen here, reported on evalData
 * lrGrid: [1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2]     # every method and ablation point (seed selectSeed)
 * methods:
 *   - { name: full, adapter: { kind: full }, lrGrid: [1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3] }
 * heldOut: { groups: { knowledge: [definition, hypernym], reasoning: [arithmetic] } }
 * intervals: { of: mor }                        # paired bootstrap of mor minus each method
 * ```
 */
import { z } from 'zod';
import { UserError } from '../errors.ts';
import { ADAPTER_KINDS, adapterConfigSchema, type AdapterKind } from '../adapters/config.ts';
import { adapterKind } from '../adapters/registry.ts';
import { formatZodIssues, readConfigFile } from '../train/config.ts';

/** Training hyper-parameters shared by the runs (each method may override some). */
export const TrainSettingsSchema = z.strictObject({
  /** Optimizer updates per run. */
  steps: z.int().positive(),
  /** Sequences per update. Default 8. */
  batchSize: z.int().positive().default(8),
  /** Truncate training sequences to this many tokens. Default 128. */
  maxLength: z.int().min(2).default(128),
  /** Peak learning rate. Default 1e-3. */
  lr: z.number().positive().default(1e-3),
  /** Linear warmup updates. Default 0. */
  warmup: z.int().nonnegative().default(0),
  /** Decay after warmup. Default cosine. */
  schedule: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
  /** AdamW weight decay. Default 0. */
  weightDecay: z.number().nonnegative().default(0),
  /** Global gradient-norm clip (0: none). Default 1. */
  maxGradNorm: z.number().nonnegative().default(1),
  /** As `mor train`'s: recompute each layer (true) or the last n in the backward; `auto`: as many as the activations need. */
  gradientCheckpointing: z.union([z.boolean(), z.literal('auto'), z.int().nonnegative()]).default('auto'),
  /** As `mor train`'s: rows of the output head per loss chunk (0: full logits); default `2^24 / vocab`. */
  lossChunkSize: z.int().nonnegative().optional(),
});
export type TrainSettings = z.output<typeof TrainSettingsSchema>;

/** Per-method overrides of the shared training settings. */
const TrainOverridesSchema = z.strictObject({
  steps: z.int().positive().optional(),
  lr: z.number().positive().optional(),
  warmup: z.int().nonnegative().optional(),
  weightDecay: z.number().nonnegative().optional(),
});

/** Learning rates to try, each positive, no repeats. */
const LrGridSchema = z
  .array(z.number().positive())
  .min(1)
  .refine((xs) => new Set(xs).size === xs.length, 'repeated learning rate');

/** One row of the comparison table. */
export const MethodSchema = z.strictObject({
  /** Row label and run-id part (`[a-z0-9_-]+`). */
  name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only'),
  /**
   * The adapter (same fields as `mor train`'s `adapter`), kept raw here so that the runner can
   * tell a given `alpha` from a default one (see `alphaRatio`) and fill `r` for `matchBudget`.
   */
  adapter: z.looseObject({ kind: z.enum(ADAPTER_KINDS as [AdapterKind, ...AdapterKind[]]) }),
  /**
   * Choose this method's rank (per-expert rank for MoELoRA) so that its trainable-parameter
   * count (docs/mor.md formulas) is closest to the named method's: the budget matching.
   */
  matchBudget: z.string().optional(),
  /** Training-setting overrides (e.g. a lower `lr` for full fine-tuning). */
  train: TrainOverridesSchema.optional(),
  /** This method's learning-rate grid (replaces the top-level `lrGrid`); one value: a fixed rate, no grid runs. */
  lrGrid: LrGridSchema.optional(),
});
export type MethodSpec = z.output<typeof MethodSchema>;

const ExperimentConfigBase = z
  .strictObject({
    /** Report name (the default output folder is `reports/<name>`). */
    name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only'),
    /** Free text shown at the top of the report. */
    description: z.string().optional(),
    /** Base model directory (HF layout with tokenizer files). */
    model: z.string().min(1),
    /** Training JSONL (chat records with a `task` field), e.g. the suite's `train.mix.jsonl`. */
    trainData: z.string().min(1),
    /** Multiple-choice JSONL scored 0-shot (`{task, question, choices, answer}`). */
    evalData: z.string().min(1),
    /**
     * Multiple-choice JSONL on which learning rates are chosen (the validation split, e.g.
     * `data/suite/validation.mc.jsonl`); required with an `lrGrid`, and not `evalData`.
     */
    selectData: z.string().min(1).optional(),
    /**
     * Learning rates tried for every method and ablation point (a method's own `lrGrid` replaces
     * it): one run per rate at `selectSeed`, scored on `selectData`; the best average accuracy
     * wins (ties: the smaller rate) and the comparison's runs use it. Absent: `train.lr`.
     */
    lrGrid: LrGridSchema.optional(),
    /** Seed of the learning-rate grid runs. Default 0. */
    selectSeed: z.int().nonnegative().default(0),
    /** Only these tasks (training and evaluation). Default: all. */
    tasks: z.array(z.string().min(1)).min(1).optional(),
    /** Evaluate at most this many items per task (the first ones of the file). */
    evalLimitPerTask: z.int().positive().optional(),
    /** Sequences per evaluation forward. Default 16. */
    evalBatchSize: z.int().positive().default(16),
    /** Longest scored evaluation sequence (contexts left-truncated). Default 256. */
    evalMaxLength: z.int().min(2).default(256),
    /** Seeds of the main comparison (>= 3 for mean ± std). */
    seeds: z.array(z.int().nonnegative()).min(1),
    /** LoRA alpha as a multiple of r when an adapter gives no `alpha` (s = alpha / r constant). Default 2. */
    alphaRatio: z.number().positive().default(2),
    train: TrainSettingsSchema,
    /** The comparison's rows. */
    methods: z.array(MethodSchema).min(1),
    /** The paper's ablations, varying one field of a routed method (MoR in the paper). */
    ablations: z
      .strictObject({
        /** The method (by name) whose config is varied; its kind must route (each point must be a valid config of it). */
        of: z.string(),
        /** Seeds of each ablation point. Default: the first main seed. */
        seeds: z.array(z.int().nonnegative()).min(1).optional(),
        /** Numbers of experts N. */
        experts: z.array(z.int().positive()).default([]),
        /** Ranks r. */
        ranks: z.array(z.int().positive()).default([]),
        /** Router modes. */
        routers: z.array(z.enum(['softmax', 'uniform', 'balanced'])).default([]),
      })
      .optional(),
    /** The static-routing merge per task (MoR's in the paper), measured on the runs of method `of`, whose kind must merge under a fixed routing vector. */
    staticRouting: z
      .strictObject({
        of: z.string(),
        /** Seeds whose runs are merged and re-evaluated. Default: the first main seed. */
        seeds: z.array(z.int().nonnegative()).min(1).optional(),
        /** Training examples per task averaged into its routing vector. Default 64. */
        examplesPerTask: z.int().positive().default(64),
      })
      .optional(),
    /**
     * Held-out tasks (zero-shot transfer): each group in turn is left out of training (the runs
     * train on the other tasks) and evaluated on its test items; every method, at its chosen rate.
     */
    heldOut: z
      .strictObject({
        /** Group name -> tasks left out together (e.g. one suite category). */
        groups: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only'), z.array(z.string().min(1)).min(1)),
        /** Methods (by name) run on each group. Default: all. */
        methods: z.array(z.string()).min(1).optional(),
        /** Seeds of each held-out run. Default: the first main seed. */
        seeds: z.array(z.int().nonnegative()).min(1).optional(),
      })
      .optional(),
    /**
     * Paired bootstrap confidence intervals of method `of` minus every other main method (test
     * items and seeds resampled together). Default: `of` = the static-routing or ablated method.
     */
    intervals: z
      .strictObject({
        of: z.string().optional(),
        /** Bootstrap resamples. Default 2000. */
        resamples: z.int().min(100).default(2000),
        /** Seed of the resampling (the report is reproducible). Default 0. */
        seed: z.int().nonnegative().default(0),
        /** Coverage of the percentile interval. Default 0.95. */
        level: z.number().gt(0).lt(1).default(0.95),
      })
      .default({ resamples: 2000, seed: 0, level: 0.95 }),
    /** Generation latency: greedy tokens generated per prompt, and prompts. Defaults 16, 4. */
    latency: z.strictObject({ newTokens: z.int().positive().default(16), prompts: z.int().positive().default(4) }).default({ newTokens: 16, prompts: 4 }),
  });

export const ExperimentConfigSchema = ExperimentConfigBase
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.methods.forEach((m, i) => {
      const a = adapterConfigSchema.safeParse(m.adapter);
      if (!a.success) {
        for (const issue of a.error.issues) ctx.addIssue({ ...issue, path: ['methods', i, 'adapter', ...issue.path] } as never);
      }
      if (names.has(m.name)) ctx.addIssue({ code: 'custom', path: ['methods', i, 'name'], message: `duplicate method name "${m.name}"` });
      names.add(m.name);
    });
    c.methods.forEach((m, i) => {
      if (m.matchBudget === undefined) return;
      const ref = c.methods.find((x) => x.name === m.matchBudget);
      if (!ref) ctx.addIssue({ code: 'custom', path: ['methods', i, 'matchBudget'], message: `no method named "${m.matchBudget}"` });
      else if (ref.matchBudget !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['methods', i, 'matchBudget'], message: `"${m.matchBudget}" is itself budget-matched; match a fixed method` });
      }
      if (!adapterKind(m.adapter.kind).lowRank) {
        ctx.addIssue({ code: 'custom', path: ['methods', i, 'matchBudget'], message: `a ${m.adapter.kind} adapter has no rank to match` });
      }
    });
    checkProtocol(c, ctx);
    for (const key of ['ablations', 'staticRouting'] as const) {
      const of = c[key]?.of;
      if (of === undefined) continue;
      const m = c.methods.find((x) => x.name === of);
      if (!m) {
        ctx.addIssue({ code: 'custom', path: [key, 'of'], message: `no method named "${of}"` });
        continue;
      }
      const parsed = adapterConfigSchema.safeParse(m.adapter);
      if (!parsed.success) continue; // reported under methods
      const def = adapterKind(parsed.data.kind);
      if (key === 'staticRouting' && def.merge !== 'fixedRouting') {
        ctx.addIssue({ code: 'custom', path: [key, 'of'], message: `"${of}" is a ${def.label} method, which does not merge under a fixed routing vector` });
      }
      if (key === 'ablations') {
        if (!def.routes(parsed.data)) {
          ctx.addIssue({ code: 'custom', path: [key, 'of'], message: `"${of}" is a ${def.label} method, which does not route tokens to experts` });
          continue;
        }
        checkAblationPoints(c.ablations, m.adapter, def.label, ctx);
      }
    }
  });

/** The learning-rate grid of a method: its own, else the config's; undefined: a fixed `train.lr`. */
export function lrGridOf(c: { lrGrid?: number[] }, m: { lrGrid?: number[] }): number[] | undefined {
  return m.lrGrid ?? c.lrGrid;
}

/** Cross-field checks of the issue-16 sections: rate selection, held-out groups, intervals. */
function checkProtocol(c: z.output<typeof ExperimentConfigBase>, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
  const gridded = c.methods.some((m) => (lrGridOf(c, m)?.length ?? 0) > 1);
  if (gridded && c.selectData === undefined) issue(['selectData'], 'required with an lrGrid (rates are chosen on the validation split)');
  if (c.selectData !== undefined && c.selectData === c.evalData) issue(['selectData'], 'must differ from evalData (rates are chosen on validation items, reported on test items)');
  c.methods.forEach((m, i) => {
    if (lrGridOf(c, m) !== undefined && m.train?.lr !== undefined) {
      issue(['methods', i, 'train', 'lr'], 'conflicts with lrGrid (the rate is chosen from the grid); give the method lrGrid: [rate] for a fixed rate');
    }
  });
  const names = new Set(c.methods.map((m) => m.name));
  if (c.intervals.of !== undefined && !names.has(c.intervals.of)) issue(['intervals', 'of'], `no method named "${c.intervals.of}"`);
  const h = c.heldOut;
  if (!h) return;
  const groups = Object.entries(h.groups);
  if (groups.length === 0) issue(['heldOut', 'groups'], 'needs at least one group');
  const seen = new Map<string, string>();
  for (const [g, tasks] of groups) {
    for (const t of tasks) {
      if (seen.has(t)) issue(['heldOut', 'groups', g], `task "${t}" is also in group "${seen.get(t)}"`);
      seen.set(t, g);
      if (c.tasks && !c.tasks.includes(t)) issue(['heldOut', 'groups', g], `task "${t}" is not in tasks`);
    }
    if (c.tasks && c.tasks.every((t) => tasks.includes(t))) issue(['heldOut', 'groups', g], 'leaves no task to train on');
  }
  h.methods?.forEach((m, i) => {
    if (!names.has(m)) issue(['heldOut', 'methods', i], `no method named "${m}"`);
  });
}

/** The adapter field each ablation group varies. */
const ABLATED_FIELDS = { experts: 'numExperts', ranks: 'r', routers: 'routerMode' } as const;

/** Every ablation point must be a valid config of the ablated method's kind (e.g. MoR alone has router modes). */
function checkAblationPoints(
  ab: { experts: number[]; ranks: number[]; routers: string[] } | undefined,
  adapter: unknown,
  label: string,
  ctx: z.RefinementCtx,
): void {
  if (!ab) return;
  for (const group of ['experts', 'ranks', 'routers'] as const) {
    const field = ABLATED_FIELDS[group];
    for (const value of ab[group]) {
      const r = adapterConfigSchema.safeParse({ ...(adapter as object), [field]: value });
      if (r.success) continue;
      ctx.addIssue({ code: 'custom', path: ['ablations', group], message: `a ${label} adapter cannot take ${field} ${JSON.stringify(value)}: ${formatZodIssues(r.error)}` });
      break;
    }
  }
}

/** A validated experiment config, defaults filled in. */
export type ExperimentConfig = z.output<typeof ExperimentConfigSchema>;
export type ExperimentConfigInput = z.input<typeof ExperimentConfigSchema>;

/** Validate an experiment config object; `source` (a file name) prefixes errors. */
export function parseExperimentConfig(value: unknown, source = 'experiment config'): ExperimentConfig {
  const r = ExperimentConfigSchema.safeParse(value);
  if (!r.success) throw new UserError(`${source}: ${formatZodIssues(r.error)}`);
  return r.data;
}

/** Read and validate an experiment config file (YAML or JSON). */
export function loadExperimentConfig(file: string): ExperimentConfig {
  return parseExperimentConfig(readConfigFile(file), file);
}
