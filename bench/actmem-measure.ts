/**
 * `node --import tsx bench/actmem-measure.ts '<json>'`: the memory of ONE training step of a
 * random LLaMA (MoR r 8, N 8 on gate/up/down unless `adapter` is given), in this fresh
 * process, as a JSON line: `heldBytes` (tensor bytes allocated during the step and still live
 * at the end of the forward: what the tape keeps), `peakBytes` (the most tensor bytes live at
 * once during the step, above the loaded model, as counted at the backend's malloc/free),
 * `heapGrowth` (growth
 * of the wasm heap over the step, fragmentation and the heap's 20 % growth steps included) and
 * `heapBytes` (the whole heap after the step: the number that meets the 4 GiB ceiling). The numbers behind the activation terms of src/models/memoryPlan.ts.
 *
 * JSON: LlamaConfig fields, plus `batch`, `seq`, `ckpt` (bool), `chunk` (rows, 0 = full
 * logits), `adapter` (an adapter config).
 */
import { initBackend, tf } from '../src/backend/tf.ts';
import { makeConfig } from '../src/models/llama/config.ts';
import { createRandomModel } from '../src/models/random.ts';
import { getPeftModel } from '../src/adapters/inject.ts';
import type { ForwardContext } from '../src/nn/context.ts';

const a = JSON.parse(process.argv[2] ?? '{}');
const { batch = 1, seq = 128, ckpt = false, chunk, adapter, ...shape } = a;
await initBackend({ announce: false });
const heap = (): number => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
const config = makeConfig(shape);
const peft = getPeftModel(createRandomModel(config, 0), adapter ?? { kind: 'mor', r: 8, numExperts: 8, targetModules: ['gate_proj', 'up_proj', 'down_proj'], seed: 0 });
const vars = peft.trainableParameters().map(([, v]) => v);
const ids = tf.randomUniform([batch, seq], 0, config.vocabSize, 'int32') as tf.Tensor2D;
// Warm-up on 2 tokens: kernels and caches created once, outside the measured step.
tf.tidy(() => void peft.model.forward(ids.slice([0, 0], [1, 2]) as tf.Tensor2D).dataSync());
const heap0 = heap();
// Live tensor bytes, exactly: count the backend's allocations (a measuring wrapper, bench only).
const wasm = (tf.backend() as unknown as { wasm: { _malloc(n: number): number; _free(p: number): void } }).wasm;
const sizes = new Map<number, number>();
let live = 0;
let peak = 0;
const [malloc0, free0] = [wasm._malloc.bind(wasm), wasm._free.bind(wasm)];
wasm._malloc = (n: number): number => {
  const p = malloc0(n);
  sizes.set(p >>> 0, n); // malloc returns a negative int above 2 GiB; the backend frees `p >>> 0`
  live += n;
  peak = Math.max(peak, live);
  return p;
};
wasm._free = (p: number): void => {
  live -= sizes.get(p >>> 0) ?? 0;
  sizes.delete(p >>> 0);
  free0(p);
};
const ctx: ForwardContext = { training: true, seed: 1, auxLosses: [] };
let held = 0;
const { value, grads } = tf.variableGrads(() => {
  const l = peft.model.loss(ids, ids, { ctx, gradientCheckpointing: ckpt, lossChunkSize: chunk });
  held = live;
  return l;
}, vars);
value.dataSync();
tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses]);
process.stdout.write(JSON.stringify({ ...a, heldBytes: held, peakBytes: peak, heapGrowth: heap() - heap0, heapBytes: heap() }) + '\n');
