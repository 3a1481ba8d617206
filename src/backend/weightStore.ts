/**
 * Frozen base weights outside the wasm heap (Node, with the native addon).
 *
 * tfjs-wasm keeps every tensor in one 32-bit heap (4 GiB in all), which a 1B model in float32
 * already overflows. A {@link StoredWeight} is instead a view of a memory-mapped safetensors
 * file, kept in its file dtype (F32, F16 or BF16); the addon (native/blas/src/mor_store.cc)
 * converts it to float32 while packing it for `cblas_sgemm`, and reads activations from and
 * writes results to the wasm heap. Two wasm-backend kernels use it:
 *
 *  - `MorStoredMatMul`  x `[m, k]` -> `x Wᵀ` `[m, rows]` (transposeW) or `x W` `[m, cols]`
 *  - `MorStoredGather`  ids `[n]` int32 -> `W[ids]` `[n, cols]` (embedding lookup)
 *
 * A stored weight is frozen by construction: making it trainable (full fine-tuning) copies it
 * into a heap tensor ({@link StoredWeight.toTensor}).
 */
import * as tfc from '@tensorflow/tfjs-core';
import { tf } from './tf.ts';
import { blasActive, loadBlasAddon, type BlasAddon } from './blas.ts';
import { heapOffset, type WasmBackend } from './wasmHeap.ts';
import { state } from './state.ts';

/** File dtypes a stored weight may have (safetensors names). */
export type StoredDtype = 'F32' | 'F16' | 'BF16';

/** dtype codes of the addon (mor_store.cc `Dtype`). */
const DTYPE_CODE: Record<StoredDtype, number> = { F32: 0, F16: 1, BF16: 2 };
const DTYPE_BYTES: Record<StoredDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** The store's addon functions (native/blas/src/mor_store.cc). */
export interface StoreAddon {
  mapFile(path: string): [number, number];
  unmapFile(handle: number): void;
  storedGemm(heap: ArrayBuffer, handle: number, wOff: number, dtype: number, rows: number, cols: number, m: number,
    transposeW: boolean, xOff: number, yOff: number, blockFloats: number): void;
  storedGather(heap: ArrayBuffer, handle: number, wOff: number, dtype: number, rows: number, cols: number,
    idsOff: number, count: number, outOff: number): void;
  storedRead(handle: number, off: number, dtype: number, count: number, dst: Float32Array, dstAt: number): void;
  storedNonFinite(handle: number, off: number, dtype: number, count: number): number;
}

function storeAddon(): StoreAddon {
  const lib = loadBlasAddon() as (BlasAddon & Partial<StoreAddon>) | undefined;
  if (!lib?.storedGemm) throw new Error('the native weight store needs the rebuilt native addon');
  return lib as StoreAddon;
}

/**
 * Whether new models keep their frozen weights in the store: the addon is loaded with the
 * store functions, the BLAS kernel is active, and `MOR_WEIGHT_STORE` is not `0`.
 */
export function weightStoreAvailable(): boolean {
  if (process.env.MOR_WEIGHT_STORE === '0' || !blasActive()) return false;
  const lib = loadBlasAddon() as Partial<StoreAddon> | undefined;
  return typeof lib?.storedGemm === 'function';
}

/** A memory-mapped file, unmapped when the last weight that views it is disposed. */
export class MappedFile {
  readonly handle: number;
  readonly size: number;
  private refs = 0;

  constructor(readonly path: string) {
    [this.handle, this.size] = storeAddon().mapFile(path);
  }

  /** @internal */
  retain(): void {
    this.refs++;
  }

  /** @internal */
  release(): void {
    if (--this.refs <= 0) storeAddon().unmapFile(this.handle);
  }
}

/**
 * A frozen 2-D weight `[rows, cols]` stored in a mapped file at `byteOffset`, in `fileDtype`.
 * It answers the parts of the tensor interface that the module tree uses (shape, size,
 * dataSync, dispose); products and lookups go through {@link storedMatMul} /
 * {@link storedGather}.
 */
export class StoredWeight {
  readonly shape: [number, number];
  readonly size: number;
  readonly rank = 2;
  /** The values it stands for are float32 (the file dtype is {@link fileDtype}). */
  readonly dtype = 'float32' as const;
  private disposed = false;

  constructor(readonly file: MappedFile, readonly byteOffset: number, readonly fileDtype: StoredDtype, shape: [number, number]) {
    this.shape = shape;
    this.size = shape[0] * shape[1];
    if (byteOffset < 0 || byteOffset + this.size * DTYPE_BYTES[fileDtype] > file.size) {
      throw new Error(`stored weight [${shape}] ${fileDtype} at byte ${byteOffset} lies outside ${file.path}`);
    }
    file.retain();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Bytes the weight takes in its file (and in memory, once mapped in). */
  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.fileDtype];
  }

  /** @internal Arguments the addon takes for this weight. */
  get native(): { handle: number; off: number; dtype: number } {
    if (this.disposed) throw new Error('stored weight used after dispose');
    return { handle: this.file.handle, off: this.byteOffset, dtype: DTYPE_CODE[this.fileDtype] };
  }

  /** The values as float32 (a new host array). */
  dataSync(): Float32Array {
    const out = new Float32Array(this.size);
    this.readRows(0, this.shape[0], out);
    return out;
  }

  /** Rows `[from, from + count)` as float32 into `dst` (from `dstAt`). */
  readRows(from: number, count: number, dst: Float32Array, dstAt = 0): void {
    const { handle, off, dtype } = this.native;
    const cols = this.shape[1];
    storeAddon().storedRead(handle, off + from * cols * DTYPE_BYTES[this.fileDtype], dtype, count * cols, dst, dstAt);
  }

  /** A float32 heap tensor with the same values (owned by the caller, or the enclosing tidy). */
  toTensor(): tf.Tensor2D {
    return tf.tensor2d(this.dataSync(), this.shape);
  }

  /** How many values are NaN or ±Inf. */
  countNonFinite(): number {
    const { handle, off, dtype } = this.native;
    return storeAddon().storedNonFinite(handle, off, dtype, this.size);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.file.release();
  }
}

/** A weight held either as a heap tensor or in the store. */
export type FrozenWeight = tf.Tensor2D | StoredWeight;

/** The weight as a heap tensor: itself, or a float32 copy of a stored one (caller-owned / tidy). */
export function weightTensor(w: FrozenWeight): tf.Tensor2D {
  return w instanceof StoredWeight ? w.toTensor() : w;
}

export const STORED_MATMUL = 'MorStoredMatMul';
export const STORED_GATHER = 'MorStoredGather';

/** @internal Tests: convert stored weights in blocks of at most `n` floats (0: the addon's default, 640 MB). */
export function setStoreBlockFloats(n: number): void {
  state.storeBlockFloats = n;
}

/** Run `call`, which fills `out`; if it throws (a bad token id), free `out` before rethrowing. */
function freeOnThrow(wasm: WasmBackend, out: tfc.TensorInfo, call: () => void): tfc.TensorInfo {
  try {
    call();
  } catch (e) {
    wasm.disposeData(out.dataId);
    throw e;
  }
  return out;
}

/** Register the store's kernels on the wasm backend (idempotent). */
function ensureKernels(): void {
  if (state.storeKernels) return;
  const lib = storeAddon();
  tfc.registerKernel({
    kernelName: STORED_MATMUL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as unknown as WasmBackend;
      const { x } = inputs as { x: tfc.TensorInfo };
      const { weight, transposeW } = attrs as unknown as { weight: StoredWeight; transposeW: boolean };
      const [rows, cols] = weight.shape;
      const [m, k] = x.shape;
      if (x.dtype !== 'float32' || x.shape.length !== 2 || k !== (transposeW ? cols : rows)) {
        throw new Error(`${STORED_MATMUL}: x [${x.shape}] ${x.dtype} does not fit weight [${weight.shape}] (transposeW ${transposeW})`);
      }
      const out = wasm.makeOutput([m, transposeW ? rows : cols], 'float32');
      const { handle, off, dtype } = weight.native;
      // Read the heap after makeOutput: an allocation may grow (and replace) the wasm memory.
      return freeOnThrow(wasm, out, () => lib.storedGemm(wasm.wasm.HEAPU8.buffer as ArrayBuffer, handle, off, dtype,
        rows, cols, m, transposeW, heapOffset(wasm, x), heapOffset(wasm, out), state.storeBlockFloats));
    },
  });
  tfc.registerKernel({
    kernelName: STORED_GATHER,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as unknown as WasmBackend;
      const { ids } = inputs as { ids: tfc.TensorInfo };
      const { weight } = attrs as unknown as { weight: StoredWeight };
      if (ids.dtype !== 'int32' || ids.shape.length !== 1) throw new Error(`${STORED_GATHER}: ids must be int32 [n]`);
      const [rows, cols] = weight.shape;
      const out = wasm.makeOutput([ids.shape[0], cols], 'float32');
      const { handle, off, dtype } = weight.native;
      return freeOnThrow(wasm, out, () => lib.storedGather(wasm.wasm.HEAPU8.buffer as ArrayBuffer, handle, off, dtype,
        rows, cols, heapOffset(wasm, ids), ids.shape[0], heapOffset(wasm, out)));
    },
  });
  state.storeKernels = true;
}

/** `x Wᵀ` `[m, rows]` (transposeW) or `x W` `[m, cols]` for x `[m, k]`; no gradient (see frozenLinear.ts). */
export function storedMatMul(x: tf.Tensor2D, w: StoredWeight, transposeW: boolean): tf.Tensor2D {
  ensureKernels();
  return tfc.engine().runKernel(STORED_MATMUL, { x }, { weight: w, transposeW } as unknown as tfc.NamedAttrMap) as tf.Tensor2D;
}

/** Rows `W[ids]` `[n, cols]` for int32 ids `[n]`; no gradient (the weight is frozen). */
export function storedGather(w: StoredWeight, ids: tf.Tensor1D): tf.Tensor2D {
  ensureKernels();
  return tfc.engine().runKernel(STORED_GATHER, { ids }, { weight: w } as unknown as tfc.NamedAttrMap) as tf.Tensor2D;
}

/** A trainable copy of a frozen parameter (a stored weight is copied onto the heap). */
export function variableFrom(p: tf.Tensor | StoredWeight): tf.Variable {
  if (!(p instanceof StoredWeight)) return tf.variable(p, true);
  const t = p.toTensor();
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}
