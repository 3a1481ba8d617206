/**
 * A whole MoR adapter in one native kernel each way (native/blas/src/mor_morlayer.cc),
 * registered on the wasm backend with the OpenBLAS addon; the differentiable op built on them
 * is src/adapters/morFused.ts. Shapes (T tokens, N experts, rank r):
 *
 *  - `MorLayer`      x `[T, in]`, a `[r, in]`, wg `[N, in]`, omegaA `[N, r]`, b `[out, r]`,
 *                    omegaB `[N, out]`, optional bias `[N]`, y `[T, out]` (the frozen layer's
 *                    output); attr scaling
 *                    -> y + delta `[T, out]`, g `[T, N]`, and for the backward h `[T, r]`,
 *                       z `[T, N*r]`, bexp `[out, N*r]`
 *  - `MorLayerGrad`  dy `[T, out]`, dg `[T, N]`, x, a, wg, omegaA, b, omegaB, h, g, z, bexp;
 *                    attrs scaling, hasBias
 *                    -> dx, da, dwg, domegaA, db, domegaB (and dbias `[N]` with hasBias)
 */
import * as tfc from '@tensorflow/tfjs-core';
import type { BlasAddon } from './blas.ts';
import { registerHeapKernel, sameShape, type Fail, type Inputs } from './heapKernel.ts';
import { state } from './state.ts';

export const MOR_LAYER = 'MorLayer';
export const MOR_LAYER_GRAD = 'MorLayerGrad';

/** True once the fused MoR kernels are registered (the addon loaded). */
export function morLayerKernelsRegistered(): boolean {
  return state.morLayerKernels;
}

interface Dims {
  t: number;
  dIn: number;
  dOut: number;
  r: number;
  n: number;
}

/** The dimensions of one adapter call, with every operand's shape checked against them. */
function dimsOf({ x, a, wg, omegaA, b, omegaB, bias, y }: Inputs, fail: Fail): Dims {
  const [t, dIn] = x.shape;
  const [r, n, dOut] = [a.shape[0], wg.shape[0], b.shape[0]];
  const want: [string, tfc.TensorInfo, number[]][] = [
    ['x', x, [t, dIn]], ['a', a, [r, dIn]], ['wg', wg, [n, dIn]], ['omegaA', omegaA, [n, r]], ['b', b, [dOut, r]],
    ['omegaB', omegaB, [n, dOut]],
  ];
  if (bias) want.push(['bias', bias, [n]]);
  if (y) want.push(['y', y, [t, dOut]]);
  for (const [name, info, shape] of want) {
    if (!sameShape(info.shape, shape)) fail(`${name} is [${info.shape}], expected [${shape}] (x [${x.shape}], a [${a.shape}], wg [${wg.shape}], b [${b.shape}])`);
  }
  if (n < 1) fail('the router needs at least one expert');
  return { t, dIn, dOut, r, n };
}

function scalingOf(attrs: tfc.NamedAttrMap, fail: Fail): number {
  const s = attrs.scaling;
  if (typeof s !== 'number' || !Number.isFinite(s)) fail(`attribute scaling must be a finite number, got ${String(s)}`);
  return s as number;
}

/** Register the two kernels on the wasm backend (idempotent). */
export function registerMorLayerKernels(lib: BlasAddon): void {
  if (state.morLayerKernels) return;
  registerHeapKernel(MOR_LAYER, (ins, fail, attrs) => {
    const { t, dIn, dOut, r, n } = dimsOf(ins, fail);
    const s = scalingOf(attrs, fail);
    const { x, a, wg, bias, omegaA, b, omegaB, y } = ins;
    if (!y) fail('input y (the frozen layer\'s output) is missing');
    return {
      outs: [[t, dOut], [t, n], [t, r], [t, n * r], [dOut, n * r]],
      run: (heap, at, [out, g, h, z, bexp]) => lib.morLayerForward(
        heap, t, dIn, dOut, r, n, bias ? 1 : 0, s, at(x), at(a), at(wg), bias ? at(bias) : 0, at(omegaA), at(b), at(omegaB),
        at(y), at(out), at(g), at(h), at(z), at(bexp),
      ),
    };
  });
  registerHeapKernel(MOR_LAYER_GRAD, (ins, fail, attrs) => {
    const { t, dIn, dOut, r, n } = dimsOf(ins, fail);
    const s = scalingOf(attrs, fail);
    const hasBias = attrs.hasBias === true;
    const { dy, dg, x, a, wg, omegaA, b, omegaB, h, g, z, bexp } = ins;
    const saved: [string, tfc.TensorInfo, number[]][] = [
      ['dy', dy, [t, dOut]], ['dg', dg, [t, n]], ['h', h, [t, r]], ['g', g, [t, n]], ['z', z, [t, n * r]], ['bexp', bexp, [dOut, n * r]],
    ];
    for (const [name, info, shape] of saved) {
      if (!sameShape(info.shape, shape)) fail(`${name} is [${info.shape}], expected [${shape}]`);
    }
    return {
      outs: [x.shape, a.shape, wg.shape, omegaA.shape, b.shape, omegaB.shape, ...(hasBias ? [[n]] : [])],
      run: (heap, at, [dx, da, dwg, domegaA, db, domegaB, dbias]) => lib.morLayerBackward(
        heap, t, dIn, dOut, r, n, hasBias ? 1 : 0, s, at(dy), at(dg), at(x), at(a), at(wg), at(omegaA), at(b), at(omegaB),
        at(h), at(g), at(z), at(bexp), at(dx), at(da), at(dwg), dbias ? at(dbias) : 0, at(domegaA), at(db), at(domegaB),
      ),
    };
  });
  state.morLayerKernels = true;
}
