/**
 * Randomly initialised models, like a fresh HF model: linear and embedding weights
 * ~ N(0, initializer_range), norms 1, biases 0, the padding row of the embedding 0.
 * Deterministic for a given seed (src/util/rng.ts).
 */
import { requireBackend, tf } from '../backend/tf.ts';
import { Rng } from '../util/rng.ts';
import type { LlamaConfig } from './llama/config.ts';
import type { LlamaForCausalLM } from './llama/model.ts';
import { buildModelSafely } from './registry.ts';

/** A model with HF-like random initialisation from `seed`. */
export function createRandomModel(config: LlamaConfig, seed: number): LlamaForCausalLM {
  requireBackend('createRandomModel');
  const rng = new Rng(seed);
  return buildModelSafely(config, (_name, shape, kind) => {
    const n = shape.reduce((a, b) => a * b, 1);
    if (kind === 'norm') return tf.ones(shape);
    if (kind === 'bias') return tf.zeros(shape);
    const data = normals(rng, n, config.initializerRange);
    const pad = config.padTokenId;
    if (kind === 'embedding' && pad !== undefined && pad >= 0 && pad < shape[0]) data.fill(0, pad * shape[1], (pad + 1) * shape[1]);
    return tf.tensor(data, shape, 'float32');
  });
}

/** `n` draws from N(0, std): Box–Muller using both outputs of each pair (half the work of one per pair). */
function normals(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = (rng.nextU32() + 1) / 4294967297; // (0, 1]: log is finite
    const r = std * Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * rng.next();
    out[i] = r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = r * Math.sin(a);
  }
  return out;
}
