/**
 * Where a model's tensors come from while its module tree is built: a checkpoint reader
 * (src/models/load.ts) or a random initialiser (src/models/random.ts). Each call returns a
 * new float32 tensor of exactly `shape`, owned by the caller, for the HF key `name`; for the
 * `linear` and `embedding` kinds a checkpoint reader may instead return a weight kept in the
 * native store (src/backend/weightStore.ts).
 */
import type { tf } from '../../backend/tf.ts';
import type { FrozenWeight, StoredWeight } from '../../backend/weightStore.ts';
import { FrozenLinear } from './frozenLinear.ts';

/** Produces the tensor stored under HF key `name`; `kind` tells initialisers what it is. */
export type WeightSource = (name: string, shape: number[], kind: WeightKind) => tf.Tensor | StoredWeight;

/** What a weight is, for initialisation: normal (matrices), ones (norms), zeros (biases). */
export type WeightKind = 'linear' | 'embedding' | 'norm' | 'bias';

/** A Linear `prefix` (`...q_proj`) with weight `[out, in]` and optional bias `[out]`. */
export function buildLinear(get: WeightSource, prefix: string, out: number, inF: number, bias: boolean): FrozenLinear {
  const w = get(`${prefix}.weight`, [out, inF], 'linear') as FrozenWeight;
  const b = bias ? (get(`${prefix}.bias`, [out], 'bias') as tf.Tensor1D) : undefined;
  return new FrozenLinear(w, b);
}
