/**
 * Backend initialisation and the choice of matmul path, recorded in the backend state
 * (src/backend/state.ts) that every backend file shares.
 *
 * We run on `@tensorflow/tfjs-backend-wasm` (SIMD, single-threaded in Node; see
 * docs/backend.md), loading its .wasm files from node_modules so nothing is
 * fetched. An optional native BLAS kernel (src/backend/blas.ts) replaces the wasm
 * backend's BatchMatMul when the addon is built and loads. Slow or wrong wasm kernels
 * (Identity, Slice, Unpack, _FusedMatMul) are replaced at init (src/backend/wasmKernels.ts).
 * In a browser (no `process`) the same module runs without Node imports: the .wasm files come
 * from `wasmPaths` (or tfjs' default, next to the script), and tfjs loads its threaded build
 * when the page is cross-origin isolated.
 */
import * as tf from '@tensorflow/tfjs-core';
// Chained ops (`x.square()`) are opt-in in tfjs-core; register them once here.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
// Gradients of the built-in ops are also opt-in.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { UserError } from '../errors.ts';
import { installWasmKernelFixes } from './wasmKernels.ts';
import { setShapeOnlySaves } from './shapeOnlySaves.ts';
import { startWithWasmThreads } from './wasmThreads.ts';
import { state, type MatmulRequest } from './state.ts';
import type { SgemmKernel } from './blas.ts';

export { tf };

/** Which matmul path is active after {@link initBackend}. */
export type MatmulPath = 'wasm' | 'wasm+blas';

export interface BackendInfo {
  /** tfjs backend name (always `wasm` here). */
  backend: string;
  /** `wasm+blas` when the OpenBLAS kernel is registered, `wasm` otherwise. */
  matmulPath: MatmulPath;
  /** Why BLAS is not active, when it is not. */
  blasReason?: string;
  /** Threads used by the BLAS kernel (1 on the wasm path). */
  threads: number;
  /** Threads of the wasm kernels as tfjs reports them (1 in Node, where tfjs-wasm is single-threaded). */
  wasmThreads: number;
  /** OpenBLAS build and core (e.g. `OpenBLAS 0.3.21 ... Haswell`), on the BLAS path. */
  blasConfig?: string;
  /**
   * On the BLAS path, what runs the products of more than two rows: the addon's own AVX-512
   * sgemm (the default where the CPU has AVX-512; `MOR_SGEMM`) or OpenBLAS's.
   */
  sgemm?: SgemmKernel;
}

export interface InitOptions {
  /**
   * Force a matmul path. Default: `MOR_MATMUL` from the environment (`wasm` or `blas`),
   * else BLAS when available. Once the backend is initialised, a different value is an
   * error (switch paths with {@link setMatmulPath}).
   */
  matmul?: 'wasm' | 'blas' | 'auto';
  /**
   * Print which path is active (once per process). Default: `MOR_QUIET` unset. Only the call
   * that initialises the backend announces; later calls ignore it.
   */
  announce?: boolean;
  /**
   * Browsers only: where the tfjs-backend-wasm `.wasm` files are served, as a URL prefix
   * ending in `/` or one URL per file name. Node loads them from node_modules.
   */
  wasmPaths?: string | Partial<Record<WasmFileName, string>>;
  /**
   * Browsers only, cross-origin isolated pages (tfjs' threaded build): threads of the wasm
   * kernels, 1 to 8. Default: tfjs' choice, half of `navigator.hardwareConcurrency` (one
   * thread on a 2-core machine); see src/backend/wasmThreads.ts. Ignored in Node.
   */
  wasmThreads?: number;
}

/** The .wasm files of tfjs-backend-wasm (plain, SIMD, threaded SIMD). */
export type WasmFileName = 'tfjs-backend-wasm.wasm' | 'tfjs-backend-wasm-simd.wasm' | 'tfjs-backend-wasm-threaded-simd.wasm';

/** Node (process, node: modules, the native addon) or a browser / worker. */
const IN_NODE = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
const envVar = (name: string): string | undefined => (IN_NODE ? process.env[name] : undefined);

/**
 * Initialise the backend once per process; later calls return the same info. Every async
 * entry point that needs tensors (`loadModel`, `generate`, `train`, `runTraining`, ...)
 * calls it, so calling it yourself is needed only to choose options, or before building
 * tensors synchronously (`createRandomModel`, `tf.*`). A later call whose `matmul` differs
 * from the active one rejects with a {@link UserError}; the same options are a no-op.
 */
export function initBackend(options: InitOptions = {}): Promise<BackendInfo> {
  const active = state.init;
  if (active) {
    if (options.matmul !== undefined && options.matmul !== active.matmul) {
      return Promise.reject(new UserError(`initBackend({ matmul: '${options.matmul}' }): the backend is already initialised with matmul '${active.matmul}' (${active.by}); pass the same options, or switch with setMatmulPath()`));
    }
    if (options.wasmPaths !== undefined && JSON.stringify(options.wasmPaths) !== JSON.stringify(active.wasmPaths)) {
      return Promise.reject(new UserError('initBackend({ wasmPaths }): the backend is already initialised with other wasmPaths'));
    }
    if (options.wasmThreads !== undefined && options.wasmThreads !== active.wasmThreads) {
      return Promise.reject(new UserError(`initBackend({ wasmThreads: ${options.wasmThreads} }): the backend is already initialised with ${active.wasmThreads ?? 'the default'} wasm threads`));
    }
    return active.promise;
  }
  let req: MatmulRequest;
  try {
    req = options.matmul ?? envMatmul();
  } catch (e) {
    return Promise.reject(e);
  }
  const by = options.matmul !== undefined ? 'set by an earlier initBackend call'
    : envVar('MOR_MATMUL') ? 'from MOR_MATMUL' : 'the default';
  const p = doInit(req, options.announce ?? !envVar('MOR_QUIET'), options);
  state.init = { promise: p, matmul: req, by, wasmPaths: options.wasmPaths, wasmThreads: options.wasmThreads };
  // A failed init (e.g. matmul 'blas' without the addon) may be retried with other options.
  p.catch(() => {
    if (state.init?.promise === p) state.init = undefined;
  });
  return p;
}

/** Info of the initialised backend; throws if {@link initBackend} has not completed. */
export function backendInfo(): BackendInfo {
  if (!state.info) throw new Error('initBackend() has not completed');
  return state.info;
}

/**
 * For synchronous entry points that create tensors: a one-line {@link UserError} instead of
 * tfjs' "backend has not yet been initialized" when no backend is ready.
 */
export function requireBackend(what: string): void {
  if (tf.engine().backendName == null) {
    throw new UserError(`${what} creates tensors and the backend is not initialised: await initBackend() first (async entry points such as loadModel do it for you)`);
  }
}

/** Load the wasm module once (the matmul path is chosen afterwards). */
function initWasm(wasmPaths: InitOptions['wasmPaths'], wasmThreads: number | undefined): Promise<void> {
  state.wasmLoad ??= IN_NODE ? initWasmNode() : (async () => {
    if (wasmPaths !== undefined) setWasmPaths(wasmPaths);
    await startWithWasmThreads(wasmThreads, async () => {
      await tf.setBackend('wasm');
      await tf.ready();
    });
    installWasmKernelFixes();
    setShapeOnlySaves(true);
  })();
  return state.wasmLoad;
}

async function initWasmNode(): Promise<void> {
  const { createRequire } = await import('node:module');
  const path = await import('node:path');
  const require = createRequire(import.meta.url);
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  setWasmPaths(path.join(wasmDir, 'dist') + path.sep);
  // The Emscripten glue adds process handlers that rethrow any uncaught error from inside
  // its one-line minified source, so Node prints ~20 kB of glue above the real error.
  // Remove exactly the handlers it added; Node's default reporting is what we want.
  const events = ['uncaughtException', 'unhandledRejection'];
  const before = events.map((e) => process.listeners(e as 'uncaughtException') as unknown[]);
  try {
    await tf.setBackend('wasm');
    await tf.ready();
  } finally {
    events.forEach((e, i) => {
      for (const l of process.listeners(e as 'uncaughtException')) {
        if (!before[i].includes(l)) process.removeListener(e, l);
      }
    });
  }
  installWasmKernelFixes();
  setShapeOnlySaves(true);
}

async function doInit(requested: MatmulRequest, announce: boolean, o: InitOptions): Promise<BackendInfo> {
  await initWasm(o.wasmPaths, o.wasmThreads);
  const info = applyMatmulPath(requested, IN_NODE ? await import('./blas.ts') : undefined);
  state.info = info;
  const line = `mor: matmul backend: ${describeBackend(info)}`;
  if (announce && IN_NODE) process.stderr.write(`${line}\n`);
  else if (announce) console.info(line);
  return info;
}

type BlasModule = typeof import('./blas.ts');

/** `blasMod` is undefined outside Node (no native addon there). */
function applyMatmulPath(requested: 'wasm' | 'blas' | 'auto', blasMod: BlasModule | undefined): BackendInfo {
  const backend = tf.getBackend();
  const wasmThreads = getThreadsCount();
  if (requested === 'wasm') {
    blasMod?.disableBlas();
    return { backend, matmulPath: 'wasm', blasReason: 'disabled (MOR_MATMUL=wasm)', threads: 1, wasmThreads };
  }
  const blas = blasMod ? blasMod.enableBlas() : { ok: false as const, reason: 'no native addon outside Node' };
  if (!blas.ok) {
    if (requested === 'blas') {
      throw new UserError(`MOR_MATMUL=blas but the OpenBLAS kernel is unavailable: ${blas.reason}`);
    }
    return { backend, matmulPath: 'wasm', blasReason: blas.reason, threads: 1, wasmThreads };
  }
  return { backend, matmulPath: 'wasm+blas', threads: blas.threads, blasConfig: blas.config, sgemm: blas.sgemm, wasmThreads };
}

/** One-line description of the active path, as announced at start-up. */
export function describeBackend(i: BackendInfo): string {
  return i.matmulPath === 'wasm+blas'
    ? `${i.sgemm === 'avx512' ? 'own AVX-512 sgemm + ' : ''}OpenBLAS${blasCore(i.blasConfig)}, ${i.threads} thread${i.threads === 1 ? '' : 's'}`
    : `pure wasm (${i.blasReason})`;
}

/**
 * " (Cooperlake kernels)": the kernel set OpenBLAS picked for this CPU (the last word of its
 * config string), and whether the environment forced it: `OPENBLAS_CORETYPE=Haswell` on an
 * AVX-512 CPU halves sgemm's speed, so the banner says where the choice came from.
 */
export function blasCore(config: string | undefined): string {
  const core = config?.trim().split(/\s+/).at(-1);
  if (!core || core.includes('=')) return '';
  return process.env.OPENBLAS_CORETYPE ? ` (${core} kernels, set by OPENBLAS_CORETYPE)` : ` (${core} kernels)`;
}

/**
 * Switch the matmul path after {@link initBackend} (benchmarks and tests compare both
 * paths in one process). `blas` throws when the kernel is unavailable; `auto` falls back.
 * Tensors stay valid: both paths share the wasm heap.
 */
export async function setMatmulPath(path: MatmulRequest): Promise<BackendInfo> {
  await initBackend({ announce: false });
  const info = applyMatmulPath(path, IN_NODE ? await import('./blas.ts') : undefined);
  state.info = info;
  state.init = { promise: Promise.resolve(info), matmul: path, by: 'set by setMatmulPath', wasmPaths: state.init?.wasmPaths, wasmThreads: state.init?.wasmThreads };
  return info;
}

function envMatmul(): MatmulRequest {
  const v = (envVar('MOR_MATMUL') ?? 'auto').toLowerCase();
  if (v === 'wasm' || v === 'blas' || v === 'auto') return v;
  throw new UserError(`MOR_MATMUL must be wasm, blas or auto (got "${envVar('MOR_MATMUL')}")`);
}
