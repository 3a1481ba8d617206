/**
 * Gradients computed on a tape of their own, from anywhere: inside a `tf.customGrad` forward
 * (where tfjs records nothing: its kernel depth is above 0) or inside the gradient function
 * of an outer backward (where a nested `engine.gradients` would replace the outer tape and
 * then clear it, so the outer backward could no longer free its saved tensors). The
 * engine's tape state is set aside, a fresh top-level tape runs, and the state is put back;
 * the inner tape frees its own saved tensors when it ends, so nothing it recorded outlives
 * the call. Used by gradient checkpointing and the chunked loss.
 */
import { tf } from '../backend/tf.ts';

/**
 * `engine.gradients(f, xs, dy)` on an isolated tape: the value of `f` and the gradient of
 * each x (undefined where `f` does not depend on it). The caller owns both.
 */
export function isolatedGradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] } {
  const engine = tf.engine();
  const state = engine.state;
  const saved = { tape: state.activeTape, gradientDepth: state.gradientDepth, kernelDepth: state.kernelDepth };
  state.activeTape = [];
  state.gradientDepth = 0;
  state.kernelDepth = 0;
  try {
    return engine.gradients(f, xs, dy, true);
  } finally {
    state.activeTape = saved.tape;
    state.gradientDepth = saved.gradientDepth;
    state.kernelDepth = saved.kernelDepth;
  }
}
