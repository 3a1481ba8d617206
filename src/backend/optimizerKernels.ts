/**
 * The optimizer's native passes over every trainable tensor at once (native/blas/src/mor_optim.cc),
 * with the OpenBLAS addon. With tfjs ops, one AdamW update is ~11 wasm kernels per parameter,
 * the gradient norm 2 and the trainer's weight check 4; on adapters of a few thousand elements
 * per tensor that is engine overhead, not arithmetic (MoR on 18 modules: 90 tensors, ~1,500
 * kernel calls, ~12 ms a step). Here each is one call:
 *
 *  - {@link adamwInPlace}: AdamW's update of every parameter, in place, with the same bits as
 *    its tfjs ops (src/train/adamw.ts). In place, because new p, m and v for all parameters at
 *    once (where the ops make them one parameter at a time) fragmented the wasm heap into
 *    growing, at 18 MB more per step for MoR.
 *  - {@link tensorStats}: sum of squares and max |x| of each tensor, read from the heap.
 *
 * Both are plain addon calls on the heap, not tfjs kernels: neither creates a tensor.
 */
import * as tfc from '@tensorflow/tfjs-core';
import type { BlasAddon } from './blas.ts';
import { sameShape } from './heapKernel.ts';
import { heapOffset, type WasmBackend } from './wasmHeap.ts';
import { state } from './state.ts';

/** Mark the native passes available (idempotent); they are plain addon calls, no tfjs kernel. */
export function registerOptimizerKernels(lib: BlasAddon): void {
  if (!state.optimizerKernels && typeof lib.adamwStep === 'function' && typeof lib.tensorStats === 'function') state.optimizerKernels = true;
}

/** One parameter of {@link adamwInPlace}. */
export interface AdamWSlot {
  param: tfc.Variable;
  m: tfc.Variable;
  v: tfc.Variable;
  grad: tfc.Tensor;
  decay: boolean;
}

/**
 * AdamW's update of every slot in ONE native pass. `consts` are the nine float32 constants (see
 * blas.ts). Each variable is written in place when it alone holds its memory (the common case:
 * nothing else allocated); one that shares it (a tensor it was made from, a reshape of it still
 * alive) gets new memory first, so that nothing else sees the change, as `assign` would.
 */
export function adamwInPlace(slots: readonly AdamWSlot[], consts: readonly number[]): void {
  const wasm = tfc.backend() as unknown as WasmBackend;
  const at = (t: tfc.Tensor) => (t.size > 0 ? heapOffset(wasm, t) : 0);
  const table = new Float64Array(9 * slots.length);
  const fresh: [tfc.Variable, tfc.Tensor][] = [];
  slots.forEach((s, i) => {
    const { param, m, v, grad } = s;
    for (const t of [m, v, grad]) {
      if (t.dtype !== 'float32' || !sameShape(t.shape, param.shape)) {
        throw new Error(`adamwInPlace: m, v and the gradient must be float32 of the parameter's shape [${param.shape}], got [${t.shape}] ${t.dtype}`);
      }
    }
    if (param.dtype !== 'float32') throw new Error(`adamwInPlace: parameters must be float32, got ${param.dtype}`);
    // Where each of p, m, v is written: in place, or new memory when its own is shared.
    const dest = [param, m, v].map((x) => {
      if (x.size === 0 || wasm.refCount(x.dataId) === 1) return at(x);
      const out = tfc.zerosLike(x);
      fresh.push([x, out]);
      return at(out);
    });
    table.set([param.size, at(param), at(m), at(v), at(grad), dest[0], dest[1], dest[2], s.decay ? 1 : 0], 9 * i);
  });
  // The heap's buffer is read after the allocations above, which may have grown it.
  state.addon!.adamwStep(wasm.wasm.HEAPU8.buffer as ArrayBuffer, table, Float64Array.from(consts), state.blas!.threads);
  for (const [x, out] of fresh) {
    x.assign(out);
    out.dispose();
  }
}

/** True when the native optimizer passes run: registered, the BLAS path active, and wasm the backend. */
export function nativeOptimizerActive(): boolean {
  return state.optimizerKernels && state.blas !== undefined && state.addon !== undefined && tfc.getBackend() === 'wasm';
}

/**
 * Sum of squares (accumulated in float64) and max |x| (NaN when the tensor holds a NaN; 0 when
 * empty) of each float32 tensor, as `[sum0, max0, sum1, max1, ...]`; undefined when the native
 * passes are not active or a tensor is not float32 (the caller then uses tfjs ops).
 */
export function tensorStats(tensors: readonly tfc.Tensor[]): Float64Array | undefined {
  if (!nativeOptimizerActive() || tensors.some((t) => t.dtype !== 'float32')) return undefined;
  const wasm = tfc.backend() as unknown as WasmBackend;
  const table = new Float64Array(2 * tensors.length);
  tensors.forEach((t, i) => {
    if (t.isDisposed) throw new Error('tensorStats: a tensor is disposed');
    table[2 * i] = t.size;
    table[2 * i + 1] = t.size > 0 ? heapOffset(wasm, t) : 0;
  });
  const out = new Float64Array(2 * tensors.length);
  state.addon!.tensorStats(wasm.wasm.HEAPU8.buffer as ArrayBuffer, table, out, state.blas!.threads);
  return out;
}
