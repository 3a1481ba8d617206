/**
 * Where a model's tensors come from while its module tree is built: a checkpoint reader
 * (src/models/load.ts) or a random initialiser (src/models/random.ts). Each call returns a
 * new float32 tensor of exactly `shape`, owned by the caller, for the HF key `name`.
 */
import type { tf } from '../../backend/tf.ts';
import { FrozenLinear } from './frozenLinear.ts';

/** Produces the tensor stored under HF key `name`; `kind` tells initialisers what it is. */
export type WeightSource = (name: string, shape: number[], kind: WeightKind) => tf.Tensor;

/** What a weight is, for initialisation: normal (matrices), ones (norms), zeros (biases). */
export type WeightKind = 'linear' | 'embedding' | 'norm' | 'bias';

/** A Linear `prefix` (`...q_proj`) with weight `[out, in]` and optional bias `[out]`. */
export function buildLinear(get: WeightSource, prefix: string, out: number, inF: number, bias: boolean): FrozenLinear {
  const w = get(`${prefix}.weight`, [out, inF], 'linear') as tf.Tensor2D;
  const b = bias ? (get(`${prefix}.bias`, [out], 'bias') as tf.Tensor1D) : undefined;
  return new FrozenLinear(w, b);
}
