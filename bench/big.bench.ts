/**
 * `npm run bench:big`: models far past the wasm heap. Creates once, in `MOR_BENCH_CACHE`
 * (default ~/.cache/mor-peft/bench-big), random bf16 sharded checkpoints of the Qwen2.5-0.5B
 * shape (trained at batch 4), the TinyLlama-1.1B shape and the LLaMA-2-7B shape, then reports
 * for each, ours and PyTorch's (bench/big_torch.py,
 * when a Python with torch >= 2 is found: `MOR_TORCH_PYTHON`, else `python3`), each in its own
 * process so peak RSS is its own: load time, peak RSS, forward tokens/s (1 x 512, full
 * logits), one MoR training step (r=8, N=8 on gate/up/down, batch x 512, full causal-LM loss,
 * AdamW), greedy generation tokens/s, and ours merges a LoRA adapter into bf16 shards (`mor merge`).
 * PyTorch loads float32 for 0.5B and 1.1B, bfloat16 for 7B.
 *
 * Env: BENCH_SHAPES (`0.5b,1.1b,7b`), BENCH_SEQ (512), BENCH_NEW (new tokens, 8), BENCH_TRAIN_STEPS (2: the
 * last one is reported, on both sides), BENCH_MERGE=0, BENCH_TORCH=0
 * (skip PyTorch), BENCH_TIMEOUT_S (per child, 3600), MOR_BENCH_CACHE.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeConfig, type LlamaConfig } from '../src/models/llama/config.ts';
import { ensureBigCheckpoint } from './lib/bigCheckpoint.ts';
import { fmt, formatTable } from './lib/timing.ts';
import type { BigResult } from './lib/bigRun.ts';
import { findTorchPython, runJsonChild } from './lib/child.ts';

/** Benchmark shapes: a random checkpoint's config, PyTorch's dtype, and the training batch (x BENCH_SEQ). */
const SHAPES: Record<string, { config: LlamaConfig; torchDtype: string; batch: number }> = {
  '0.5b': {
    // Qwen2.5-0.5B widths: tied embeddings over a 151,936-token vocabulary, q/k/v biases.
    config: makeConfig({
      modelType: 'qwen2', vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24,
      numAttentionHeads: 14, numKeyValueHeads: 2, tieWordEmbeddings: true, rmsNormEps: 1e-6, ropeTheta: 1e6,
      maxPositionEmbeddings: 32768,
    }),
    torchDtype: 'float32',
    batch: 4,
  },
  '1.1b': {
    config: makeConfig({
      vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numHiddenLayers: 22, numAttentionHeads: 32,
      numKeyValueHeads: 4, rmsNormEps: 1e-5, maxPositionEmbeddings: 2048,
    }),
    torchDtype: 'float32',
    batch: 1,
  },
  '7b': {
    config: makeConfig({
      vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numHiddenLayers: 32, numAttentionHeads: 32,
      rmsNormEps: 1e-5, maxPositionEmbeddings: 4096,
    }),
    torchDtype: 'bfloat16',
    batch: 1,
  },
};

const here = path.dirname(fileURLToPath(import.meta.url));
const cache = process.env.MOR_BENCH_CACHE || path.join(os.homedir(), '.cache', 'mor-peft', 'bench-big');
const shapes = (process.env.BENCH_SHAPES ?? '0.5b,1.1b,7b').split(',').map((s) => s.trim()).filter(Boolean);
const seq = process.env.BENCH_SEQ ?? '512';
const newTokens = process.env.BENCH_NEW ?? '8';
const timeoutMs = 1000 * Number(process.env.BENCH_TIMEOUT_S ?? 3600);
const log = (s: string) => process.stderr.write(s + '\n');

/** Run one side in its own process; its last stdout line is a BigResult JSON. */
function runChild(cmd: string, args: string[], label: string, batch: number): BigResult {
  log(`${label}: running...`);
  return runJsonChild<BigResult>(cmd, args, { BENCH_SEQ: seq, BENCH_NEW: newTokens, BENCH_BATCH: String(batch) }, timeoutMs);
}

const torch = findTorchPython();
if (torch.why) log(`PyTorch column skipped: ${torch.why}`);
const rows: string[][] = [];
for (const name of shapes) {
  const shape = SHAPES[name];
  if (!shape) throw new Error(`BENCH_SHAPES: unknown shape "${name}" (known: ${Object.keys(SHAPES).join(', ')})`);
  const dir = path.join(cache, `llama-${name}-bf16`);
  if (await ensureBigCheckpoint(dir, shape.config)) log(`${name}: checkpoint written to ${dir}`);
  const ours = runChild(process.execPath, ['--import', 'tsx', path.join(here, 'lib', 'bigRun.ts'), dir], `${name} ours`, shape.batch);
  const theirs = torch.python
    ? runChild(torch.python, [path.join(here, 'big_torch.py'), dir, shape.torchDtype], `${name} PyTorch (${shape.torchDtype})`, shape.batch)
    : undefined;
  for (const [who, r] of [['mor-peft (bf16 store)', ours], [`PyTorch ${shape.torchDtype}`, theirs]] as const) {
    if (!r) continue;
    if (r.error) {
      rows.push([name, who, `failed: ${r.error}`, fmt(r.peakRssGiB, 2), '', '', '', '', '', '']);
      continue;
    }
    rows.push([name, who, fmt(r.loadS), fmt(r.peakRssGiB, 2), fmt(r.forwardTokS), fmt(r.trainStepS), fmt(r.trainTokS), r.checkpointedLayers === undefined ? '' : String(r.checkpointedLayers), fmt(r.generateTokS, 2), fmt(r.mergeS)]);
  }
  if (ours && theirs && !ours.error && !theirs.error) {
    rows.push([name, 'ratio ours / PyTorch', fmt(ours.loadS! / theirs.loadS!, 2), fmt(ours.peakRssGiB! / theirs.peakRssGiB!, 2),
      fmt(ours.forwardTokS! / theirs.forwardTokS!, 2), fmt(ours.trainStepS! / theirs.trainStepS!, 2),
      fmt(ours.trainTokS! / theirs.trainTokS!, 2), '', fmt(ours.generateTokS! / theirs.generateTokS!, 2), '']);
  }
}
console.log(`\ntraining batch ${shapes.map((s) => `${SHAPES[s].batch} x ${seq} (${s})`).join(', ')}; forward 1 x ${seq}; MoR r=8 N=8 on gate/up/down; ` +
  `greedy generation of ${newTokens} tokens; ${os.availableParallelism()} cores\n`);
console.log(formatTable(['shape', 'run', 'load s', 'peak RSS GiB', 'forward tok/s', 'train step s', 'train tok/s', 'ckpt layers', 'generate tok/s', 'merge s'], rows));
