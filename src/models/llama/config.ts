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

/** Rotary-embedding frequency scaling (`rope_scaling`). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

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
  maxPositionEmbeddings: number;
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

const ropeScalingSchema = z
  .object({
    type: z.string().optional(),
    rope_type: z.string().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().optional(),
    high_freq_factor: z.number().optional(),
    original_max_position_embeddings: z.number().int().positive().optional(),
  })
  .passthrough();

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
    rope_theta: z.number().positive().default(10000),
    rope_scaling: ropeScalingSchema.nullish(),
    max_position_embeddings: posInt.default(2048),
    tie_word_embeddings: z.boolean().default(false),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
    initializer_range: z.number().positive().default(0.02),
    bos_token_id: z.number().int().nullish(),
    eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
    pad_token_id: z.number().int().nullish(),
    hidden_act: z.literal('silu', { message: 'only "silu" is supported' }).optional(),
  })
  .passthrough();

const CONSUMED = new Set([
  'model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
  'num_attention_heads', 'num_key_value_heads', 'head_dim', 'rms_norm_eps', 'rope_theta',
  'rope_scaling', 'max_position_embeddings', 'tie_word_embeddings', 'attention_bias', 'mlp_bias',
  'initializer_range', 'bos_token_id', 'eos_token_id', 'pad_token_id', 'architectures', 'hidden_act',
]);

/**
 * Validate a parsed HF `config.json` and convert it to a {@link LlamaConfig}.
 * @param source file name used in error messages
 * @throws UserError naming the field, or the unsupported `model_type`
 */
export function parseHfConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${source}: expected a JSON object`);
  }
  const mt = (json as Record<string, unknown>).model_type;
  if (typeof mt !== 'string') throw new UserError(`${source}: missing "model_type"`);
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(mt)) {
    throw new UserError(
      `${source}: unsupported model_type "${mt}" (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
    );
  }
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
  for (const [k, v] of Object.entries(json)) if (!CONSUMED.has(k)) extra[k] = v;
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
    ropeTheta: c.rope_theta,
    ropeScaling: parseRopeScaling(c.rope_scaling ?? undefined, source),
    maxPositionEmbeddings: c.max_position_embeddings,
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

function parseRopeScaling(
  rs: z.infer<typeof ropeScalingSchema> | undefined,
  source: string,
): RopeScaling | undefined {
  if (!rs) return undefined;
  const type = rs.rope_type ?? rs.type ?? 'default';
  if (type === 'default') return undefined;
  const need = (v: number | undefined, field: string): number => {
    if (v === undefined) throw new UserError(`${source}: rope_scaling.${field} is required for rope type "${type}"`);
    return v;
  };
  if (type === 'linear') return { type: 'linear', factor: need(rs.factor, 'factor') };
  if (type === 'llama3') {
    const r: RopeScaling = {
      type: 'llama3',
      factor: need(rs.factor, 'factor'),
      lowFreqFactor: need(rs.low_freq_factor, 'low_freq_factor'),
      highFreqFactor: need(rs.high_freq_factor, 'high_freq_factor'),
      originalMaxPositionEmbeddings: need(rs.original_max_position_embeddings, 'original_max_position_embeddings'),
    };
    if (r.highFreqFactor === r.lowFreqFactor) {
      throw new UserError(`${source}: rope_scaling high_freq_factor must differ from low_freq_factor`);
    }
    return r;
  }
  throw new UserError(`${source}: unsupported rope_scaling type "${type}" (supported: linear, llama3)`);
}

/** The HF `config.json` object for a config (inverse of {@link parseHfConfig}). */
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
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingToHf(c.ropeScaling),
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange,
    hidden_act: 'silu',
  };
  if (c.modelType === 'llama') {
    out.attention_bias = c.qkvBias;
    out.mlp_bias = c.mlpBias;
  }
  if (c.bosTokenId !== undefined) out.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) out.eos_token_id = c.eosTokenId;
  if (c.padTokenId !== undefined) out.pad_token_id = c.padTokenId;
  return { ...c.extra, ...out };
}

function ropeScalingToHf(rs: RopeScaling | undefined): Record<string, unknown> | null {
  if (!rs) return null;
  if (rs.type === 'linear') return { rope_type: 'linear', type: 'linear', factor: rs.factor };
  return {
    rope_type: 'llama3',
    factor: rs.factor,
    low_freq_factor: rs.lowFreqFactor,
    high_freq_factor: rs.highFreqFactor,
    original_max_position_embeddings: rs.originalMaxPositionEmbeddings,
  };
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
