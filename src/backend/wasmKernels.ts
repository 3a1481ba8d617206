/**
 * Replacements for tfjs-backend-wasm 4.22 kernels that are slow or wrong, installed once by
 * initBackend (before the optional BLAS kernels):
 *  - Identity copied its input; the engine runs it on every tensor it saves for backprop, so
 *    each matmul under a gradient tape copied its weight. Tensors are immutable in tfjs
 *    (variables swap their dataId on assign), so it now shares memory by reference count, as
 *    the CPU backend's Identity and wasm's own Reshape do.
 *  - Slice and Unpack (tf.slice, tf.unstack) copied the WHOLE input out of the heap
 *    (`readSync`) for every slice: unstacking [8,256,256] took ~20 ms. They now copy only the
 *    selected runs, inside the heap.
 *  - _FusedMatMul (tf.fused.matMul) gives wrong values with transposeA/transposeB (relative
 *    error 0.2–0.6 measured on 7x13x5); transposed operands are now materialised first.
 *  - GatherV2 (tf.gather, the embedding lookup) moved one element at a time: 1024 rows of a
 *    [49152, 576] table took 14.7 ms. It now copies whole rows with `copyWithin` inside the heap
 *    (0.24 ms), for 4-byte dtypes without batch dimensions; other cases run the original.
 */
import * as tfc from '@tensorflow/tfjs-core';
import { heapOffset, type WasmBackend } from './wasmHeap.ts';
import { state } from './state.ts';

/** Install the kernel replacements on the wasm backend (idempotent). */
export function installWasmKernelFixes(): void {
  if (state.wasmFixesInstalled) return;
  state.wasmFixesInstalled = true;
  replace(tfc.Identity, (original) => (args) => {
    const { x } = args.inputs as { x: tfc.TensorInfo };
    if (x.dtype === 'string') return original.kernelFunc(args);
    (args.backend as unknown as WasmBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
  replace(tfc.Slice, (original) => (args) => {
    const { x } = args.inputs as { x: tfc.TensorInfo };
    if (x.dtype === 'string') return original.kernelFunc(args);
    const { begin, size } = args.attrs as unknown as tfc.SliceAttrs;
    const [b, s] = tfc.slice_util.parseSliceParams(x as tfc.Tensor, begin, size);
    tfc.slice_util.assertParamsValid(x as tfc.Tensor, b, s);
    return sliceInHeap(args.backend as unknown as WasmBackend, x, b, s, s);
  });
  replace(tfc.Unpack, (original) => (args) => {
    const { value } = args.inputs as { value: tfc.TensorInfo };
    if (value.dtype === 'string') return original.kernelFunc(args);
    const rank = value.shape.length;
    let { axis } = args.attrs as unknown as tfc.UnpackAttrs;
    if (axis < 0) axis += rank;
    const outShape = value.shape.filter((_, i) => i !== axis);
    const size = value.shape.slice();
    size[axis] = 1;
    const outs: tfc.TensorInfo[] = [];
    for (let i = 0; i < value.shape[axis]; i++) {
      const begin = new Array<number>(rank).fill(0);
      begin[axis] = i;
      outs.push(sliceInHeap(args.backend as unknown as WasmBackend, value, begin, size, outShape));
    }
    return outs;
  });
  replace(tfc.GatherV2, (original) => (args) => {
    const { x, indices } = args.inputs as { x: tfc.TensorInfo; indices: tfc.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as tfc.GatherV2Attrs;
    if ((batchDims ?? 0) !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32') || indices.dtype !== 'int32') {
      return original.kernelFunc(args);
    }
    return gatherInHeap(args.backend as unknown as WasmBackend, x, indices, tfc.util.parseAxisParam(axis, x.shape)[0]);
  });
  replace(tfc._FusedMatMul, (original) => (args) => {
    const { transposeA, transposeB } = args.attrs as unknown as tfc._FusedMatMulAttrs;
    if (!transposeA && !transposeB) return original.kernelFunc(args);
    const transpose = tfc.getKernel(tfc.Transpose, 'wasm');
    if (!transpose) throw new Error('wasm backend has no Transpose kernel');
    const inputs = args.inputs as Record<string, tfc.TensorInfo>;
    const swap = (x: tfc.TensorInfo) => {
      const r = x.shape.length;
      const perm = [...Array(r - 2).keys(), r - 1, r - 2]; // swap the last two dims
      return transpose.kernelFunc({ inputs: { x }, backend: args.backend, attrs: { perm } }) as tfc.TensorInfo;
    };
    const a = transposeA ? swap(inputs.a) : inputs.a;
    const b = transposeB ? swap(inputs.b) : inputs.b;
    const out = original.kernelFunc({
      ...args, inputs: { ...inputs, a, b }, attrs: { ...args.attrs, transposeA: false, transposeB: false },
    });
    const backend = args.backend as unknown as WasmBackend;
    if (transposeA) backend.disposeData(a.dataId);
    if (transposeB) backend.disposeData(b.dataId);
    return out;
  });
}

function replace(kernelName: string, make: (original: tfc.KernelConfig) => tfc.KernelFunc): void {
  const original = tfc.getKernel(kernelName, 'wasm');
  if (!original) return;
  tfc.unregisterKernel(kernelName, 'wasm');
  tfc.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: make(original) });
}

/**
 * Copy the box `begin .. begin+size` of `x` into a new tensor of shape `outShape` (same
 * element count), moving contiguous runs with `copyWithin` inside the wasm heap.
 */
function sliceInHeap(backend: WasmBackend, x: tfc.TensorInfo, begin: number[], size: number[], outShape: number[]): tfc.TensorInfo {
  const out = backend.makeOutput(outShape, x.dtype);
  const rank = x.shape.length;
  if (tfc.util.sizeFromShape(size) === 0) return out;
  const bpe = tfc.util.bytesPerElement(x.dtype);
  // Read the heap after makeOutput: a malloc may grow (and detach) the wasm memory.
  const heap = backend.wasm.HEAPU8;
  const src = heapOffset(backend, x);
  let dst = heapOffset(backend, out);
  if (rank === 0) {
    heap.copyWithin(dst, src, src + bpe);
    return out;
  }
  const strides = new Array<number>(rank).fill(1); // in elements
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * x.shape[i + 1];
  // Innermost contiguous run: trailing dims taken whole merge into dim k's run.
  let k = rank - 1;
  while (k > 0 && begin[k] === 0 && size[k] === x.shape[k]) k--;
  const runBytes = size[k] * strides[k] * bpe;
  const outer = size.slice(0, k);
  const count = tfc.util.sizeFromShape(outer);
  const idx = new Array<number>(k).fill(0);
  for (let t = 0; t < count; t++) {
    let off = begin[k] * strides[k];
    for (let i = 0; i < k; i++) off += (begin[i] + idx[i]) * strides[i];
    heap.copyWithin(dst, src + off * bpe, src + off * bpe + runBytes);
    dst += runBytes;
    for (let d = k - 1; d >= 0; d--) {
      if (++idx[d] < outer[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * `tf.gather(x, indices, axis)` for a 4-byte dtype: for each position of the axes before `axis`
 * and each index, one `copyWithin` of the block of trailing axes. Indices are checked as the CPU
 * backend checks them.
 */
function gatherInHeap(backend: WasmBackend, x: tfc.TensorInfo, indices: tfc.TensorInfo, axis: number): tfc.TensorInfo {
  const dim = x.shape[axis];
  const outShape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  const out = backend.makeOutput(outShape, x.dtype);
  const n = tfc.util.sizeFromShape(indices.shape);
  const outer = tfc.util.sizeFromShape(x.shape.slice(0, axis));
  const blockBytes = 4 * tfc.util.sizeFromShape(x.shape.slice(axis + 1));
  if (n === 0 || outer === 0 || blockBytes === 0) return out;
  // Read the heap after makeOutput: a malloc may grow (and detach) the wasm memory.
  const heap = backend.wasm.HEAPU8;
  const ids = new Int32Array(heap.buffer, heap.byteOffset + heapOffset(backend, indices), n);
  for (let j = 0; j < n; j++) {
    if (ids[j] < 0 || ids[j] >= dim) throw new Error(`GatherV2: the index value ${ids[j]} is not in [0, ${dim - 1}]`);
  }
  const src = heapOffset(backend, x);
  let dst = heapOffset(backend, out);
  for (let o = 0; o < outer; o++) {
    const base = src + o * dim * blockBytes;
    for (let j = 0; j < n; j++) {
      const from = base + ids[j] * blockBytes;
      heap.copyWithin(dst, from, from + blockBytes);
      dst += blockBytes;
    }
  }
  return out;
}
