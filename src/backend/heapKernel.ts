/**
 * How the addon's fused kernels (loss, attention, layer kernels) are registered on the wasm
 * backend: check dtypes, let the kernel's `plan` check shapes and attributes (its `fail` throws
 * with the kernel's name), allocate the outputs, then call the addon with the heap (read after
 * the allocations, which may grow it) and the byte offsets of inputs and outputs.
 */
import * as tfc from '@tensorflow/tfjs-core';
import { heapOffset, type WasmBackend } from './wasmHeap.ts';

export type Inputs = Record<string, tfc.TensorInfo>;
export type At = (t: tfc.TensorInfo) => number;
export type Fail = (msg: string) => never;

/** A checked call: the output shapes, and how to run the addon once they are allocated. */
export interface Plan {
  outs: number[][];
  run: (heap: ArrayBuffer, at: At, outs: tfc.TensorInfo[]) => void;
}

export const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Register one kernel. Inputs are float32 except those named in `intInputs` (int32). Nothing to
 * write (every output empty) skips the call. One output is returned as is, several as a list.
 */
export function registerHeapKernel(
  kernelName: string,
  plan: (ins: Inputs, fail: Fail, attrs: tfc.NamedAttrMap) => Plan,
  intInputs: readonly string[] = [],
): void {
  tfc.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as unknown as WasmBackend;
      const ins = inputs as Inputs;
      for (const [name, t] of Object.entries(ins)) {
        const want = intInputs.includes(name) ? 'int32' : 'float32';
        if (t.dtype !== want) throw new Error(`${kernelName}: ${name} must be ${want}, got ${t.dtype}`);
      }
      const p = plan(ins, (msg) => {
        throw new Error(`${kernelName}: ${msg}`);
      }, attrs ?? {});
      const outs = p.outs.map((shape) => wasm.makeOutput(shape, 'float32'));
      if (outs.some((t) => tfc.util.sizeFromShape(t.shape) > 0)) p.run(wasm.wasm.HEAPU8.buffer as ArrayBuffer, (t) => heapOffset(wasm, t), outs);
      return outs.length === 1 ? outs[0] : outs;
    },
  });
}
