/**
 * `npm run bench:train`: the whole training step, ours next to PyTorch 2.x's, for LoRA, MoR,
 * MoELoRA and full fine-tuning. Shape: SmolLM-135M widths (hidden 576, intermediate 1536, 9
 * heads, 3 KV heads, vocab 49152, tied embeddings) with 6 layers, batch 4 x 256, adapters r=32
 * (MoR and MoELoRA with 8 experts; MoELoRA's experts have r_e=32 each) on gate/up/down, loss over
 * every position with full logits, backward, AdamW. A random float32 checkpoint is written once
 * to MOR_BENCH_CACHE (default ~/.cache/mor-peft/bench-train) and loaded by both sides.
 *
 * Each side runs in its own process (bench/lib/trainRun.ts: the project's trainer, as `mor train`
 * runs it; bench/train_torch.py: transformers + PEFT), BENCH_WARMUP untimed and BENCH_STEPS timed steps;
 * the processes alternate (ours, PyTorch, ours, PyTorch, ... for each kind, BENCH_ROUNDS rounds)
 * so load from other processes hits both alike. Reported: median step time over all rounds,
 * tokens/s, peak RSS of each process, the ratios, MoR's step over LoRA's, and the share of the
 * matmul bound (the step's matmul FLOPs, counted by the kernel profiler, at the best rate our
 * matmul reaches on a large product in the processes of its kind, over the step time). MoR's step
 * over LoRA's is also measured with both in one process, their steps taking turns
 * (bench/lib/trainPair.ts, BENCH_PAIRS pairs): this machine's load drifts move separate
 * processes' medians far more than two steps run back to back.
 *
 * `--profile`: also print, for each kind, our step's time by kind of work (the mean of
 * BENCH_PROFILE_STEPS (3) profiled steps; BENCH_PROFILE_DETAIL=1 lists adapter products by shape
 * and every element-wise kernel on its own row).
 * Env: BENCH_KINDS (lora,mor,moelora,full), BENCH_ROUNDS (2), BENCH_STEPS (3), BENCH_WARMUP (3), BENCH_PAIRS (12; 0: skip the paired run), BENCH_BATCH (4),
 * BENCH_SEQ (256), BENCH_LAYERS (6), BENCH_R (32), BENCH_N (8), BENCH_TORCH=0 (skip PyTorch),
 * MOR_TORCH_PYTHON (a Python with torch >= 2, transformers and peft; default python3),
 * MOR_MATMUL=wasm (time the pure-wasm path).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../src/backend/tf.ts';
import { makeConfig } from '../src/models/llama/config.ts';
import { createRandomModel } from '../src/models/random.ts';
import { savePretrained } from '../src/models/save.ts';
import { fmt, formatTable, median } from './lib/timing.ts';
import { findTorchPython, runJsonChild } from './lib/child.ts';
import type { TrainRunResult } from './lib/trainRun.ts';
import type { TrainPairResult } from './lib/trainPair.ts';
import { maxOf } from '../src/util/array.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = (k: string, d: string) => process.env[k] ?? d;
const kinds = env('BENCH_KINDS', 'lora,mor,moelora,full').split(',').map((s) => s.trim()).filter(Boolean);
const rounds = Number(env('BENCH_ROUNDS', '2'));
const layers = Number(env('BENCH_LAYERS', '6'));
const childEnv = {
  BENCH_BATCH: env('BENCH_BATCH', '4'), BENCH_SEQ: env('BENCH_SEQ', '256'), BENCH_STEPS: env('BENCH_STEPS', '3'), BENCH_WARMUP: env('BENCH_WARMUP', '3'),
  BENCH_R: env('BENCH_R', '32'), BENCH_N: env('BENCH_N', '8'),
};
const profile = process.argv.includes('--profile');
const log = (s: string) => process.stderr.write(s + '\n');
const timeoutMs = 30 * 60 * 1000;

// The checkpoint both sides load.
const dir = path.join(process.env.MOR_BENCH_CACHE || path.join(os.homedir(), '.cache', 'mor-peft', 'bench-train'), `smollm-widths-${layers}l-f32`);
if (!fs.existsSync(path.join(dir, 'config.json'))) {
  await initBackend({ announce: false });
  const config = makeConfig({
    vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: layers, numAttentionHeads: 9,
    numKeyValueHeads: 3, tieWordEmbeddings: true, rmsNormEps: 1e-5, maxPositionEmbeddings: 2048,
  });
  const model = createRandomModel(config, 0);
  await savePretrained(model, dir);
  model.dispose();
  log(`checkpoint written to ${dir}`);
}

type Result = (TrainRunResult & { torch?: string }) | { error: string };
const torch = findTorchPython();
if (torch.why) log(`PyTorch column skipped: ${torch.why}`);
const ours = new Map<string, Result[]>();
const theirs = new Map<string, Result[]>();
const push = (m: Map<string, Result[]>, k: string, r: Result) => m.set(k, [...(m.get(k) ?? []), r]);
for (let round = 0; round < rounds; round++) {
  for (const kind of kinds) {
    const args = ['--import', 'tsx', path.join(here, 'lib', 'trainRun.ts'), dir, kind, ...(profile && round === 0 ? ['--profile'] : [])];
    const o = runJsonChild<TrainRunResult>(process.execPath, args, childEnv, timeoutMs);
    push(ours, kind, o);
    log(`round ${round + 1} ${kind} ours: ${'error' in o && o.error ? o.error : `${(o as TrainRunResult).stepS.toFixed(2)} s/step`}`);
    if (torch.python) {
      const t = runJsonChild<TrainRunResult>(torch.python, [path.join(here, 'train_torch.py'), dir, kind], childEnv, timeoutMs);
      push(theirs, kind, t);
      log(`round ${round + 1} ${kind} PyTorch: ${'error' in t && t.error ? t.error : `${(t as TrainRunResult).stepS.toFixed(2)} s/step`}`);
    }
  }
}

/**
 * Median of every timed step of every round; max peak RSS; the best matmul rate of any round (a
 * process that measured it while the machine was busy would put the bound too low); the first
 * run's other fields.
 */
function summarise(rs: Result[] | undefined): (TrainRunResult & { torch?: string }) | { error: string } | undefined {
  if (!rs) return undefined;
  const ok = rs.filter((r): r is TrainRunResult => !('error' in r && r.error));
  if (ok.length === 0) return { error: (rs[0] as { error: string }).error };
  const steps = ok.flatMap((r) => r.stepsS).sort((a, b) => a - b);
  const stepS = steps[Math.floor((steps.length - 1) / 2)];
  const tokens = Number(childEnv.BENCH_BATCH) * Number(childEnv.BENCH_SEQ);
  return { ...ok[0], stepS, tokS: tokens / stepS, peakRssGiB: maxOf(ok.map((r) => r.peakRssGiB)), matmulGflops: maxOf(ok.map((r) => r.matmulGflops)) };
}

const rows: string[][] = [];
const stepOf: Record<string, number> = {};
let torchVersion = '';
let torchThreads = 0;
let path0 = '';
for (const kind of kinds) {
  const o = summarise(ours.get(kind))!;
  const t = summarise(theirs.get(kind));
  if ('error' in o && o.error) {
    rows.push([kind, `failed: ${o.error}`, '', '', '', '', '', '', '']);
    continue;
  }
  const a = o as TrainRunResult;
  stepOf[kind] = a.stepS;
  path0 = `${a.matmulPath}, ${a.backend}`;
  const bound = a.stepGflop / a.matmulGflops;
  const tt = t && !('error' in t && t.error) ? (t as TrainRunResult & { torch: string; threads: number }) : undefined;
  if (tt) {
    torchVersion = tt.torch;
    torchThreads = tt.threads;
  }
  rows.push([
    kind, fmt(a.trainableParams / 1e6, 2), fmt(a.stepS, 2), fmt(a.tokS), fmt(tt?.stepS, 2), fmt(tt?.tokS),
    tt ? fmt(a.tokS / tt.tokS, 2) : (t ? `torch failed: ${(t as { error: string }).error}` : '-'),
    `${fmt(a.peakRssGiB, 2)} / ${fmt(tt?.peakRssGiB, 2)}`, tt ? fmt(a.peakRssGiB / tt.peakRssGiB, 2) : '-',
    `${fmt((100 * bound) / a.stepS, 0)} % (${fmt(a.stepGflop, 0)} GFLOP at ${fmt(a.matmulGflops, 0)} GFLOP/s)`,
  ]);
}
console.log(`\ntraining step, ${childEnv.BENCH_BATCH} x ${childEnv.BENCH_SEQ} tokens, SmolLM-135M widths with ${layers} layers, r=${childEnv.BENCH_R}` +
  `, N=${childEnv.BENCH_N}; ours: ${path0}; PyTorch ${torchVersion || '-'} (${torchThreads || '-'} threads); ${os.cpus()[0]?.model ?? ''}, ` +
  `${os.availableParallelism()} cores; median of ${rounds} x ${childEnv.BENCH_STEPS} steps per side, processes alternating\n`);
console.log(formatTable(['adapter', 'trainable M', 'ours s/step', 'ours tok/s', 'torch s/step', 'torch tok/s', 'tok/s ours/torch', 'peak RSS GiB ours / torch', 'RSS ratio', 'matmul bound share'], rows));
if (stepOf.mor && stepOf.lora) {
  // Also round by round: a LoRA and a MoR process of one round run seconds apart, so their ratio
  // is less exposed to the machine's slow drifts than the ratio of the medians over all rounds.
  const lora = ours.get('lora') ?? [];
  const ok = (r: Result | undefined): r is TrainRunResult => r !== undefined && !('error' in r && r.error);
  const paired = (ours.get('mor') ?? []).flatMap((m, i) => (ok(m) && ok(lora[i]) ? [median(m.stepsS) / median((lora[i] as TrainRunResult).stepsS)] : []));
  console.log(`\nMoR step / LoRA step (ours): ${fmt(stepOf.mor / stepOf.lora, 2)} (medians over all rounds); ` +
    `round by round ${paired.map((x) => fmt(x, 2)).join(', ')}, median ${fmt(median(paired), 2)}`);
  // And paired step by step in one process (bench/lib/trainPair.ts): the least noisy estimate.
  const pairs = Number(env('BENCH_PAIRS', '12'));
  if (pairs > 0) {
    log(`LoRA and MoR in one process, steps taking turns (${pairs} pairs) ...`);
    const p = runJsonChild<TrainPairResult>(process.execPath, ['--import', 'tsx', path.join(here, 'lib', 'trainPair.ts'), dir], { ...childEnv, BENCH_PAIRS: String(pairs) }, timeoutMs);
    if ('error' in p && p.error) {
      console.log(`MoR step / LoRA step, paired in one process: failed: ${p.error}`);
    } else {
      const r = p as TrainPairResult;
      const q = [...r.ratios].sort((x, y) => x - y);
      const at = (f: number) => q[Math.round(f * (q.length - 1))];
      console.log(`MoR step / LoRA step, paired in one process (LoRA ${fmt(median(r.loraS), 2)} s, MoR ${fmt(median(r.morS), 2)} s median): ` +
        `median of ${q.length} pair ratios ${fmt(median(r.ratios), 3)} (quartiles ${fmt(at(0.25), 2)}-${fmt(at(0.75), 2)})` +
        (r.alternated ? '' : '; WARNING: the steps did not take turns'));
    }
  }
}
