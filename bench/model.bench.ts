/**
 * `npm run bench:model`: forward tokens/s (batch 4 x 256, full logits) and greedy generation
 * tokens/s (batch 1, 16-token prompt, 64 new tokens, KV cache) for a random
 * SmolLM-135M-shaped LLaMA (hidden 576, intermediate 1536, 30 layers, 9 heads, 3 KV heads,
 * vocab 49152, tied embeddings), next to the same workload in PyTorch
 * (bench/model_torch.py, run as a child process) when a Python with PyTorch 2.x is found
 * (`MOR_TORCH_PYTHON`, else `python3`; PyTorch tried with 1 and all threads, best kept: under
 * load its multi-threaded element-wise ops slow down ~10x); the ratio column is ours / PyTorch.
 *
 * Forward also next to ONNX Runtime for Node (the engine under transformers.js; bench/lib/ortRun.mjs)
 * when onnxruntime-node loads (MOR_ONNXRUNTIME_NODE: the folder it was installed under) and the
 * PyTorch Python can export the same model to ONNX (bench/model_onnx.py, needs `onnx`; the file
 * is kept in MOR_BENCH_CACHE, default ~/.cache/mor-peft/bench-model).
 *
 * Env: BENCH_REPS (timed forwards, default 2), BENCH_NEW (new tokens, default 64),
 * MOR_MATMUL=wasm|blas to pick the matmul path.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, tf } from '../src/backend/tf.ts';
import { makeConfig } from '../src/models/llama/config.ts';
import { createRandomModel } from '../src/models/random.ts';
import { generate } from '../src/generate/generate.ts';
import { fmt, formatTable } from './lib/timing.ts';
import { minOf } from '../src/util/array.ts';
import { findTorchPython, runJsonChild } from './lib/child.ts';

const REPS = Number(process.env.BENCH_REPS ?? 2);
const NEW = Number(process.env.BENCH_NEW ?? 64);
const BATCH = 4;
const SEQ = 256;
const PROMPT = 16;

const info = await initBackend({ announce: false });
const config = makeConfig({
  vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
  numKeyValueHeads: 3, tieWordEmbeddings: true, rmsNormEps: 1e-5, maxPositionEmbeddings: 2048,
});
let t0 = performance.now();
const model = createRandomModel(config, 0);
const initS = (performance.now() - t0) / 1000;
process.stderr.write(`model: ${(model.numParameters() / 1e6).toFixed(1)}M params, random init ${initS.toFixed(1)} s; matmul ${info.matmulPath} (${info.threads} thread(s))\n`);

// forward
const ids = tf.randomUniform([BATCH, SEQ], 0, config.vocabSize, 'int32') as tf.Tensor2D;
tf.tidy(() => void model.forward(ids.slice([0, 0], [BATCH, 32])).dataSync()); // warm-up
const times: number[] = [];
for (let i = 0; i < REPS; i++) {
  t0 = performance.now();
  const logits = model.forward(ids);
  logits.dataSync();
  times.push(performance.now() - t0);
  logits.dispose();
}
ids.dispose();
const fwdS = minOf(times) / 1000;
const fwdTokS = (BATCH * SEQ) / fwdS;
process.stderr.write(`forward ${BATCH}x${SEQ}: ${times.map((t) => (t / 1000).toFixed(2)).join(', ')} s\n`);

// generation
const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7919) % config.vocabSize);
t0 = performance.now();
const out = await generate(model, null, prompt, { maxNewTokens: NEW, eosTokenIds: [] });
const genS = (performance.now() - t0) / 1000;
const genTokS = out.tokenIds[0].length / genS;
model.dispose();

// PyTorch
let torch: { forward_tok_s: number; generate_tok_s: number; forward_threads: number; generate_threads: number; torch: string } | undefined;
const found = findTorchPython();
const py = found.python;
if (py) {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'model_torch.py');
  const r = spawnSync(py, [script, '--reps', String(REPS), '--batch', String(BATCH), '--seq', String(SEQ), '--prompt', String(PROMPT), '--new', String(NEW)], {
    encoding: 'utf8',
  });
  if (r.status === 0) torch = JSON.parse(r.stdout.trim().split('\n').pop()!);
  else process.stderr.write(`PyTorch run failed: ${r.stderr}\n`);
}

// ONNX Runtime (forward only: the export has no KV cache), when onnxruntime-node loads and the
// PyTorch Python can export the same model to ONNX (bench/model_onnx.py, once, into the cache).
const here = path.dirname(fileURLToPath(import.meta.url));
let ort: { forward_tok_s: number; ort: string; threads: number } | undefined;
let ortWhy = '';
const ortCheck = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(process.env.MOR_ONNXRUNTIME_NODE ? path.join(process.env.MOR_ONNXRUNTIME_NODE, 'node_modules', 'onnxruntime-node') : 'onnxruntime-node')})`], { encoding: 'utf8' });
if (ortCheck.status !== 0) ortWhy = 'onnxruntime-node not found (npm i --prefix DIR --ignore-scripts onnxruntime-node, then MOR_ONNXRUNTIME_NODE=DIR)';
else if (!py) ortWhy = 'no Python with PyTorch to export the model';
else {
  const cache = process.env.MOR_BENCH_CACHE || path.join(os.homedir(), '.cache', 'mor-peft', 'bench-model');
  const file = path.join(cache, `smollm-135m-${BATCH}x${SEQ}.onnx`);
  fs.mkdirSync(cache, { recursive: true });
  if (!fs.existsSync(file)) {
    const e = spawnSync(py, [path.join(here, 'model_onnx.py'), file, '--batch', String(BATCH), '--seq', String(SEQ)], { encoding: 'utf8' });
    if (e.status !== 0) ortWhy = `ONNX export failed: ${e.stderr.trim().split('\n').pop()}`;
  }
  if (!ortWhy) {
    const r = runJsonChild<{ forward_tok_s: number; ort: string; threads: number }>(process.execPath, [path.join(here, 'lib', 'ortRun.mjs'), file, String(BATCH), String(SEQ), String(REPS)], {}, 600_000);
    if ('error' in r) ortWhy = `its run failed (${r.error})`;
    else ort = r;
  }
}

const ratio = (a: number, b?: number) => (b ? fmt(a / b, 2) : '-');
const headers = ['workload', `mor (${info.matmulPath}, ${info.threads} thr) tok/s`, ...(torch ? [`torch ${torch.torch} tok/s (best thread count)`, 'ratio mor/torch'] : []),
  ...(ort ? [`onnxruntime-node ${ort.ort} tok/s (${ort.threads} thr)`, 'ratio mor/ort'] : [])];
const rows = [
  [`forward ${BATCH}x${SEQ}`, fmt(fwdTokS), ...(torch ? [`${fmt(torch.forward_tok_s)} (${torch.forward_threads} thr)`, ratio(fwdTokS, torch.forward_tok_s)] : []),
    ...(ort ? [fmt(ort.forward_tok_s), ratio(fwdTokS, ort.forward_tok_s)] : [])],
  [`generate 1x${NEW} (prompt ${PROMPT})`, fmt(genTokS, 2), ...(torch ? [`${fmt(torch.generate_tok_s, 2)} (${torch.generate_threads} thr)`, ratio(genTokS, torch.generate_tok_s)] : []),
    ...(ort ? ['-', '-'] : [])],
];
process.stdout.write(formatTable(headers, rows) + '\n');
if (!torch) process.stdout.write(`(PyTorch column skipped: ${found.why ?? 'its run failed'})\n`);
if (!ort) process.stdout.write(`(ONNX Runtime column skipped: ${ortWhy})\n`);
