/**
 * Adapter configurations: one zod schema per adapter kind, joined in a discriminated union on
 * `kind`. Parsed once at the boundary ({@link parseAdapterConfig}); inside, code trusts the
 * types. Field names are the camelCase forms of PEFT's `LoraConfig` fields (`r`, `alpha` for
 * `lora_alpha`, `dropout` for `lora_dropout`, `useRslora`, ...); the PEFT `adapter_config.json`
 * mapping lives in `peftConfig.ts`.
 *
 * Every **(option)** of docs/mor.md is a field here:
 * `omegaInit`/`omegaNoiseStd`, `routerBias`, `routerInitStd`, `dropout`, `routerMode`.
 */
import { z } from 'zod';
import { UserError } from '../errors.ts';

/** The adapter kinds the project compares. */
export const ADAPTER_KINDS = ['lora', 'dora', 'moelora', 'mor', 'full'] as const;
export type AdapterKind = (typeof ADAPTER_KINDS)[number];

/**
 * Which modules to adapt: a list of name suffixes (`["q_proj", "v_proj"]`, matched against
 * the last dotted components as PEFT does), a regex string (full match against the module
 * path), or `"all-linear"` (every Linear except `lm_head`).
 */
const targetModules = z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]);

/** Fields every adapter kind shares (PEFT's selection and bookkeeping fields). */
const common = {
  /** See {@link targetModules}. Default per kind (LoRA/DoRA: `q_proj`,`v_proj` as PEFT for LLaMA; MoR/MoELoRA: the FFN projections as the MoR paper; full: `all-linear`). */
  targetModules: targetModules.optional(),
  /** Modules never adapted: suffix list or full-match regex (PEFT `exclude_modules`). */
  excludeModules: z.union([z.array(z.string().min(1)), z.string().min(1)]).optional(),
  /** Only adapt layers with these indices (the number after `layers.`); PEFT `layers_to_transform`. */
  layersToTransform: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).optional(),
  /** Name of the layer list (`layers`, `h`) used with `layersToTransform`; default: any. */
  layersPattern: z.union([z.string().min(1), z.array(z.string().min(1))]).optional(),
  /** Other modules made trainable and saved whole (e.g. `lm_head`), per adapter. */
  modulesToSave: z.array(z.string().min(1)).optional(),
  /** Recorded in adapter_config.json (`base_model_name_or_path`). */
  baseModelNameOrPath: z.string().optional(),
  /** Seed of the initialisation (each layer derives its own stream from it and its path). */
  seed: z.number().int().default(0),
};

/** Low-rank options shared by LoRA, DoRA, MoR and MoELoRA. */
const lowRank = {
  /** Rank (per expert for MoELoRA). */
  r: z.number().int().positive().default(8),
  /** LoRA alpha; scaling `s = alpha / r` (or `alpha / sqrt(r)` with `useRslora`). */
  alpha: z.number().positive().default(8),
  /** Dropout probability on the adapter input (only while training). */
  dropout: z.number().min(0).lt(1).default(0),
  /** Rank-stabilised scaling `alpha / sqrt(r)`. */
  useRslora: z.boolean().default(false),
  /**
   * `"default"` (PEFT `true`): A kaiming-uniform(a=sqrt(5)), B zeros, so the adapter starts as
   * a no-op; `"gaussian"`: A ~ N(0, 1/r), B zeros; `false`: A and B both random (tests only).
   */
  init: z.union([z.literal('default'), z.literal('gaussian'), z.literal(false)]).default('default'),
  /** Per-module rank overrides: key = module-name regex matched like PEFT (`(.*\.)?(key)$`). */
  rankPattern: z.record(z.string(), z.number().int().positive()).default({}),
  /** Per-module alpha overrides, matched like `rankPattern`. */
  alphaPattern: z.record(z.string(), z.number().positive()).default({}),
  /** PEFT `bias`: which base-layer biases become trainable: none, all, or those of adapted layers. */
  bias: z.enum(['none', 'all', 'lora_only']).default('none'),
};

export const loraConfigSchema = z
  .object({
    kind: z.literal('lora'),
    ...common,
    ...lowRank,
    /** Add a trainable bias to `lora_B` (PEFT `lora_bias`); it is scaled by `s` like the product. */
    loraBias: z.boolean().default(false),
  })
  .strict();

export const doraConfigSchema = z
  .object({
    kind: z.literal('dora'),
    ...common,
    ...lowRank,
  })
  .strict();

/** Router options of the routed adapters (MoR, MoELoRA). */
const router = {
  /** Number of experts N. */
  numExperts: z.number().int().positive().default(8),
  /** Router `W_g` [N, d_in] init: normal with this std **(choice)**. */
  routerInitStd: z.number().nonnegative().default(0.02),
  /** Router bias [N] **(choice)**; the paper's router has none. */
  routerBias: z.boolean().default(false),
  /** Coefficient of the load-balance loss `N * sum_i f_i P_i` pushed to `ctx.auxLosses`. */
  loadBalanceCoef: z.number().nonnegative().default(0.01),
};

export const morConfigSchema = z
  .object({
    kind: z.literal('mor'),
    ...common,
    ...lowRank,
    ...router,
    /**
     * `softmax` (default, the paper's best): learned dense router; `uniform`: mean of the
     * experts (g = 1/N, no router parameters trained); `balanced`: softmax plus the
     * load-balance loss (coefficient `loadBalanceCoef`).
     */
    routerMode: z.enum(['softmax', 'uniform', 'balanced']).default('softmax'),
    /** Omega_A / Omega_B init **(choice)**: all ones, or ones + N(0, omegaNoiseStd). */
    omegaInit: z.enum(['ones', 'ones+noise']).default('ones'),
    /** Std of the noise with `omegaInit: "ones+noise"`. */
    omegaNoiseStd: z.number().nonnegative().default(0.01),
  })
  .strict();

export const moeLoraConfigSchema = z
  .object({
    kind: z.literal('moelora'),
    ...common,
    ...lowRank,
    ...router,
    /** Keep only the top-k experts per token and renormalise; absent = dense softmax. */
    topK: z.number().int().positive().optional(),
    /** Load-balance loss on/off (coefficient `loadBalanceCoef`). */
    loadBalance: z.boolean().default(false),
  })
  .strict();

export const fullConfigSchema = z
  .object({
    kind: z.literal('full'),
    ...common,
    /** Also train the biases of the selected modules (when they have one). */
    trainBias: z.boolean().default(false),
  })
  .strict();

/** Every adapter config, discriminated on `kind`. */
export const adapterConfigSchema = z.discriminatedUnion('kind', [
  loraConfigSchema,
  doraConfigSchema,
  moeLoraConfigSchema,
  morConfigSchema,
  fullConfigSchema,
]);

export type LoraConfig = z.infer<typeof loraConfigSchema>;
export type DoraConfig = z.infer<typeof doraConfigSchema>;
export type MorConfig = z.infer<typeof morConfigSchema>;
export type MoeLoraConfig = z.infer<typeof moeLoraConfigSchema>;
export type FullConfig = z.infer<typeof fullConfigSchema>;
/** A parsed (defaults filled) adapter config. */
export type AdapterConfig = z.infer<typeof adapterConfigSchema>;
/** What callers may pass: defaults optional. */
export type AdapterConfigInput = z.input<typeof adapterConfigSchema>;
/** Configs with a low-rank core (everything but `full`). */
export type LowRankConfig = LoraConfig | DoraConfig | MorConfig | MoeLoraConfig;

/** Default `targetModules` per kind when the config gives none. */
export function defaultTargetModules(kind: AdapterKind): string[] | string {
  switch (kind) {
    case 'lora':
    case 'dora':
      return ['q_proj', 'v_proj'];
    case 'mor':
    case 'moelora':
      return ['gate_proj', 'up_proj', 'down_proj'];
    case 'full':
      return 'all-linear';
  }
}

/**
 * Validate and fill defaults. Throws a {@link UserError} naming the field (and `where`, e.g.
 * a file name) on unknown keys, wrong types or out-of-range values.
 */
export function parseAdapterConfig(input: unknown, where = 'adapter config'): AdapterConfig {
  const res = adapterConfigSchema.safeParse(input);
  if (res.success) {
    const c = res.data;
    if (c.kind === 'moelora' && c.topK !== undefined && c.topK > c.numExperts) {
      throw new UserError(`${where}: topK (${c.topK}) must be <= numExperts (${c.numExperts})`);
    }
    for (const p of [c.targetModules, c.excludeModules]) {
      if (typeof p === 'string' && p !== 'all-linear') checkRegex(p, where);
    }
    if (c.kind !== 'full') for (const k of [...Object.keys(c.rankPattern), ...Object.keys(c.alphaPattern)]) checkRegex(k, where);
    return c;
  }
  throw new UserError(`${where}: ${formatZodIssue(res.error.issues[0])}`);
}

function checkRegex(p: string, where: string): void {
  try {
    new RegExp(p);
  } catch (e) {
    throw new UserError(`${where}: invalid regex "${p}": ${(e as Error).message}`);
  }
}

/** One zod issue as `field: message` (unknown keys named explicitly). */
export function formatZodIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    return `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${path ? `${path}.` : ''}${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_union' && path === 'kind') {
    return `kind must be one of ${ADAPTER_KINDS.join(', ')}`;
  }
  return `${path || '(root)'}: ${issue.message}`;
}

/** LoRA scaling `alpha / r` (or `alpha / sqrt(r)` with rsLoRA). */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}
