/**
 * Per-forward state threaded through the model to every linear layer and adapter.
 * Adapters never keep hidden global state; what they report (aux losses, routing) goes here.
 */
import type { tf } from '../backend/tf.ts';
import type { Rng } from '../util/rng.ts';

/** Observer of router outputs, for routing analysis (mean weight per expert per group). */
export interface RoutingObserver {
  /**
   * Called by routed adapters with the routing weights of the real tokens of this forward.
   * @param modulePath dotted path of the adapted layer (`model.layers.0.mlp.up_proj`)
   * @param weights `[tokens, N]` routing weights (rows sum to 1); caller keeps ownership
   */
  record(modulePath: string, weights: tf.Tensor2D): void;
}

export interface ForwardContext {
  /** Training mode: enables dropout. */
  training: boolean;
  /** Base seed for dropout masks in this forward (deterministic runs). */
  seed?: number;
  /** Auxiliary losses (e.g. MoE load balance), already multiplied by their coefficients. */
  auxLosses: tf.Scalar[];
  /** `[tokens]` 1 for real tokens, 0 for padding, flattened like the linear inputs. */
  tokenMask?: tf.Tensor1D;
  /** Optional routing observer. */
  routing?: RoutingObserver;
  /**
   * When set, dropout records here each fallback stream it draws from (used when `seed` is
   * unset) with the stream's state before its first draw, so gradient checkpointing can replay
   * the same masks when it recomputes a layer.
   */
  dropoutStreams?: Map<Rng, number[]>;
}

/** A fresh inference context. */
export function inferenceContext(): ForwardContext {
  return { training: false, auxLosses: [] };
}
