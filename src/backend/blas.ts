/**
 * Optional native OpenBLAS kernel for the wasm backend.
 *
 * The addon (native/blas, built at install by scripts/build-native.mjs) runs products on the
 * wasm heap itself (its own AVX-512 sgemm where the CPU has AVX-512, else `cblas_sgemm`; see
 * `MOR_SGEMM`): operands and output are addressed by their byte offsets in the WebAssembly
 * memory, so nothing is copied. When enabled it replaces the wasm backend's
 * `BatchMatMul` kernel (used by `tf.matMul` and so by the project matmul) and its
 * `_FusedMatMul` kernel (`tf.fused.matMul`: bias + linear/relu fused in C; other activations
 * run the wasm activation kernel on the product). Transposes are sgemm flags, batches loop inside C (a
 * batch-1 operand is broadcast with stride 0; general batch broadcasts run one call per slice).
 * The same addon carries MoR's rank-expansion loops and its fused adapter, registered as kernels by
 * rankKernels.ts and morLayerKernels.ts.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tfc from '@tensorflow/tfjs-core';
import { UserError } from '../errors.ts';
import { heapOffset as offset, type WasmBackend } from './wasmHeap.ts';
import { registerRankKernels } from './rankKernels.ts';
import { registerMorLayerKernels } from './morLayerKernels.ts';
import { registerLossKernels } from './lossKernels.ts';
import { registerAttentionKernels } from './attentionKernels.ts';
import { registerLayerKernels } from './layerKernels.ts';
import { registerOptimizerKernels } from './optimizerKernels.ts';
import { state } from './state.ts';

/** Result of {@link enableBlas}. */
export type BlasStatus = { ok: true; threads: number; config: string; sgemm: SgemmKernel } | { ok: false; reason: string };

/** Which code runs the products of more than two rows on the BLAS path. */
export type SgemmKernel = 'avx512' | 'openblas';

/** Functions exported by the compiled addon (native/blas/src/mor_blas.cc). */
export interface BlasAddon {
  /**
   * `batch` row-major products `C_i = op(A_i) op(B_i) (+ bias) (relu)` on a heap buffer.
   * Offsets in bytes; strides in elements (0 broadcasts one operand over the batch);
   * `biasLen` 0 (none), 1 (scalar) or n (per column).
   */
  gemmHeap(heap: ArrayBuffer, batch: number, m: number, n: number, k: number, transA: boolean,
    transB: boolean, aOff: number, bOff: number, cOff: number, aStride: number, bStride: number,
    biasOff: number, biasLen: number, relu: boolean): void;
  /** `c[m,n] = op(a) op(b)` on plain Float32Arrays (the benchmark's ceiling). */
  sgemm(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number,
    transA: boolean, transB: boolean): void;
  /** Set OpenBLAS's thread count; returns the count now in effect. */
  setThreads(n: number): number;
  getThreads(): number;
  /** OpenBLAS build string and core name. */
  config(): string;
  /** Use the addon's own AVX-512 sgemm (where the CPU has it) or OpenBLAS's; returns whether the own one is on. */
  setSgemm(own: boolean): boolean;
  ownSgemm(): boolean;
  ownSgemmAvailable(): boolean;
  /** MoR rank-expansion loops on the heap (native/blas/src/mor_rank.cc; see rankKernels.ts). */
  rankZ(heap: ArrayBuffer, t: number, n: number, r: number, gRows: number, hOff: number, gOff: number,
    omOff: number, zOff: number): void;
  rankBexp(heap: ArrayBuffer, n: number, r: number, dOut: number, bOff: number, omegaBOff: number, outOff: number): void;
  rankZGrad(heap: ArrayBuffer, t: number, n: number, r: number, gRows: number, dzOff: number, hOff: number,
    gOff: number, omOff: number, dhOff: number, dgOff: number, domOff: number): void;
  rankBexpGrad(heap: ArrayBuffer, n: number, r: number, dOut: number, dbexpOff: number, bOff: number,
    omegaBOff: number, dbOff: number, domegaBOff: number): void;
  /** A whole MoR adapter, forward and backward, in one call each (native/blas/src/mor_morlayer.cc; see morLayerKernels.ts). */
  morLayerForward(heap: ArrayBuffer, t: number, dIn: number, dOut: number, r: number, n: number, hasBias: number, scaling: number,
    xOff: number, aOff: number, wgOff: number, biasOff: number, omegaAOff: number, bOff: number, omegaBOff: number,
    yOff: number, outOff: number, gOff: number, hOff: number, zOff: number, bexpOff: number): void;
  morLayerBackward(heap: ArrayBuffer, t: number, dIn: number, dOut: number, r: number, n: number, hasBias: number, scaling: number,
    dyOff: number, dgOff: number, xOff: number, aOff: number, wgOff: number, omegaAOff: number, bOff: number, omegaBOff: number,
    hOff: number, gOff: number, zOff: number, bexpOff: number, dxOff: number, daOff: number, dwgOff: number, dbiasOff: number,
    domegaAOff: number, dbOff: number, domegaBOff: number): void;
  /** Fused cross-entropy on the heap (native/blas/src/mor_xent.cc; see lossKernels.ts). */
  xentForward(heap: ArrayBuffer, n: number, v: number, xOff: number, labelsOff: number, lossOff: number, lseOff: number,
    threads: number): void;
  xentBackward(heap: ArrayBuffer, n: number, v: number, xOff: number, lseOff: number, labelsOff: number, dyOff: number,
    dxOff: number, threads: number): void;
  /** Fused attention on the heap (native/blas/src/mor_attention.cc; see attentionKernels.ts); maskB 0: no mask. */
  attnForward(heap: ArrayBuffer, b: number, t: number, s: number, h: number, hkv: number, d: number, maskB: number,
    threads: number, qOff: number, kOff: number, vOff: number, maskOff: number, outOff: number): void;
  attnBackward(heap: ArrayBuffer, b: number, t: number, s: number, h: number, hkv: number, d: number, maskB: number,
    threads: number, qOff: number, kOff: number, vOff: number, maskOff: number, outOff: number, doutOff: number,
    dqOff: number, dkOff: number, dvOff: number): void;
  /** RMSNorm, SwiGLU and rope on the heap (native/blas/src/mor_norm.cc, mor_swiglu.cc, mor_rope.cc; see layerKernels.ts). */
  rmsNormForward(heap: ArrayBuffer, rows: number, d: number, xOff: number, wOff: number, eps: number, yOff: number, rOff: number,
    threads: number): void;
  rmsNormBackward(heap: ArrayBuffer, rows: number, d: number, xOff: number, wOff: number, rOff: number, dyOff: number,
    dxOff: number, dwOff: number, threads: number): void;
  swigluForward(heap: ArrayBuffer, n: number, gOff: number, uOff: number, aOff: number, threads: number): void;
  swigluBackward(heap: ArrayBuffer, n: number, gOff: number, uOff: number, daOff: number, dgOff: number, duOff: number,
    threads: number): void;
  ropeForward(heap: ArrayBuffer, rows: number, heads: number, d: number, xOff: number, cosOff: number, sinOff: number,
    scale: number, yOff: number, threads: number): void;
  ropeBackward(heap: ArrayBuffer, rows: number, heads: number, d: number, dyOff: number, cosOff: number, sinOff: number,
    scale: number, dxOff: number, threads: number): void;
  /**
   * AdamW over many tensors in one pass (native/blas/src/mor_optim.cc; see optimizerKernels.ts):
   * `table` 9 numbers per tensor (elements, byte offsets of p, m, v, g, p', m', v', decay 0/1),
   * `consts` the float32 constants b1, 1-b1, b2, 1-b2, bc2, eps, 1-lr*wd, stepSize, gradient scale.
   */
  adamwStep(heap: ArrayBuffer, table: Float64Array, consts: Float64Array, threads: number): void;
  /** Sum of squares and max |x| of many tensors: `table` (elements, byte offset) per tensor, `out` 2 per tensor. */
  tensorStats(heap: ArrayBuffer, table: Float64Array, out: Float64Array, threads: number): void;
}

type KernelArgs = Parameters<tfc.KernelFunc>[0];

/** Locate native/blas/build/Release/mor_blas.node from src/backend or dist/backend. */
function addonPath(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = path.join(dir, 'native', 'blas', 'build', 'Release', 'mor_blas.node');
    if (existsSync(p)) return p;
    dir = path.dirname(dir);
  }
  return undefined;
}

/** Load the compiled addon (once); `undefined` with {@link blasLoadError} set when it cannot. */
export function loadBlasAddon(): BlasAddon | undefined {
  if (state.addon || state.addonError) return state.addon;
  const p = addonPath();
  if (!p) {
    state.addonError = 'native addon not built (needs libopenblas-dev at npm install; see scripts/build-native.mjs)';
    return undefined;
  }
  try {
    state.addon = createRequire(import.meta.url)(p) as BlasAddon;
  } catch (e) {
    state.addonError = `native addon failed to load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
  }
  return state.addon;
}

/** Why the addon is unavailable (after {@link loadBlasAddon} returned undefined). */
export function blasLoadError(): string | undefined {
  return state.addonError;
}

/** Threads to use: `MOR_BLAS_THREADS` when set, else the available cores. */
export function blasThreadCount(): number {
  const env = process.env.MOR_BLAS_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) {
      throw new UserError(`MOR_BLAS_THREADS must be a positive integer (got "${env}")`);
    }
    return n;
  }
  return os.availableParallelism();
}

/**
 * `MOR_SGEMM`: `auto` (default: the addon's own AVX-512 sgemm where the CPU has AVX-512, else
 * OpenBLAS), `avx512` (an error without AVX-512) or `openblas`.
 */
export function sgemmRequest(): 'auto' | SgemmKernel {
  const v = (process.env.MOR_SGEMM ?? '').toLowerCase() || 'auto';
  if (v === 'auto' || v === 'avx512' || v === 'openblas') return v;
  throw new UserError(`MOR_SGEMM must be auto, avx512 or openblas (got "${process.env.MOR_SGEMM}")`);
}

/**
 * Register the OpenBLAS kernels on the wasm backend (idempotent). Call after the wasm
 * backend is ready. Returns the thread count, or why BLAS is not available.
 */
export function enableBlas(): BlasStatus {
  const lib = loadBlasAddon();
  if (!lib) return { ok: false, reason: state.addonError ?? 'native addon unavailable' };
  const request = sgemmRequest();
  if (request === 'avx512' && !lib.ownSgemmAvailable()) {
    throw new UserError('MOR_SGEMM=avx512, but this CPU has no AVX-512 (or the addon was built without it); use auto or openblas');
  }
  const threads = lib.setThreads(blasThreadCount());
  const config = lib.config();
  const sgemm: SgemmKernel = lib.setSgemm(request !== 'openblas') ? 'avx512' : 'openblas';
  if (!state.blas) {
    const originals = state.wasmMatmulKernels ??= [tfc.BatchMatMul, tfc._FusedMatMul].map((name) => {
      const k = tfc.getKernel(name, 'wasm');
      if (!k) throw new Error(`wasm backend has no ${name} kernel to replace`);
      return k;
    });
    const [origBmm, origFused] = originals;
    swapKernel({ kernelName: tfc.BatchMatMul, backendName: 'wasm', kernelFunc: (args) => batchMatMul(lib, args, origBmm) });
    swapKernel({ kernelName: tfc._FusedMatMul, backendName: 'wasm', kernelFunc: (args) => fusedMatMul(lib, args, origFused) });
    registerRankKernels(lib);
    registerMorLayerKernels(lib);
    registerLossKernels(lib);
    registerAttentionKernels(lib);
    registerLayerKernels(lib);
    registerOptimizerKernels(lib);
  }
  state.blas = { threads, config, sgemm };
  return { ok: true, threads, config, sgemm };
}

/** Restore the original wasm kernels (idempotent): the pure-wasm path. */
export function disableBlas(): void {
  if (!state.blas || !state.wasmMatmulKernels) return;
  for (const k of state.wasmMatmulKernels) swapKernel(k);
  state.blas = undefined;
}

/** True while the OpenBLAS kernels are registered. */
export function blasActive(): boolean {
  return state.blas !== undefined;
}

function swapKernel(config: tfc.KernelConfig): void {
  tfc.unregisterKernel(config.kernelName, config.backendName);
  tfc.registerKernel(config);
}

/**
 * Shapes of a (possibly batched) product, as a list of gemm calls: one call looping over the
 * batch in C when each operand's batch is 1 or full, else one call per output slice (general
 * broadcasting such as [2, 1] x [1, 3] batches, which the wasm kernel itself gets wrong).
 */
function plan(a: tfc.TensorInfo, b: tfc.TensorInfo, tA: boolean, tB: boolean) {
  const ar = a.shape.length;
  const br = b.shape.length;
  const m = tA ? a.shape[ar - 1] : a.shape[ar - 2];
  const k = tA ? a.shape[ar - 2] : a.shape[ar - 1];
  const kb = tB ? b.shape[br - 1] : b.shape[br - 2];
  const n = tB ? b.shape[br - 2] : b.shape[br - 1];
  if (k !== kb) {
    throw new Error(`Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ` +
      `${b.shape} and transposeA=${tA} and transposeB=${tB} must match.`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = tfc.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch);
  const batch = tfc.util.sizeFromShape(outBatch);
  const batchA = tfc.util.sizeFromShape(aBatch);
  const batchB = tfc.util.sizeFromShape(bBatch);
  const outShape = [...outBatch, m, n];
  if ((batchA === batch || batchA === 1) && (batchB === batch || batchB === 1)) {
    return { m, n, k, outShape, calls: [{ batch, aAt: 0, bAt: 0, cAt: 0, aStride: batchA === 1 ? 0 : m * k, bStride: batchB === 1 ? 0 : k * n }] };
  }
  const calls = [];
  for (let i = 0; i < batch; i++) {
    // Index of output slice i in each operand's (broadcast) batch, right-aligned as in numpy.
    let rest = i;
    let ia = 0, ib = 0, sa = 1, sb = 1;
    for (let d = outBatch.length - 1; d >= 0; d--) {
      const idx = rest % outBatch[d];
      rest = Math.floor(rest / outBatch[d]);
      const da = aBatch[d - (outBatch.length - aBatch.length)] ?? 1;
      const db = bBatch[d - (outBatch.length - bBatch.length)] ?? 1;
      ia += (da === 1 ? 0 : idx) * sa;
      ib += (db === 1 ? 0 : idx) * sb;
      sa *= da;
      sb *= db;
    }
    calls.push({ batch: 1, aAt: ia * m * k, bAt: ib * k * n, cAt: i * m * n, aStride: 0, bStride: 0 });
  }
  return { m, n, k, outShape, calls };
}

type Plan = NonNullable<ReturnType<typeof plan>>;

function run(lib: BlasAddon, backend: WasmBackend, p: Plan, a: tfc.TensorInfo, b: tfc.TensorInfo, tA: boolean,
  tB: boolean, bias?: tfc.TensorInfo, relu = false): tfc.TensorInfo {
  const out = backend.makeOutput(p.outShape, 'float32');
  // Read the heap after makeOutput: a malloc may grow (and detach) the wasm memory.
  const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
  const [ao, bo, co] = [offset(backend, a), offset(backend, b), offset(backend, out)];
  const biasOff = bias ? offset(backend, bias) : 0;
  const biasLen = bias ? tfc.util.sizeFromShape(bias.shape) : 0;
  for (const c of p.calls) {
    lib.gemmHeap(heap, c.batch, p.m, p.n, p.k, tA, tB, ao + 4 * c.aAt, bo + 4 * c.bAt, co + 4 * c.cAt,
      c.aStride, c.bStride, biasOff, biasLen, relu);
  }
  return out;
}

function batchMatMul(lib: BlasAddon, args: KernelArgs, original: tfc.KernelConfig): tfc.TensorInfo {
  const { a, b } = args.inputs as { a: tfc.TensorInfo; b: tfc.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as tfc.BatchMatMulAttrs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return original.kernelFunc(args) as tfc.TensorInfo;
  const p = plan(a, b, transposeA, transposeB);
  return run(lib, args.backend as unknown as WasmBackend, p, a, b, transposeA, transposeB);
}

/** tfjs activation name -> the wasm kernel applied after the BLAS product. */
const activationKernels: Record<string, string> = {
  elu: tfc.Elu, relu6: tfc.Relu6, sigmoid: tfc.Sigmoid, leakyrelu: tfc.LeakyRelu, prelu: tfc.Prelu,
};

function fusedMatMul(lib: BlasAddon, args: KernelArgs, original: tfc.KernelConfig): tfc.TensorInfo {
  const { a, b, bias, preluActivationWeights } = args.inputs as {
    a: tfc.TensorInfo; b: tfc.TensorInfo; bias?: tfc.TensorInfo; preluActivationWeights?: tfc.TensorInfo;
  };
  const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as tfc._FusedMatMulAttrs;
  const actKernel = activation === 'linear' || activation === 'relu' ? undefined : activationKernels[activation];
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || (!actKernel && activation !== 'linear' && activation !== 'relu')) {
    return original.kernelFunc(args) as tfc.TensorInfo;
  }
  const p = plan(a, b, transposeA, transposeB);
  const biasLen = bias ? tfc.util.sizeFromShape(bias.shape) : 0;
  if (bias && (bias.shape.length !== 1 || bias.dtype !== 'float32' || (biasLen !== 1 && biasLen !== p.n))) {
    return original.kernelFunc(args) as tfc.TensorInfo;
  }
  const backend = args.backend as unknown as WasmBackend;
  const z = run(lib, backend, p, a, b, transposeA, transposeB, bias, activation === 'relu');
  if (!actKernel) return z;
  // Other activations: the wasm backend's own kernel on the product. (The original fused wasm
  // kernel is wrong with transposed operands in tfjs-backend-wasm 4.22, so it is not used.)
  const kernel = tfc.getKernel(actKernel, 'wasm');
  if (!kernel) throw new Error(`wasm backend has no ${actKernel} kernel`);
  const inputs = activation === 'prelu' ? { x: z, alpha: preluActivationWeights! } : { x: z };
  const out = kernel.kernelFunc({ inputs, backend: args.backend, attrs: { alpha: leakyreluAlpha ?? 0.2 } }) as tfc.TensorInfo;
  (args.backend as unknown as { disposeData(id: object): void }).disposeData(z.dataId);
  return out;
}
