/**
 * Native kernels for the element-wise parts of MoR's rank-expansion product
 * (src/adapters/rankExpansion.ts), registered on the wasm backend when the OpenBLAS addon
 * loads. Each is one C loop over the heap (native/blas/src/mor_rank.cc) where the tfjs-op
 * version needs 2-4 wasm kernels, some of them reductions over a middle axis that the wasm
 * backend runs as transpose + sum. Shapes (T tokens, N experts, rank r):
 *
 *  - `MorRankZ`        h `[T, r]`, g `[T|1, N]`, om `[N, r]`      -> z `[T, N*r]`
 *  - `MorRankBexp`     b `[out, r]`, omegaB `[N, out]`            -> bexp `[out, N*r]`
 *  - `MorRankZGrad`    dz `[T, N*r]`, h, g, om                    -> dh, dg, dom
 *  - `MorRankBexpGrad` dbexp `[out, N*r]`, b, omegaB              -> db, domegaB
 *
 * They have no registered gradients: the differentiable op built from them defines its own.
 */
import * as tfc from '@tensorflow/tfjs-core';
import type { BlasAddon } from './blas.ts';
import { heapOffset, type WasmBackend } from './wasmHeap.ts';
import { state } from './state.ts';

export const RANK_Z = 'MorRankZ';
export const RANK_BEXP = 'MorRankBexp';
export const RANK_Z_GRAD = 'MorRankZGrad';
export const RANK_BEXP_GRAD = 'MorRankBexpGrad';

/** True once the native rank kernels are registered (the addon loaded). */
export function rankKernelsRegistered(): boolean {
  return state.rankKernels;
}

type Inputs = Record<string, tfc.TensorInfo>;

/**
 * Register one kernel: allocate the outputs, then call the addon with the heap (read after
 * the allocations, which may grow it) and the byte offsets of inputs and outputs.
 */
function register(
  kernelName: string,
  outShapes: (inputs: Inputs) => number[][],
  call: (heap: ArrayBuffer, inputs: Inputs, at: (t: tfc.TensorInfo) => number, outs: tfc.TensorInfo[]) => void,
): void {
  tfc.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as unknown as WasmBackend;
      const ins = inputs as Inputs;
      for (const [name, t] of Object.entries(ins)) {
        if (t.dtype !== 'float32') throw new Error(`${kernelName}: input ${name} must be float32, got ${t.dtype}`);
      }
      const outs = outShapes(ins).map((shape) => wasm.makeOutput(shape, 'float32'));
      call(wasm.wasm.HEAPU8.buffer as ArrayBuffer, ins, (t) => heapOffset(wasm, t), outs);
      return outs.length === 1 ? outs[0] : outs;
    },
  });
}

/** Register the four kernels on the wasm backend (idempotent). */
export function registerRankKernels(lib: BlasAddon): void {
  if (state.rankKernels) return;
  const dims = ({ h, g, om }: Inputs) => ({ t: h.shape[0], n: om.shape[0], r: om.shape[1], gRows: g.shape[0] });
  register(RANK_Z, (i) => {
    const { t, n, r } = dims(i);
    return [[t, n * r]];
  }, (heap, i, at, [z]) => {
    const { t, n, r, gRows } = dims(i);
    lib.rankZ(heap, t, n, r, gRows, at(i.h), at(i.g), at(i.om), at(z));
  });
  register(RANK_BEXP, ({ b, omegaB }) => [[b.shape[0], omegaB.shape[0] * b.shape[1]]], (heap, { b, omegaB }, at, [out]) => {
    lib.rankBexp(heap, omegaB.shape[0], b.shape[1], b.shape[0], at(b), at(omegaB), at(out));
  });
  register(RANK_Z_GRAD, ({ h, g, om }) => [h.shape, g.shape, om.shape], (heap, i, at, [dh, dg, dom]) => {
    const { t, n, r, gRows } = dims(i);
    lib.rankZGrad(heap, t, n, r, gRows, at(i.dz), at(i.h), at(i.g), at(i.om), at(dh), at(dg), at(dom));
  });
  register(RANK_BEXP_GRAD, ({ b, omegaB }) => [b.shape, omegaB.shape], (heap, { dbexp, b, omegaB }, at, [db, domegaB]) => {
    lib.rankBexpGrad(heap, omegaB.shape[0], b.shape[1], b.shape[0], at(dbexp), at(b), at(omegaB), at(db), at(domegaB));
  });
  state.rankKernels = true;
}
