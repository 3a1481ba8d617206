/**
 * The native fused cross-entropy (native/blas/src/mor_xent.cc), registered on the wasm backend
 * with the OpenBLAS addon. Shapes (N rows, V vocabulary):
 *
 *  - `MorXentForward`  logits `[N, V]`, labels `[N]` int32           -> loss `[N]`, lse `[N]`
 *  - `MorXentBackward` logits, lse, labels, dy `[N]`                  -> dlogits `[N, V]`
 *
 * They replace ~8 single-threaded wasm kernels over the logits (a third of a LoRA training
 * step's time on the SmolLM-135M shape, `npm run bench:train -- --profile`) by two passes split
 * over the BLAS threads. No registered gradients: `crossEntropyRows` defines the op's gradient.
 */
import type { BlasAddon } from './blas.ts';
import { registerHeapKernel, type Fail, type Inputs } from './heapKernel.ts';
import { state } from './state.ts';

export const XENT_FORWARD = 'MorXentForward';
export const XENT_BACKWARD = 'MorXentBackward';

/** N and V from logits `[N, V]`; every other input `[N]`. */
function rows(ins: Inputs, fail: Fail): [number, number] {
  const [n, v] = ins.logits.shape;
  if (ins.logits.shape.length !== 2 || Object.entries(ins).some(([k, t]) => k !== 'logits' && (t.shape.length !== 1 || t.shape[0] !== n))) {
    fail('logits must be [N, V] and the other inputs [N]');
  }
  return [n, v];
}

/** Register the two kernels on the wasm backend (idempotent). */
export function registerLossKernels(lib: BlasAddon): void {
  if (state.lossKernels) return;
  const threads = () => state.blas?.threads ?? 1;
  registerHeapKernel(XENT_FORWARD, (i, fail) => {
    const [n, v] = rows(i, fail);
    return {
      outs: [[n], [n]],
      run: (heap, at, [loss, lse]) => lib.xentForward(heap, n, v, at(i.logits), at(i.labels), at(loss), at(lse), threads()),
    };
  }, ['labels']);
  registerHeapKernel(XENT_BACKWARD, (i, fail) => {
    const [n, v] = rows(i, fail);
    return {
      outs: [[n, v]],
      run: (heap, at, [dx]) => lib.xentBackward(heap, n, v, at(i.logits), at(i.lse), at(i.labels), at(i.dy), at(dx), threads()),
    };
  }, ['labels']);
  state.lossKernels = true;
}

/** True once the kernels are registered (the addon loaded). */
export function lossKernelsRegistered(): boolean {
  return state.lossKernels;
}

/** True when the native cross-entropy runs: registered, and the BLAS (native) path active. */
export function nativeLossActive(): boolean {
  return state.lossKernels && state.blas !== undefined;
}
