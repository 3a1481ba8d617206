/**
 * `npm run bench:model`: forward tokens/s (batch 4 x 256, full logits) and greedy generation
 * tokens/s (batch 1, 16-token prompt, 64 new tokens, KV cache) for a random
 * SmolLM-135M-shaped LLaMA (hidden 576, intermediate 1536, 30 layers, 9 heads, 3 KV heads,
 * vocab 49152, tied embeddings), next to the same workload in PyTorch
 * (bench/model_torch.py) when a Python with PyTorch 2.x is found (`MOR_TORCH_PYTHON`, else
 * `python3`; PyTorch tried with 1 and all threads, best kept: under load its multi-threaded
 * element-wise ops slow down ~10x), and, for the forward, ONNX Runtime for Node (the engine under
 * transformers.js; bench/lib/ortRun.mjs) when onnxruntime-node loads (MOR_ONNXRUNTIME_NODE: the
 * folder it was installed under) and the PyTorch Python can export the same model to ONNX
 * (bench/model_onnx.py, needs `onnx`; the file is kept in MOR_BENCH_CACHE, default
 * ~/.cache/mor-peft/bench-model).
 *
 * Every side runs in its own process (ours: bench/lib/modelRun.ts), and the processes alternate,
 * ours, PyTorch, ONNX Runtime, for BENCH_ROUNDS rounds, so load from other processes hits all
 * alike; each process warms up, then times BENCH_REPS forwards and one generation. Reported:
 * the median over all timed forwards (and generations) of each side, and the ratios of medians.
 * A forward is timed until the logits exist, in the engine's memory, on every side; ONNX Runtime
 * also copies them into a JavaScript array before `run` returns (its API has no other way).
 *
 * Env: BENCH_ROUNDS (default 3), BENCH_REPS (timed forwards per process, default 2),
 * BENCH_NEW (new tokens, default 64), MOR_MATMUL=wasm|blas to pick our matmul path.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, formatTable, median } from './lib/timing.ts';
import { findTorchPython, runJsonChild } from './lib/child.ts';
import type { ModelRunResult } from './lib/modelRun.ts';
import { pushAll } from '../src/util/array.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REPS = Number(process.env.BENCH_REPS ?? 2);
const NEW = Number(process.env.BENCH_NEW ?? 64);
const BATCH = 4;
const SEQ = 256;
const PROMPT = 16;
const here = path.dirname(fileURLToPath(import.meta.url));
const log = (s: string) => process.stderr.write(s + '\n');
const timeoutMs = 10 * 60 * 1000;

interface TorchResult { forward_s: number[]; generate_s: number; forward_threads: number; generate_threads: number; torch: string }
interface OrtResult { forward_s: number[]; ort: string; threads: number }

// PyTorch, and the ONNX file ONNX Runtime runs (exported once from the PyTorch model, into the cache).
const found = findTorchPython();
const py = found.python;
let ortFile: string | undefined;
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
  if (!ortWhy) ortFile = file;
}

const ours: ModelRunResult[] = [];
const theirs: TorchResult[] = [];
const orts: OrtResult[] = [];
let torchWhy = found.why ?? '';
for (let round = 1; round <= ROUNDS; round++) {
  const o = runJsonChild<ModelRunResult>(process.execPath, ['--import', 'tsx', path.join(here, 'lib', 'modelRun.ts'),
    String(REPS), String(BATCH), String(SEQ), String(PROMPT), String(NEW)], {}, timeoutMs);
  if ('error' in o) throw new Error(`our run failed: ${o.error}`);
  ours.push(o);
  log(`round ${round} ours: forward ${o.forwardS.map((s) => s.toFixed(2)).join(', ')} s, generation ${o.generateS.toFixed(2)} s`);
  if (py && !torchWhy) {
    const t = runJsonChild<TorchResult>(py, [path.join(here, 'model_torch.py'), '--reps', String(REPS), '--batch', String(BATCH),
      '--seq', String(SEQ), '--prompt', String(PROMPT), '--new', String(NEW)], {}, timeoutMs);
    if ('error' in t) torchWhy = `its run failed (${t.error})`;
    else {
      theirs.push(t);
      log(`round ${round} PyTorch: forward ${t.forward_s.map((s) => s.toFixed(2)).join(', ')} s (${t.forward_threads} thr), generation ${t.generate_s.toFixed(2)} s (${t.generate_threads} thr)`);
    }
  }
  if (ortFile && !ortWhy) {
    const r = runJsonChild<OrtResult>(process.execPath, [path.join(here, 'lib', 'ortRun.mjs'), ortFile, String(BATCH), String(SEQ), String(REPS)], {}, timeoutMs);
    if ('error' in r) ortWhy = `its run failed (${r.error})`;
    else {
      orts.push(r);
      log(`round ${round} ONNX Runtime: forward ${r.forward_s.map((s) => s.toFixed(2)).join(', ')} s`);
    }
  }
}

const all = <T>(rs: T[], f: (r: T) => number[]) => rs.reduce((acc: number[], r) => pushAll(acc, f(r)), []);
const tokens = BATCH * SEQ;
const fwdTokS = tokens / median(all(ours, (r) => r.forwardS));
const genTokS = median(ours.map((r) => r.newTokens / r.generateS));
const torch = theirs.length ? {
  fwd: tokens / median(all(theirs, (r) => r.forward_s)), gen: median(theirs.map((r) => NEW / r.generate_s)),
  fwdThr: theirs.map((r) => r.forward_threads).join('/'), genThr: theirs.map((r) => r.generate_threads).join('/'), version: theirs[0].torch,
} : undefined;
const ort = orts.length ? { fwd: tokens / median(all(orts, (r) => r.forward_s)), version: orts[0].ort, threads: orts[0].threads } : undefined;

const o0 = ours[0];
const ratio = (a: number, b?: number) => (b ? fmt(a / b, 2) : '-');
log(`\nmodel: ${(o0.params / 1e6).toFixed(1)}M params; ours: ${o0.matmulPath}, ${o0.backend}; ${os.cpus()[0]?.model.trim()}, ` +
  `${os.availableParallelism()} cores; median of ${ROUNDS} rounds x ${REPS} forwards (generation: ${ROUNDS} runs) per side, processes alternating`);
const headers = ['workload', `mor (${o0.matmulPath}, ${o0.threads} thr) tok/s`,
  ...(torch ? [`torch ${torch.version} tok/s (threads)`, 'ratio mor/torch'] : []),
  ...(ort ? [`onnxruntime-node ${ort.version} tok/s (${ort.threads} thr)`, 'ratio mor/ort'] : [])];
const rows = [
  [`forward ${BATCH}x${SEQ}`, fmt(fwdTokS), ...(torch ? [`${fmt(torch.fwd)} (${torch.fwdThr})`, ratio(fwdTokS, torch.fwd)] : []),
    ...(ort ? [fmt(ort.fwd), ratio(fwdTokS, ort.fwd)] : [])],
  [`generate 1x${NEW} (prompt ${PROMPT})`, fmt(genTokS, 2), ...(torch ? [`${fmt(torch.gen, 2)} (${torch.genThr})`, ratio(genTokS, torch.gen)] : []),
    ...(ort ? ['-', '-'] : [])],
];
process.stdout.write(formatTable(headers, rows) + '\n');
if (!torch) process.stdout.write(`(PyTorch column skipped: ${torchWhy || 'no result'})\n`);
if (!ort) process.stdout.write(`(ONNX Runtime column skipped: ${ortWhy || 'no result'})\n`);
