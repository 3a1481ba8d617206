// ONNX Runtime side of `npm run bench:model`, in its own process: `node ortRun.mjs MODEL.onnx
// BATCH SEQ REPS`. Loads onnxruntime-node from MOR_ONNXRUNTIME_NODE (a folder it is installed
// under, e.g. after `npm i --prefix DIR --ignore-scripts onnxruntime-node`) or from the normal
// module path, runs the model's forward on 2 intra-op threads (the machine's cores) once to warm
// up, then REPS times; prints one JSON line with each run's seconds (`forward_s`).
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const [file, batch, seq, reps] = process.argv.slice(2);
const from = process.env.MOR_ONNXRUNTIME_NODE ? path.join(process.env.MOR_ONNXRUNTIME_NODE, 'x.js') : import.meta.url;
const ort = createRequire(from)('onnxruntime-node');
const threads = os.availableParallelism();
const session = await ort.InferenceSession.create(file, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
const n = Number(batch) * Number(seq);
const ids = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7919 + 13) % 49152)), [Number(batch), Number(seq)]);
await session.run({ ids });
const forwardS = [];
for (let i = 0; i < Number(reps); i++) {
  const t0 = performance.now();
  await session.run({ ids });
  forwardS.push((performance.now() - t0) / 1000);
}
console.log(JSON.stringify({ ort: ort.env.versions?.common ?? 'unknown', threads, forward_s: forwardS }));
