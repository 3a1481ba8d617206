/**
 * `node --import tsx bench/actmem-fit.ts`: refits the activation coefficients of the size
 * policy (src/models/memoryPlan.ts, ACTIVATION_COEFFICIENTS) for the matmul path this process
 * runs on (`MOR_MATMUL=wasm` for the pure-wasm path). For each of a few random shapes it runs
 * bench/actmem-measure.ts (one MoR r 8, N 8 training step, each in its own process) with 1 and
 * 2 decoder layers; the difference is what ONE layer adds:
 *  - `held`: the tensor bytes the tape keeps for the layer's backward;
 *  - `peak`: what the layer adds to the step's peak (tfjs keeps the backward's intermediate
 *    gradients until it ends: about three times `held` on the native path).
 * Least squares (no intercept) of `peak / (4 tokens)` on `[hidden, intermediate, heads x T]`
 * gives the per-token coefficients of one layer's share of a plain step's peak; the peak of a
 * checkpointed 2-layer step above the plain 1-layer step's (plus the layer), in units of one
 * layer's peak, is the checkpointed plan's factor. Prints the plan's current coefficients and how
 * far they are from the measurements.
 *
 * Larger widths are checked one at a time with actmem-measure.ts (README, "Memory").
 *
 * Env: MOR_BLAS_THREADS as usual; BENCH_SHAPES=quick uses two shapes (a smoke run).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ACTIVATION_COEFFICIENTS } from '../src/models/memoryPlan.ts';
import { formatTable } from './lib/timing.ts';
import { maxOf } from '../src/util/array.ts';

interface Shape { hiddenSize: number; intermediateSize: number; numAttentionHeads: number; numKeyValueHeads: number; seq: number }
interface Measured { heldBytes: number; peakBytes: number }

const measureScript = fileURLToPath(new URL('./actmem-measure.ts', import.meta.url));
const ALL: Shape[] = [
  { hiddenSize: 512, intermediateSize: 1536, numAttentionHeads: 8, numKeyValueHeads: 2, seq: 256 },
  { hiddenSize: 1024, intermediateSize: 1536, numAttentionHeads: 8, numKeyValueHeads: 2, seq: 256 },
  { hiddenSize: 512, intermediateSize: 3072, numAttentionHeads: 8, numKeyValueHeads: 2, seq: 256 },
  { hiddenSize: 512, intermediateSize: 1536, numAttentionHeads: 16, numKeyValueHeads: 4, seq: 512 },
  { hiddenSize: 1024, intermediateSize: 2816, numAttentionHeads: 16, numKeyValueHeads: 4, seq: 512 },
];
const shapes = process.env.BENCH_SHAPES === 'quick' ? ALL.slice(0, 2) : ALL;
const VOCAB = 4096;

function measure(s: Shape, layers: number, ckpt: boolean): Measured {
  const { seq, ...config } = s;
  const arg = JSON.stringify({ ...config, vocabSize: VOCAB, numHiddenLayers: layers, batch: 1, seq, ckpt });
  const r = spawnSync(process.execPath, ['--import', 'tsx', measureScript, arg], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`actmem-measure ${arg} failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Measured;
}

/** Solve the normal equations of least squares without intercept (3 unknowns; Gaussian elimination). */
function leastSquares(rows: number[][], y: number[]): number[] {
  const n = rows[0].length;
  const a = Array.from({ length: n }, (_, i) => Array.from({ length: n + 1 }, (_, j) => {
    let s = 0;
    for (let k = 0; k < rows.length; k++) s += rows[k][i] * (j < n ? rows[k][j] : y[k]);
    return s;
  }));
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      for (let j = c; j <= n; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row, i) => row[n] / row[i]);
}

const xs: number[][] = [];
const peakPerToken: number[] = [];
const table: string[][] = [];
const peakRatios: number[] = [];
const ckptRatios: number[] = [];
for (const s of shapes) {
  const one = measure(s, 1, false);
  const two = measure(s, 2, false);
  const ck = measure(s, 2, true);
  const perLayerHeld = two.heldBytes - one.heldBytes;
  const perLayerPeak = two.peakBytes - one.peakBytes;
  // Checkpointed, 2 layers: its peak above the plain 1-layer step's, in layer units.
  const ckptExtra = (ck.peakBytes - one.peakBytes + perLayerPeak) / perLayerPeak;
  const tokens = s.seq;
  xs.push([s.hiddenSize, s.intermediateSize, s.numAttentionHeads * s.seq]);
  peakPerToken.push(perLayerPeak / (4 * tokens));
  peakRatios.push(perLayerPeak / perLayerHeld);
  ckptRatios.push(ckptExtra);
  table.push([`h ${s.hiddenSize} i ${s.intermediateSize} H ${s.numAttentionHeads} T ${s.seq}`, (perLayerHeld / 2 ** 20).toFixed(1), (perLayerPeak / 2 ** 20).toFixed(1),
    (perLayerPeak / perLayerHeld).toFixed(2), ckptExtra.toFixed(2)]);
  process.stderr.write(`measured ${table.at(-1)!.join(' | ')}\n`);
}
const [cH, cI, cS] = shapes.length >= 3 ? leastSquares(xs, peakPerToken) : [NaN, NaN, NaN];
const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
process.stdout.write(formatTable(['shape (1 x T tokens)', 'layer held MiB', 'layer peak MiB', 'peak / held', 'ckpt peak / layer peak'], table) + '\n');
process.stdout.write(`matmul path: ${process.env.MOR_MATMUL ?? 'default'}\n`);
process.stdout.write(`fitted peak per token and layer (float32 values): ${cH.toFixed(2)} h + ${cI.toFixed(2)} i + ${cS.toFixed(3)} H T; ` +
  `peak/held ${mean(peakRatios).toFixed(2)}, checkpointed peak ${maxOf(ckptRatios).toFixed(2)} layers (largest)\n`);
const c = process.env.MOR_MATMUL === 'wasm' ? ACTIVATION_COEFFICIENTS.wasm : ACTIVATION_COEFFICIENTS.native;
for (let k = 0; k < xs.length; k++) {
  const [h, i, ht] = xs[k];
  const fit = cH * h + cI * i + cS * ht;
  const plan = c.hidden * h + c.intermediate * i + c.scoresPerHead * ht;
  process.stdout.write(`  ${table[k][0]}: measured ${peakPerToken[k].toFixed(0)}, fit ${fit.toFixed(0)}, plan ${plan.toFixed(0)} values/token\n`);
}
