/**
 * The native fused layer kernels (native/blas/src/mor_norm.cc, mor_swiglu.cc, mor_rope.cc),
 * registered on the wasm backend with the OpenBLAS addon. Shapes (R rows = all axes but the
 * last, D their width; B, T, H, D for rope):
 *
 *  - `MorRmsNorm`        x `[..., D]`, weight `[D]`, attr eps          -> y `[..., D]`, r `[R]`
 *  - `MorRmsNormGrad`    x, weight, r, dy `[..., D]`                   -> dx `[..., D]`, dweight `[D]`
 *  - `MorSwiglu`         gate, up (same shape)                          -> silu(gate) * up
 *  - `MorSwigluGrad`     gate, up, da                                   -> dgate, dup
 *  - `MorRope`           x `[B, T, H, D]`, cos, sin `[B, T, 1, D]`, attr scale -> y `[B, T, H, D]`
 *  - `MorRopeGrad`       dy `[B, T, H, D]`, cos, sin, attr scale        -> dx `[B, T, H, D]`
 *
 * Each replaces 3-10 single-threaded wasm kernels of the tfjs-op version (and autodiff's
 * reverse of each) by one pass, split over the BLAS threads when it is large enough
 * (native/blas/src/mor_parallel.h). No registered gradients: the ops in rmsnorm.ts, mlp.ts
 * and rope.ts define them with customGrad.
 */
import * as tfc from '@tensorflow/tfjs-core';
import type { BlasAddon } from './blas.ts';
import { registerHeapKernel as register, sameShape, type Fail, type Inputs } from './heapKernel.ts';
import { state } from './state.ts';

export const RMS_NORM = 'MorRmsNorm';
export const RMS_NORM_GRAD = 'MorRmsNormGrad';
export const SWIGLU = 'MorSwiglu';
export const SWIGLU_GRAD = 'MorSwigluGrad';
export const ROPE = 'MorRope';
export const ROPE_GRAD = 'MorRopeGrad';

const same = sameShape;
const size = (t: tfc.TensorInfo) => tfc.util.sizeFromShape(t.shape);

/** Rows and width of an RMSNorm's x `[..., D]` against weight `[D]`. */
function normDims({ x, weight }: Inputs, fail: Fail): { rows: number; d: number } {
  const d = x.shape[x.shape.length - 1];
  if (x.shape.length < 1 || weight.shape.length !== 1 || weight.shape[0] !== d) {
    fail(`x [${x.shape}] must end in the length of the 1-D weight [${weight.shape}]`);
  }
  return { rows: d === 0 ? 0 : size(x) / d, d };
}

/** B * T, heads and D of rope's x `[B, T, H, D]` against tables `[B, T, 1, D]`. */
function ropeDims(x: tfc.TensorInfo, { cos, sin }: Inputs, fail: Fail): { rows: number; heads: number; d: number } {
  const [b, t, heads, d] = x.shape;
  if (x.shape.length !== 4 || !same(cos.shape, [b, t, 1, d]) || !same(sin.shape, [b, t, 1, d])) {
    fail(`x must be [B, T, H, D] and cos, sin [B, T, 1, D]; got [${x.shape}], [${cos.shape}], [${sin.shape}]`);
  }
  if (d % 2 !== 0) fail(`the head dimension must be even, got ${d}`);
  return { rows: b * t, heads, d };
}

/** Rope's constant factor (attr `scale`, 1 when absent). */
function ropeScale(attrs: tfc.NamedAttrMap, fail: Fail): number {
  const k = attrs.scale ?? 1;
  if (typeof k !== 'number' || !Number.isFinite(k)) fail(`scale must be a finite number, got ${String(k)}`);
  return k as number;
}

/** Register the six kernels on the wasm backend (idempotent). */
export function registerLayerKernels(lib: BlasAddon): void {
  if (state.layerKernels) return;
  const threads = () => state.blas?.threads ?? 1;
  register(RMS_NORM, (i, fail, attrs) => {
    const { rows, d } = normDims(i, fail);
    const eps = attrs.eps as number;
    if (typeof eps !== 'number' || !(eps >= 0)) fail(`eps must be a number >= 0, got ${eps}`);
    return {
      outs: [i.x.shape, [rows]],
      run: (heap, at, [y, r]) => lib.rmsNormForward(heap, rows, d, at(i.x), at(i.weight), eps, at(y), at(r), threads()),
    };
  });
  register(RMS_NORM_GRAD, (i, fail) => {
    const { rows, d } = normDims(i, fail);
    if (!same(i.dy.shape, i.x.shape) || !same(i.r.shape, [rows])) fail(`dy must have x's shape [${i.x.shape}] and r be [${rows}]`);
    return {
      outs: [i.x.shape, i.weight.shape],
      run: (heap, at, [dx, dw]) => lib.rmsNormBackward(heap, rows, d, at(i.x), at(i.weight), at(i.r), at(i.dy), at(dx), at(dw), threads()),
    };
  });
  register(SWIGLU, ({ gate, up }, fail) => {
    if (!same(gate.shape, up.shape)) fail(`gate [${gate.shape}] and up [${up.shape}] must have one shape`);
    return { outs: [gate.shape], run: (heap, at, [a]) => lib.swigluForward(heap, size(gate), at(gate), at(up), at(a), threads()) };
  });
  register(SWIGLU_GRAD, ({ gate, up, da }, fail) => {
    if (!same(gate.shape, up.shape) || !same(gate.shape, da.shape)) {
      fail(`gate [${gate.shape}], up [${up.shape}] and da [${da.shape}] must have one shape`);
    }
    return {
      outs: [gate.shape, gate.shape],
      run: (heap, at, [dg, du]) => lib.swigluBackward(heap, size(gate), at(gate), at(up), at(da), at(dg), at(du), threads()),
    };
  });
  register(ROPE, (i, fail, attrs) => {
    const { rows, heads, d } = ropeDims(i.x, i, fail);
    const k = ropeScale(attrs, fail);
    return { outs: [i.x.shape], run: (heap, at, [y]) => lib.ropeForward(heap, rows, heads, d, at(i.x), at(i.cos), at(i.sin), k, at(y), threads()) };
  });
  register(ROPE_GRAD, (i, fail, attrs) => {
    const { rows, heads, d } = ropeDims(i.dy, i, fail);
    const k = ropeScale(attrs, fail);
    return { outs: [i.dy.shape], run: (heap, at, [dx]) => lib.ropeBackward(heap, rows, heads, d, at(i.dy), at(i.cos), at(i.sin), k, at(dx), threads()) };
  });
  state.layerKernels = true;
}

/** True once the kernels are registered (the addon loaded). */
export function layerKernelsRegistered(): boolean {
  return state.layerKernels;
}

/** True when the native layer kernels run: registered, and the BLAS (native) path active. */
export function nativeLayerKernelsActive(): boolean {
  return state.layerKernels && state.blas !== undefined;
}
