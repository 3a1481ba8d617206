/**
 * The native fused attention (native/blas/src/mor_attention.cc), registered on the wasm backend
 * with the OpenBLAS addon. Shapes (B batch, T queries, S keys, H query heads, Hkv key/value
 * heads, D head size; mask optional, `[Bm, T, S]` additive with Bm 1 or B):
 *
 *  - `MorAttention`     q `[B, T, H, D]`, k, v `[B, S, Hkv, D]`, mask      -> out `[B, T, H, D]`
 *  - `MorAttentionGrad` q, k, v, mask, out, dout                           -> dq, dk, dv
 *
 * No registered gradients: `fusedAttention` (src/models/llama/fusedAttention.ts) defines the op's.
 */
import * as tfc from '@tensorflow/tfjs-core';
import type { BlasAddon } from './blas.ts';
import { registerHeapKernel, sameShape, type Fail, type Inputs } from './heapKernel.ts';
import { state } from './state.ts';

export const ATTENTION = 'MorAttention';
export const ATTENTION_GRAD = 'MorAttentionGrad';

/** Dimensions from the inputs, checked; the mask's batch is 0 without a mask. */
function dims(ins: Inputs, fail: Fail): number[] {
  const [b, t, h, d] = ins.q.shape;
  const [kb, s, hkv, kd] = ins.k.shape;
  const m = ins.mask?.shape;
  if (ins.q.shape.length !== 4 || kb !== b || kd !== d || !sameShape(ins.v.shape, ins.k.shape) || h % hkv !== 0 ||
      (m && (m.length !== 3 || (m[0] !== 1 && m[0] !== b) || m[1] !== t || m[2] !== s))) {
    fail(`q [${ins.q.shape}], k [${ins.k.shape}], v [${ins.v.shape}]${m ? `, mask [${m}]` : ''} do not fit`);
  }
  return [b, t, s, h, hkv, d, m ? m[0] : 0];
}

/** Register the two kernels on the wasm backend (idempotent). */
export function registerAttentionKernels(lib: BlasAddon): void {
  if (state.attentionKernels) return;
  const threads = () => state.blas?.threads ?? 1;
  const opt = (at: (t: tfc.TensorInfo) => number, x?: tfc.TensorInfo) => (x ? at(x) : 0);
  registerHeapKernel(ATTENTION, (i, fail) => {
    const [b, t, s, h, hkv, d, mb] = dims(i, fail);
    return {
      outs: [i.q.shape],
      run: (heap, at, [out]) => lib.attnForward(heap, b, t, s, h, hkv, d, mb, threads(), at(i.q), at(i.k), at(i.v), opt(at, i.mask), at(out)),
    };
  });
  registerHeapKernel(ATTENTION_GRAD, (i, fail) => {
    const [b, t, s, h, hkv, d, mb] = dims(i, fail);
    return {
      outs: [i.q.shape, i.k.shape, i.v.shape],
      run: (heap, at, [dq, dk, dv]) => lib.attnBackward(heap, b, t, s, h, hkv, d, mb, threads(),
        at(i.q), at(i.k), at(i.v), opt(at, i.mask), at(i.out), at(i.dout), at(dq), at(dk), at(dv)),
    };
  });
  state.attentionKernels = true;
}

/** True when the fused attention runs: registered, and the BLAS (native) path active. */
export function nativeAttentionActive(): boolean {
  return state.attentionKernels && state.blas !== undefined;
}
