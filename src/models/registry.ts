/**
 * `model_type` -> model builder. All supported types share the LLaMA graph; the differences
 * (Qwen2's q/k/v biases, Mistral's name) live in {@link LlamaConfig}.
 */
import type { LlamaConfig, ModelType } from './llama/config.ts';
import { LlamaForCausalLM } from './llama/model.ts';
import type { WeightSource } from './llama/weights.ts';

/** Builds a causal LM from a config and a source of tensors. */
export type ModelBuilder = (config: LlamaConfig, get: WeightSource) => LlamaForCausalLM;

const llama: ModelBuilder = (config, get) => new LlamaForCausalLM(config, get);

/** One builder per supported `model_type`. */
export const MODEL_BUILDERS: Readonly<Record<ModelType, ModelBuilder>> = {
  llama,
  mistral: llama,
  qwen2: llama,
};

/** Build the model for `config.modelType`. */
export function buildModel(config: LlamaConfig, get: WeightSource): LlamaForCausalLM {
  return MODEL_BUILDERS[config.modelType](config, get);
}

/**
 * Build a model while tracking every tensor `get` returns, so a failure half-way (a missing or
 * mis-shaped weight) disposes what was already created and leaks nothing.
 */
export function buildModelSafely(config: LlamaConfig, get: WeightSource): LlamaForCausalLM {
  const created: { dispose(): void }[] = [];
  try {
    return buildModel(config, (name, shape, kind) => {
      const t = get(name, shape, kind);
      created.push(t);
      return t;
    });
  } catch (e) {
    for (const t of created) t.dispose();
    throw e;
  }
}
