/**
 * LLaMA-family model configuration: the Hugging Face `config.json` (snake_case) is validated
 * with zod and converted to camelCase here, once. Covers `llama` (LLaMA 1/2/3, TinyLlama,
 * SmolLM), `mistral` and `qwen2`, which share one graph (Qwen2 adds q/k/v biases).
 */
import { z } from 'zod';
import { UserError } from '../../errors.ts';

/** Architectures built by {@link LlamaForCausalLM}. */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/** HF class name written to `architectures` for each model type. */
export const ARCHITECTURE_NAMES: Record<ModelType, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

/**
 * Rotary-embedding frequency scaling, one member per transformers `rope_type` we implement
 * (`default` is the absence of scaling). Values are those of the config file; defaults that
 * transformers fills in at run time (yarn's attention factor and betas) are computed in rope.ts.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      /** NTK-aware: inv_freq recomputed from the sequence length once it passes maxPositionEmbeddings. */
      type: 'dynamic';
      factor: number;
    }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositionEmbeddings: number;
      /** Multiplies cos/sin; default from factor (and mscale / mscaleAllDim when both are set). */
      attentionFactor?: number;
      betaFast?: number;
      betaSlow?: number;
      mscale?: number;
      mscaleAllDim?: number;
      /** Round the correction range to whole dimensions (default true). */
      truncate?: boolean;
    };

/** Attention pattern of one decoder layer (transformers `layer_types`). */
export type LayerType = 'full_attention' | 'sliding_attention';

/**
 * Where config.json keeps rope settings: transformers 5 writes `rope_parameters: {rope_type,
 * rope_theta, ...}`, 4.x wrote top-level `rope_theta` plus `rope_scaling`. {@link toHfConfig}
 * writes the layout that was read, so a checkpoint stays readable by the transformers that made
 * it (4.x ignores `rope_parameters`); configs built in code get the transformers 5 layout.
 */
export type RopeLayout = 'rope_parameters' | 'rope_scaling';

/** A validated LLaMA-family configuration (camelCase). */
export interface LlamaConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Key/value heads (GQA); equals numAttentionHeads for plain multi-head attention. */
  numKeyValueHeads: number;
  /** Per-head dimension (defaults to hiddenSize / numAttentionHeads). */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  /** Layout of the rope fields in config.json (default `rope_parameters`, transformers 5). */
  ropeLayout?: RopeLayout;
  maxPositionEmbeddings: number;
  /** One entry per layer: sliding layers attend to the last {@link slidingWindow} positions only. */
  layerTypes: LayerType[];
  /** Window of the sliding layers (a query at q sees keys in (q - window, q]); set iff a layer slides. */
  slidingWindow?: number;
  /** When true, `lm_head` shares `model.embed_tokens.weight`. */
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections (Qwen2: always; LLaMA: `attention_bias`). */
  qkvBias: boolean;
  /** Bias on o_proj (LLaMA `attention_bias`; never for Qwen2/Mistral). */
  oBias: boolean;
  /** Bias on gate/up/down projections (LLaMA `mlp_bias`). */
  mlpBias: boolean;
  /** Std of the normal init used by {@link createRandomModel}. */
  initializerRange: number;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
  /** config.json keys we do not interpret, written back unchanged by {@link toHfConfig}. */
  extra: Record<string, unknown>;
}

const posInt = z.number().int().positive();

const hfConfigSchema = z
  .object({
    model_type: z.string(),
    vocab_size: posInt,
    hidden_size: posInt,
    intermediate_size: posInt,
    num_hidden_layers: posInt,
    num_attention_heads: posInt,
    num_key_value_heads: posInt.nullish(),
    head_dim: posInt.nullish(),
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().nullish(),
    rope_scaling: z.record(z.string(), z.unknown()).nullish(),
    rope_parameters: z.record(z.string(), z.unknown()).nullish(),
    original_max_position_embeddings: posInt.nullish(),
    max_position_embeddings: posInt.default(2048),
    tie_word_embeddings: z.boolean().default(false),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
    initializer_range: z.number().positive().default(0.02),
    bos_token_id: z.number().int().nullish(),
    eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
    pad_token_id: z.number().int().nullish(),
    hidden_act: z.literal('silu', { message: 'only "silu" is supported' }).optional(),
    sliding_window: posInt.nullish(),
    use_sliding_window: z.boolean().default(false),
    max_window_layers: z.number().int().nonnegative().default(28),
    layer_types: z.array(z.enum(['full_attention', 'sliding_attention'])).nullish(),
  })
  .passthrough();

/**
 * Unknown-field policy. Keys we do not interpret are kept in `extra` and written back unchanged:
 * that is right for bookkeeping (`dtype` / `torch_dtype`, `transformers_version`, `use_cache`,
 * `attention_dropout` (training-time dropout, which we do not apply), `pretraining_tp` (it only
 * split LLaMA 2's pretraining matmuls into slices with the same products; transformers 5 ignores
 * it), token ids, ...). It would be wrong for a field that changes the computation of a model we
 * would then run as plain LLaMA: those, gathered from the configs of transformers' LLaMA-like
 * families (Gemma 2, Granite, Cohere, OLMo, Phi, SmolLM3, Llama 4, quantized checkpoints), are
 * listed here with the values that leave the math unchanged; any other value is a UserError.
 */
const MATH_FIELDS: Record<string, { inert: (v: unknown) => boolean; what: string }> = {
  partial_rotary_factor: { inert: (v) => v == null || v === 1, what: 'rotary embeddings on part of the head' },
  attn_logit_softcapping: { inert: (v) => v == null, what: 'attention logit soft-capping' },
  final_logit_softcapping: { inert: (v) => v == null, what: 'final logit soft-capping' },
  query_pre_attn_scalar: { inert: (v) => v == null, what: 'a custom attention scale' },
  attention_multiplier: { inert: (v) => v == null, what: 'a custom attention scale' },
  embedding_multiplier: { inert: (v) => v == null || v === 1, what: 'scaled embeddings' },
  residual_multiplier: { inert: (v) => v == null || v === 1, what: 'scaled residuals' },
  logits_scaling: { inert: (v) => v == null || v === 1, what: 'scaled logits' },
  logit_scale: { inert: (v) => v == null || v === 1, what: 'scaled logits' },
  use_qk_norm: { inert: (v) => v == null || v === false, what: 'query/key normalisation' },
  qk_layernorm: { inert: (v) => v == null || v === false, what: 'query/key normalisation' },
  clip_qkv: { inert: (v) => v == null, what: 'clipped q/k/v activations' },
  no_rope_layers: { inert: (v) => v == null || (Array.isArray(v) && v.every((x) => x === 1)), what: 'layers without rotary embeddings' },
  no_rope_layer_interval: { inert: (v) => v == null || v === 0, what: 'layers without rotary embeddings' },
  attention_chunk_size: { inert: (v) => v == null, what: 'chunked attention' },
  sliding_window_pattern: { inert: (v) => v == null, what: 'a sliding-window pattern (use layer_types)' },
  use_bidirectional_attention: { inert: (v) => v == null || v === false, what: 'bidirectional attention' },
  quantization_config: { inert: (v) => v == null, what: 'quantized weights' },
};

/** Keys read into typed fields (the others go to `extra`); per model type, as transformers reads them. */
const CONSUMED_COMMON = [
  'model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'rope_parameters',
  'max_position_embeddings', 'tie_word_embeddings', 'attention_bias', 'mlp_bias', 'initializer_range',
  'bos_token_id', 'eos_token_id', 'pad_token_id', 'architectures', 'hidden_act',
];
// Qwen2 keeps `use_sliding_window` / `sliding_window` / `max_window_layers` in `extra` (written back
// as read; only layer_types, always written, decides); LLaMA has no sliding window in
// transformers, so there these keys are inert bookkeeping.
const CONSUMED: Record<ModelType, Set<string>> = {
  llama: new Set(CONSUMED_COMMON),
  mistral: new Set([...CONSUMED_COMMON, 'sliding_window']),
  qwen2: new Set([...CONSUMED_COMMON, 'layer_types']),
};

/**
 * Validate a parsed HF `config.json` and convert it to a {@link LlamaConfig}.
 * @param source file name used in error messages
 * @throws UserError naming the field, or the unsupported `model_type`
 */
export function parseHfConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${source}: expected a JSON object`);
  }
  const raw = json as Record<string, unknown>;
  const mt = raw.model_type;
  if (typeof mt !== 'string') throw new UserError(`${source}: missing "model_type"`);
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(mt)) {
    throw new UserError(
      `${source}: unsupported model_type "${mt}" (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
    );
  }
  checkMathFields(raw, source, '');
  const r = hfConfigSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(`${source}: field "${issue.path.join('.')}": ${issue.message}`);
  }
  const c = r.data;
  const modelType = mt as ModelType;
  const numKeyValueHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKeyValueHeads !== 0) {
    throw new UserError(
      `${source}: num_attention_heads (${c.num_attention_heads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`,
    );
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim)) {
    throw new UserError(`${source}: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
  }
  if (headDim % 2 !== 0) throw new UserError(`${source}: head dimension ${headDim} must be even for rotary embeddings`);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!CONSUMED[modelType].has(k)) extra[k] = v;
  const rope = parseRope(c, source);
  const { layerTypes, slidingWindow } = parseLayerTypes(modelType, c, source);
  return {
    modelType,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numHiddenLayers: c.num_hidden_layers,
    numAttentionHeads: c.num_attention_heads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    ropeLayout: rope.layout,
    maxPositionEmbeddings: c.max_position_embeddings,
    layerTypes,
    slidingWindow,
    tieWordEmbeddings: c.tie_word_embeddings,
    qkvBias: modelType === 'qwen2' ? true : c.attention_bias,
    oBias: modelType === 'llama' ? c.attention_bias : false,
    mlpBias: modelType === 'llama' ? c.mlp_bias : false,
    initializerRange: c.initializer_range,
    bosTokenId: c.bos_token_id ?? undefined,
    eosTokenId: c.eos_token_id ?? undefined,
    padTokenId: c.pad_token_id ?? undefined,
    extra,
  };
}

function checkMathFields(obj: Record<string, unknown>, source: string, prefix: string): void {
  for (const [field, { inert, what }] of Object.entries(MATH_FIELDS)) {
    if (field in obj && !inert(obj[field])) {
      throw new UserError(`${source}: ${prefix}${field} = ${JSON.stringify(obj[field])} (${what}) is not supported`);
    }
  }
}

type ParsedFields = z.infer<typeof hfConfigSchema>;

/**
 * Rope settings as transformers 5.17 standardises them: `rope_scaling` (4.x) takes precedence
 * over `rope_parameters`; `rope_theta` inside the dict wins over the top-level one (default
 * 10000); a top-level `original_max_position_embeddings` overrides the dict's for llama3 / yarn,
 * which otherwise default it to `max_position_embeddings`.
 */
function parseRope(c: ParsedFields, source: string): { theta: number; scaling?: RopeScaling; layout: RopeLayout } {
  // transformers: `rope_scaling or rope_parameters`, so an empty rope_scaling does not count.
  const legacy = c.rope_scaling != null && Object.keys(c.rope_scaling).length > 0;
  const layout: RopeLayout = !legacy && c.rope_parameters != null ? 'rope_parameters' : 'rope_scaling';
  const dict = (layout === 'rope_parameters' ? c.rope_parameters : c.rope_scaling) ?? {};
  const field = layout;
  if ('full_attention' in dict || 'sliding_attention' in dict) {
    throw new UserError(`${source}: ${field}: rope parameters per layer type are not supported (one dict for all layers)`);
  }
  checkMathFields(dict, source, `${field}.`);
  const num = (key: string, required: boolean): number | undefined => {
    const v = dict[key];
    if (v == null) {
      if (required) throw new UserError(`${source}: ${field}.${key} is required for rope type "${type}"`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${source}: ${field}.${key} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const typeRaw = dict.rope_type ?? dict.type ?? 'default';
  const type = String(typeRaw);
  const theta = num('rope_theta', false) ?? c.rope_theta ?? 10000;
  if (!(theta > 0)) throw new UserError(`${source}: ${field}.rope_theta must be positive, got ${theta}`);
  const origMax = () => c.original_max_position_embeddings ?? num('original_max_position_embeddings', false) ?? c.max_position_embeddings;
  const factor = (): number => {
    const f = num('factor', true)!;
    if (!(f > 0)) throw new UserError(`${source}: ${field}.factor must be positive, got ${f}`);
    return f;
  };
  let scaling: RopeScaling | undefined;
  switch (type) {
    case 'default':
      break;
    case 'linear':
    case 'dynamic':
      scaling = { type, factor: factor() };
      break;
    case 'llama3': {
      scaling = {
        type,
        factor: factor(),
        lowFreqFactor: num('low_freq_factor', true)!,
        highFreqFactor: num('high_freq_factor', true)!,
        originalMaxPositionEmbeddings: origMax(),
      };
      if (scaling.highFreqFactor === scaling.lowFreqFactor) {
        throw new UserError(`${source}: ${field}.high_freq_factor must differ from low_freq_factor`);
      }
      break;
    }
    case 'yarn': {
      // transformers reads `rope_parameters.get("truncate", True)`: an explicit null means false.
      const truncate = dict.truncate === null ? false : dict.truncate;
      if (truncate !== undefined && typeof truncate !== 'boolean') throw new UserError(`${source}: ${field}.truncate must be a boolean, got ${JSON.stringify(truncate)}`);
      scaling = {
        type,
        factor: factor(),
        originalMaxPositionEmbeddings: origMax(),
        attentionFactor: num('attention_factor', false),
        betaFast: num('beta_fast', false),
        betaSlow: num('beta_slow', false),
        mscale: num('mscale', false),
        mscaleAllDim: num('mscale_all_dim', false),
        truncate,
      };
      for (const k of Object.keys(scaling) as (keyof typeof scaling)[]) if (scaling[k] === undefined) delete scaling[k];
      break;
    }
    default:
      throw new UserError(
        `${source}: ${field}.${dict.rope_type != null ? 'rope_type' : 'type'} "${type}" is not supported (supported: default, linear, dynamic, llama3, yarn)`,
      );
  }
  return { theta, scaling, layout };
}

/**
 * Which layers slide, with transformers 5.17's rules. Mistral: every layer, whenever
 * `sliding_window` is not null (default 4096; `layer_types` is ignored there, as transformers
 * does). Qwen2: `sliding_window` counts only with `use_sliding_window`; `layer_types` when given,
 * else layers `i >= max_window_layers` slide. LLaMA: no sliding window.
 */
function parseLayerTypes(modelType: ModelType, c: ParsedFields, source: string): { layerTypes: LayerType[]; slidingWindow?: number } {
  const n = c.num_hidden_layers;
  const all = (t: LayerType): LayerType[] => new Array<LayerType>(n).fill(t);
  if (modelType === 'llama') return { layerTypes: all('full_attention') };
  if (modelType === 'mistral') {
    const window = c.sliding_window === undefined ? 4096 : c.sliding_window;
    return window == null ? { layerTypes: all('full_attention') } : { layerTypes: all('sliding_attention'), slidingWindow: window };
  }
  // Qwen2Config: sliding_window defaults to 4096, and is None unless use_sliding_window.
  const window = c.use_sliding_window ? (c.sliding_window === undefined ? 4096 : c.sliding_window ?? undefined) : undefined;
  let layerTypes: LayerType[];
  if (c.layer_types) {
    if (c.layer_types.length !== n) {
      throw new UserError(`${source}: layer_types has ${c.layer_types.length} entries, num_hidden_layers is ${n}`);
    }
    layerTypes = [...c.layer_types];
  } else {
    layerTypes = Array.from({ length: n }, (_, i) => (window !== undefined && i >= c.max_window_layers ? 'sliding_attention' : 'full_attention'));
  }
  const slides = layerTypes.includes('sliding_attention');
  if (slides && window === undefined) {
    throw new UserError(`${source}: layer_types has sliding_attention layers but no sliding window (use_sliding_window ${c.use_sliding_window}, sliding_window ${c.sliding_window ?? null})`);
  }
  return slides ? { layerTypes, slidingWindow: window } : { layerTypes };
}

/**
 * The HF `config.json` object for a config (inverse of {@link parseHfConfig}): `extra` keys come
 * back unchanged, rope fields in the layout they were read in ({@link RopeLayout}), sliding
 * windows as the model type's transformers config reads them (Qwen2 always with `layer_types`).
 */
export function toHfConfig(c: LlamaConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: [ARCHITECTURE_NAMES[c.modelType]],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    rms_norm_eps: c.rmsNormEps,
    ...ropeToHf(c),
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange,
    hidden_act: 'silu',
  };
  if (c.modelType === 'llama') {
    out.attention_bias = c.qkvBias;
    out.mlp_bias = c.mlpBias;
  }
  Object.assign(out, slidingToHf(c));
  if (c.bosTokenId !== undefined) out.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) out.eos_token_id = c.eosTokenId;
  if (c.padTokenId !== undefined) out.pad_token_id = c.padTokenId;
  return { ...c.extra, ...out };
}

function ropeToHf(c: LlamaConfig): Record<string, unknown> {
  const rs = c.ropeScaling;
  const params: Record<string, unknown> = { rope_type: rs?.type ?? 'default' };
  if (rs) {
    params.factor = rs.factor;
    if (rs.type === 'llama3') {
      Object.assign(params, { low_freq_factor: rs.lowFreqFactor, high_freq_factor: rs.highFreqFactor, original_max_position_embeddings: rs.originalMaxPositionEmbeddings });
    } else if (rs.type === 'yarn') {
      const opt = { attention_factor: rs.attentionFactor, beta_fast: rs.betaFast, beta_slow: rs.betaSlow, mscale: rs.mscale, mscale_all_dim: rs.mscaleAllDim, truncate: rs.truncate };
      params.original_max_position_embeddings = rs.originalMaxPositionEmbeddings;
      for (const [k, v] of Object.entries(opt)) if (v !== undefined) params[k] = v;
    }
  }
  if ((c.ropeLayout ?? 'rope_parameters') === 'rope_parameters') return { rope_parameters: { ...params, rope_theta: c.ropeTheta } };
  // 4.x readers of linear scaling looked at `type`.
  if (rs?.type === 'linear') params.type = 'linear';
  return { rope_theta: c.ropeTheta, rope_scaling: rs ? params : null };
}

function slidingToHf(c: LlamaConfig): Record<string, unknown> {
  const slides = c.layerTypes.includes('sliding_attention');
  if (c.layerTypes.length !== c.numHiddenLayers) throw new Error(`layerTypes has ${c.layerTypes.length} entries for ${c.numHiddenLayers} layers`);
  if (slides && c.slidingWindow === undefined) throw new Error('sliding_attention layers need slidingWindow');
  if (c.modelType === 'qwen2') {
    return { layer_types: c.layerTypes, ...(slides ? { use_sliding_window: true, sliding_window: c.slidingWindow } : {}) };
  }
  if (c.modelType === 'mistral') {
    if (slides && c.layerTypes.includes('full_attention')) throw new Error('mistral: transformers slides every layer or none');
    return { sliding_window: slides ? c.slidingWindow : null };
  }
  if (slides) throw new Error('llama: transformers has no sliding-window attention for LLaMA (use mistral or qwen2)');
  return {};
}

/** Build a config from camelCase fields with HF defaults for the rest (tests, examples). */
export function makeConfig(
  fields: Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads'> &
    Partial<LlamaConfig>,
): LlamaConfig {
  const modelType = fields.modelType ?? 'llama';
  const numKeyValueHeads = fields.numKeyValueHeads ?? fields.numAttentionHeads;
  return parseHfConfig(
    toHfConfig({
      modelType,
      numKeyValueHeads,
      headDim: fields.hiddenSize / fields.numAttentionHeads,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      maxPositionEmbeddings: 2048,
      layerTypes: new Array<LayerType>(fields.numHiddenLayers).fill('full_attention'),
      tieWordEmbeddings: false,
      qkvBias: modelType === 'qwen2',
      oBias: false,
      mlpBias: false,
      initializerRange: 0.02,
      extra: {},
      ...fields,
    }),
    'config',
  );
}
