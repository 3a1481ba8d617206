/**
 * The pretraining recipe of the bundled base model, validated once with zod. Defaults are the
 * recipe that produced `models/base` (see its README); the script's flags override them.
 */
import { z } from 'zod';
import { UserError } from '../errors.ts';
import { formatZodIssues } from '../train/config.ts';

/** The LLaMA architecture of the pretrained model (HF names in `toArchitectureJson`). */
export const ArchitectureSchema = z.strictObject({
  /** BPE vocabulary size (special tokens and the 256 bytes included). */
  vocabSize: z.int().min(300).default(4096),
  hiddenSize: z.int().positive().default(320),
  intermediateSize: z.int().positive().default(864),
  numHiddenLayers: z.int().positive().default(4),
  numAttentionHeads: z.int().positive().default(8),
  numKeyValueHeads: z.int().positive().default(4),
  maxPositionEmbeddings: z.int().positive().default(512),
  ropeTheta: z.number().positive().default(10000),
  rmsNormEps: z.number().positive().default(1e-5),
  tieWordEmbeddings: z.boolean().default(true),
  initializerRange: z.number().positive().default(0.02),
});
export type Architecture = z.output<typeof ArchitectureSchema>;

export const PretrainConfigSchema = z.strictObject({
  /** Pretraining text; documents separated by blank lines. */
  trainFile: z.string().min(1).default('data/corpus/train.txt'),
  /** Held-out text for the validation loss. */
  validFile: z.string().min(1).default('data/corpus/valid.txt'),
  /** Output model directory (HF layout). */
  outDir: z.string().min(1).default('models/base'),
  /** Checkpoints, tokenizer and metrics of the run in progress (git-ignored). */
  runDir: z.string().min(1).default('runs/pretrain-base'),
  architecture: ArchitectureSchema.default(ArchitectureSchema.parse({})),
  /** Seed of the weights' initialisation and of the data order. */
  seed: z.int().nonnegative().default(0),
  /** Optimizer updates (the schedule's length). */
  steps: z.int().positive().default(2000),
  /** Stop gracefully (checkpoint + save) after this many minutes of this process; 0 = no limit. */
  minutes: z.number().nonnegative().default(0),
  /** Tokens per sequence. */
  seqLen: z.int().min(2).default(128),
  /** Sequences per update. */
  batchSize: z.int().positive().default(16),
  /** Peak learning rate. */
  lr: z.number().positive().default(2e-3),
  /** Warmup as a fraction of `steps`. */
  warmupFraction: z.number().min(0).max(1).default(0.05),
  /** Final learning rate of the cosine, as a fraction of `lr`. */
  minLrFraction: z.number().min(0).max(1).default(0.1),
  /** AdamW decoupled weight decay (norms excluded). */
  weightDecay: z.number().nonnegative().default(0.1),
  beta2: z.number().min(0).lt(1).default(0.95),
  /** Global gradient-norm clip. */
  maxGradNorm: z.number().positive().default(1),
  checkpointEvery: z.int().positive().default(50),
  /** Validation loss every N updates on the first `evalSequences` validation sequences. */
  evalEvery: z.int().positive().default(50),
  evalSequences: z.int().positive().default(32),
  logEvery: z.int().positive().default(10),
  /** Continue from the latest checkpoint in `runDir/checkpoints`. */
  resume: z.boolean().default(false),
  /** Greedy samples for the README, from these prompts. */
  samplePrompts: z
    .array(z.string())
    .default(['The whale', 'Fellow-Citizens of the Senate and House of Representatives:', 'ocean:', 'happy is the opposite of', 'water has', '45 + 12 =', 'Mary is a']),
  sampleTokens: z.int().nonnegative().default(32),
});
export type PretrainConfig = z.output<typeof PretrainConfigSchema>;
export type PretrainConfigInput = z.input<typeof PretrainConfigSchema>;

/** Validate a pretraining config (defaults filled in); errors name the field. */
export function parsePretrainConfig(value: unknown, source = 'pretrain config'): PretrainConfig {
  const r = PretrainConfigSchema.safeParse(value);
  if (!r.success) throw new UserError(`${source}: ${formatZodIssues(r.error)}`);
  const a = r.data.architecture;
  if (a.hiddenSize % a.numAttentionHeads !== 0) {
    throw new UserError(`${source}: architecture.hiddenSize ${a.hiddenSize} is not divisible by numAttentionHeads ${a.numAttentionHeads}`);
  }
  if (a.numAttentionHeads % a.numKeyValueHeads !== 0) {
    throw new UserError(`${source}: architecture.numAttentionHeads must be a multiple of numKeyValueHeads`);
  }
  if (r.data.seqLen > a.maxPositionEmbeddings) {
    throw new UserError(`${source}: seqLen ${r.data.seqLen} exceeds maxPositionEmbeddings ${a.maxPositionEmbeddings}`);
  }
  return r.data;
}

/** The HF `config.json` fields of the architecture (snake_case), with the tokenizer's ids. */
export function toArchitectureJson(
  a: Architecture,
  ids: { bos?: number; eos?: number; pad?: number },
): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: a.vocabSize,
    hidden_size: a.hiddenSize,
    intermediate_size: a.intermediateSize,
    num_hidden_layers: a.numHiddenLayers,
    num_attention_heads: a.numAttentionHeads,
    num_key_value_heads: a.numKeyValueHeads,
    max_position_embeddings: a.maxPositionEmbeddings,
    rope_theta: a.ropeTheta,
    rms_norm_eps: a.rmsNormEps,
    tie_word_embeddings: a.tieWordEmbeddings,
    initializer_range: a.initializerRange,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    ...(ids.bos !== undefined ? { bos_token_id: ids.bos } : {}),
    ...(ids.eos !== undefined ? { eos_token_id: ids.eos } : {}),
    ...(ids.pad !== undefined ? { pad_token_id: ids.pad } : {}),
  };
}
