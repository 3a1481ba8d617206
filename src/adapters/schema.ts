/**
 * Config pieces shared by the adapter kinds: the zod field sets (selection fields of every
 * kind, low-rank options, router options), their PEFT field tables, and the per-layer spec of
 * the low-rank kinds. Each kind's module composes its schema from these.
 */
import { z } from 'zod';
import { UserError } from '../errors.ts';
import type { PeftField } from './kind.ts';

/**
 * Which modules to adapt: a list of name suffixes (`["q_proj", "v_proj"]`, matched against
 * the last dotted components as PEFT does), a regex string (full match against the module
 * path), or `"all-linear"` (every Linear except `lm_head`).
 */
const targetModules = z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]);

/** Fields every adapter kind shares (PEFT's selection and bookkeeping fields). */
export const commonFields = {
  /** See {@link targetModules}. Default per kind (the kind definition's `defaultTargets`). */
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

/** Low-rank options shared by the kinds with a rank `r`. */
export const lowRankFields = {
  /** Rank (per expert for kinds with independent experts). */
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

/** Router options of the routed kinds. */
export const routerFields = {
  /** Number of experts N. */
  numExperts: z.number().int().positive().default(8),
  /** Router `W_g` [N, d_in] init: normal with this std **(option)**. */
  routerInitStd: z.number().nonnegative().default(0.02),
  /** Router bias [N] **(option)**; the MoR paper's router has none. */
  routerBias: z.boolean().default(false),
  /** Coefficient of the load-balance loss `N * sum_i f_i P_i` pushed to `ctx.auxLosses`. */
  loadBalanceCoef: z.number().nonnegative().default(0.01),
};

/** The parsed low-rank fields. */
export interface LowRankOptions {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  init: 'default' | 'gaussian' | false;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  bias: 'none' | 'all' | 'lora_only';
  seed: number;
}

/** Low-rank per-layer settings every low-rank layer spec starts from. */
export interface LowRankLayerBase {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  init: 'default' | 'gaussian' | false;
  seed: number;
}

/** PEFT `get_pattern_key`: the first pattern key `k` with `^(.*\.)?(k)$` matching the path. */
export function patternValue<T>(patterns: Record<string, T>, key: string): T | undefined {
  for (const [k, v] of Object.entries(patterns)) if (new RegExp(`^(?:.*\\.)?(?:${k})$`).test(key)) return v;
  return undefined;
}

/** The low-rank part of a layer spec at `path` (rank / alpha patterns applied). */
export function lowRankLayerBase(config: LowRankOptions, path: string): LowRankLayerBase {
  const r = patternValue(config.rankPattern, path) ?? config.r;
  const alpha = patternValue(config.alphaPattern, path) ?? config.alpha;
  return { r, alpha, dropout: config.dropout, useRslora: config.useRslora, init: config.init, seed: config.seed };
}

/** LoRA scaling `alpha / r` (or `alpha / sqrt(r)` with rsLoRA). */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** PEFT fields of {@link lowRankFields} (`lora_alpha`, `init_lora_weights`, ...). */
export const lowRankPeftFields: PeftField[] = [
  { peft: 'alpha_pattern', field: 'alphaPattern' },
  { peft: 'bias', field: 'bias' },
  {
    peft: 'init_lora_weights',
    field: 'init',
    write: (v) => (v === 'default' ? true : v),
    read: (v, file) => {
      if (v === undefined) return undefined;
      if (v === true) return 'default';
      if (v === false || v === 'gaussian') return v;
      throw new UserError(`${file}: init_lora_weights=${JSON.stringify(v)} is not supported (true, false, "gaussian")`);
    },
  },
  { peft: 'lora_alpha', field: 'alpha' },
  { peft: 'lora_dropout', field: 'dropout' },
  { peft: 'r', field: 'r' },
  { peft: 'rank_pattern', field: 'rankPattern' },
  { peft: 'use_rslora', field: 'useRslora' },
];

/** `fan_in_fan_out` (Conv1D layout): accepted when false, refused when true. */
export const fanInFanOutField: PeftField = {
  peft: 'fan_in_fan_out',
  write: () => false,
  read: (v, file) => {
    if (v === true) throw new UserError(`${file}: fan_in_fan_out=true (Conv1D/GPT-2 layout) is not supported`);
    return undefined;
  },
};

/** PEFT fields of {@link routerFields}. */
export const routerPeftFields: PeftField[] = [
  { peft: 'load_balance_coef', field: 'loadBalanceCoef' },
  { peft: 'num_experts', field: 'numExperts' },
  { peft: 'router_bias', field: 'routerBias' },
  { peft: 'router_init_std', field: 'routerInitStd' },
];

/** `lora_bias` on a kind other than plain LoRA: written false, refused when true. */
export const loraBiasRefused: PeftField = {
  peft: 'lora_bias',
  write: () => false,
  read: (v, file) => {
    if (v === true) throw new UserError(`${file}: lora_bias is only supported for plain LoRA`);
    return undefined;
  },
};

/** A config's PEFT `bias` mode (`none` for kinds without one). */
export function biasMode(config: object): LowRankOptions['bias'] {
  return 'bias' in config ? (config.bias as LowRankOptions['bias']) : 'none';
}
