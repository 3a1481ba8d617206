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
import { heapOffset, type WasmBackend } from './wasmHeap.ts';
import { state } from './state.ts';

export const ATTENTION = 'MorAttention';
export const ATTENTION_GRAD = 'MorAttentionGrad';

type Inputs = Record<string, tfc.TensorInfo>;

/** Dimensions from the inputs, checked; the mask's batch is 0 without a mask. */
function dims(kernel: string, ins: Inputs): number[] {
  for (const [k, t] of Object.entries(ins)) if (t.dtype !== 'float32') throw new Error(`${kernel}: ${k} must be float32, got ${t.dtype}`);
  const [b, t, h, d] = ins.q.shape;
  const [kb, s, hkv, kd] = ins.k.shape;
  const same = (a: number[], e: number[]) => a.length === e.length && a.every((x, i) => x === e[i]);
  const m = ins.mask?.shape;
  if (ins.q.shape.length !== 4 || kb !== b || kd !== d || !same(ins.v.shape, ins.k.shape) || h % hkv !== 0 ||
      (m && (m.length !== 3 || (m[0] !== 1 && m[0] !== b) || m[1] !== t || m[2] !== s))) {
    throw new Error(`${kernel}: q [${ins.q.shape}], k [${ins.k.shape}], v [${ins.v.shape}]${m ? `, mask [${m}]` : ''} do not fit`);
  }
  return [b, t, s, h, hkv, d, m ? m[0] : 0];
}

/** Register the two kernels on the wasm backend (idempotent). */
export function registerAttentionKernels(lib: BlasAddon): void {
  if (state.attentionKernels) return;
  const threads = () => state.blas?.threads ?? 1;
  tfc.registerKernel({
    kernelName: ATTENTION,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as unknown as WasmBackend;
      const ins = inputs as Inputs;
      const [b, t, s, h, hkv, d, mb] = dims(ATTENTION, ins);
      const out = wasm.makeOutput([b, t, h, d], 'float32');
      const at = (x?: tfc.TensorInfo) => (x ? heapOffset(wasm, x) : 0);
      // Read the heap after makeOutput: an allocation may grow (and replace) the wasm memory.
      lib.attnForward(wasm.wasm.HEAPU8.buffer as ArrayBuffer, b, t, s, h, hkv, d, mb, threads(),
        at(ins.q), at(ins.k), at(ins.v), at(ins.mask), at(out));
      return out;
    },
  });
  tfc.registerKernel({
    kernelName: ATTENTION_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as unknown as WasmBackend;
      const ins = inputs as Inputs;
      const [b, t, s, h, hkv, d, mb] = dims(ATTENTION_GRAD, ins);
      const dq = wasm.makeOutput(ins.q.shape, 'float32');
      const dk = wasm.makeOutput(ins.k.shape, 'float32');
      const dv = wasm.makeOutput(ins.v.shape, 'float32');
      const at = (x?: tfc.TensorInfo) => (x ? heapOffset(wasm, x) : 0);
      lib.attnBackward(wasm.wasm.HEAPU8.buffer as ArrayBuffer, b, t, s, h, hkv, d, mb, threads(),
        at(ins.q), at(ins.k), at(ins.v), at(ins.mask), at(ins.out), at(ins.dout), at(dq), at(dk), at(dv));
      return [dq, dk, dv];
    },
  });
  state.attentionKernels = true;
}

/** True when the fused attention runs: registered, and the BLAS (native) path active. */
export function nativeAttentionActive(): boolean {
  return state.attentionKernels && state.blas !== undefined;
}
