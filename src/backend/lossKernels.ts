/**
 * The native fused cross-entropy (native/blas/src/mor_xent.cc), registered on the wasm backend
 * with the OpenBLAS addon. Shapes (N rows, V vocabulary):
 *
 *  - `MorXentForward`  logits `[N, V]`, labels `[N]` int32           -> loss `[N]`, lse `[N]`
 *  - `MorXentBackward` logits, lse, labels, dy `[N]`                  -> dlogits `[N, V]`
 *
 * They replace ~8 single-threaded wasm kernels over the logits (a third of a LoRA training
 * step's time on the SmolLM-135M shape, `npm run bench:train -- --profile`) by two passes split
 * over the BLAS threads. No registered gradients: `crossEntropyRows` defines the op's gradient.
 */
import * as tfc from '@tensorflow/tfjs-core';
import type { BlasAddon } from './blas.ts';
import { heapOffset, type WasmBackend } from './wasmHeap.ts';
import { state } from './state.ts';

export const XENT_FORWARD = 'MorXentForward';
export const XENT_BACKWARD = 'MorXentBackward';

type Inputs = Record<string, tfc.TensorInfo>;

function check(kernel: string, ins: Inputs, floats: string[], ints: string[]): void {
  for (const k of floats) if (ins[k].dtype !== 'float32') throw new Error(`${kernel}: ${k} must be float32, got ${ins[k].dtype}`);
  for (const k of ints) if (ins[k].dtype !== 'int32') throw new Error(`${kernel}: ${k} must be int32, got ${ins[k].dtype}`);
  const [n] = ins.logits.shape;
  if (ins.logits.shape.length !== 2 || Object.entries(ins).some(([k, t]) => k !== 'logits' && (t.shape.length !== 1 || t.shape[0] !== n))) {
    throw new Error(`${kernel}: logits must be [N, V] and the other inputs [N]`);
  }
}

/** Register the two kernels on the wasm backend (idempotent). */
export function registerLossKernels(lib: BlasAddon): void {
  if (state.lossKernels) return;
  const threads = () => state.blas?.threads ?? 1;
  tfc.registerKernel({
    kernelName: XENT_FORWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as unknown as WasmBackend;
      const ins = inputs as Inputs;
      check(XENT_FORWARD, ins, ['logits'], ['labels']);
      const [n, v] = ins.logits.shape;
      const loss = wasm.makeOutput([n], 'float32');
      const lse = wasm.makeOutput([n], 'float32');
      const at = (t: tfc.TensorInfo) => heapOffset(wasm, t);
      // Read the heap after makeOutput: an allocation may grow (and replace) the wasm memory.
      lib.xentForward(wasm.wasm.HEAPU8.buffer as ArrayBuffer, n, v, at(ins.logits), at(ins.labels), at(loss), at(lse), threads());
      return [loss, lse];
    },
  });
  tfc.registerKernel({
    kernelName: XENT_BACKWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as unknown as WasmBackend;
      const ins = inputs as Inputs;
      check(XENT_BACKWARD, ins, ['logits', 'lse', 'dy'], ['labels']);
      const [n, v] = ins.logits.shape;
      const dx = wasm.makeOutput([n, v], 'float32');
      const at = (t: tfc.TensorInfo) => heapOffset(wasm, t);
      lib.xentBackward(wasm.wasm.HEAPU8.buffer as ArrayBuffer, n, v, at(ins.logits), at(ins.lse), at(ins.labels), at(ins.dy), at(dx), threads());
      return dx;
    },
  });
  state.lossKernels = true;
}

/** True once the kernels are registered (the addon loaded). */
export function lossKernelsRegistered(): boolean {
  return state.lossKernels;
}

/** True when the native cross-entropy runs: registered, and the BLAS (native) path active. */
export function nativeLossActive(): boolean {
  return state.lossKernels && state.blas !== undefined;
}
