/**
 * `npm run bench:adapters`: forward and forward+backward time of ONE adapted layer
 * (`[1024 tokens, 576 -> 1536]`, SmolLM-135M's up_proj shape) for LoRA r=32, MoR r=32 N=8
 * (rank-expansion form, and the per-expert loop for reference), MoELoRA N=8 r_e=32 and
 * MoELoRA N=8 r_e=4, all in this process, with trainable-parameter counts and the ratios
 * MoR / LoRA (target <= 1.3x) and MoR / MoELoRA(N=8, r_e=32) (target <= 0.5x, issue 4).
 *
 * Forward+backward computes the gradients of the adapter tensors AND of the layer input (as
 * inside a network); the base weight is frozen. Rows run interleaved; the minimum (least
 * disturbed) and median of the runs are reported, ratios use the minimum.
 *
 * Next to the times, the multiply-adds of each row's matrix products (counted from the shapes:
 * what any exact implementation of the same formula must compute; element-wise work left out)
 * and the same ratios by that count. MoR's routed sum has rank N*r: it costs T*N*r*out
 * multiply-adds in the forward and twice that in the backward, like MoELoRA's B side.
 *
 * Options (env): BENCH_ITERS (default 7), BENCH_TOKENS (1024), BENCH_IN (576), BENCH_OUT (1536).
 */
import { initBackend, tf, backendInfo } from '../src/backend/tf.ts';
import { Linear } from '../src/nn/linear.ts';
import { Rng } from '../src/util/rng.ts';
import type { ForwardContext } from '../src/nn/context.ts';
import { LoraLinear } from '../src/adapters/lora.ts';
import { MorLinear, morDeltaNaive } from '../src/adapters/mor.ts';
import { MoeLoraLinear } from '../src/adapters/moelora.ts';
import type { AdapterLayer } from '../src/adapters/layer.ts';
import { minOf } from '../src/util/array.ts';
import { median } from './lib/timing.ts';

await initBackend();
const ITERS = Number(process.env.BENCH_ITERS ?? 7);
const T = Number(process.env.BENCH_TOKENS ?? 1024);
const D_IN = Number(process.env.BENCH_IN ?? 576);
const D_OUT = Number(process.env.BENCH_OUT ?? 1536);
const rng = new Rng(0);

function makeBase(): Linear {
  return new Linear(tf.tensor2d(rng.normalArray(D_OUT * D_IN, 0, 0.02), [D_OUT, D_IN]));
}

const common = { alpha: 64, dropout: 0, useRslora: false, init: false as const, seed: 1 };

interface Row {
  name: string;
  layer: AdapterLayer;
  forward?: (x: tf.Tensor2D, ctx: ForwardContext) => tf.Tensor;
  /** Multiply-adds of the matrix products: forward, backward (adapter tensors and dx; W frozen). */
  macs: { fwd: number; bwd: number };
}

/** Base layer plus an adapter whose forward products cost `f`: each is done twice in the backward. */
function withAdapter(f: number): { fwd: number; bwd: number } {
  const base = T * D_IN * D_OUT; // y = x Wᵀ; dx = dy W
  return { fwd: base + f, bwd: base + 2 * f };
}

/** Multiply-adds of the matrix products of one row (see the header). */
const macs = {
  base: () => withAdapter(0),
  lora: (r: number) => withAdapter(T * r * (D_IN + D_OUT)), // h = x Aᵀ; h Bᵀ
  // h = x Aᵀ [T, r]; router x W_gᵀ [T, N]; z Bexpᵀ [T, N*r] x [N*r, out]
  mor: (r: number, n: number) => withAdapter(T * r * D_IN + T * n * D_IN + T * n * r * D_OUT),
  // h = x [A_1..A_N]ᵀ [T, N*r]; router; z [B_1..B_N]ᵀ
  moelora: (r: number, n: number) => withAdapter(T * n * r * (D_IN + D_OUT) + T * n * D_IN),
};

function rows(): Row[] {
  const lora = new LoraLinear(makeBase(), 'bench');
  lora.addAdapter('default', { ...common, r: 32 });
  const mor = new MorLinear(makeBase(), 'bench');
  const morSpec = {
    ...common, r: 32, numExperts: 8, routerMode: 'softmax' as const, routerInitStd: 0.02, routerBias: false,
    omegaInit: 'ones+noise' as const, omegaNoiseStd: 0.01, loadBalanceCoef: 0,
  };
  mor.addAdapter('default', morSpec);
  const moe = (r: number): MoeLoraLinear => {
    const l = new MoeLoraLinear(makeBase(), 'bench');
    l.addAdapter('default', { ...common, r, numExperts: 8, loadBalance: false, loadBalanceCoef: 0, routerInitStd: 0.02, routerBias: false });
    return l;
  };
  const all: Row[] = [
    { name: 'LoRA r=32', layer: lora, macs: macs.lora(32) },
    { name: 'MoR r=32 N=8', layer: mor, macs: macs.mor(32, 8) },
    {
      name: 'MoR r=32 N=8 (per-expert loop)',
      layer: mor,
      macs: macs.mor(32, 8),
      forward: (x, ctx) => tf.tidy(() => {
        const s = mor.state('default');
        const g = mor.routing(s, x, ctx);
        return tf.add(mor.baseLayer.forward(x), morDeltaNaive(x, s.params, g, s.scaling));
      }),
    },
    { name: 'MoELoRA N=8 r_e=32', layer: moe(32), macs: macs.moelora(32, 8) },
    { name: 'MoELoRA N=8 r_e=4', layer: moe(4), macs: macs.moelora(4, 8) },
  ];
  for (const r of all) r.layer.setActiveAdapter('default');
  return all;
}

function timeOnce(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

// The input is a variable: inside a network the backward also needs dL/dx.
const x = tf.variable(tf.tensor2d(rng.normalArray(T * D_IN), [T, D_IN]), true);
const base = makeBase();
const ctx = (): ForwardContext => ({ training: true, auxLosses: [] });
const all = rows();
interface Job {
  name: string;
  params: number;
  macs: { fwd: number; bwd: number };
  fwd: () => void;
  fwdBwd: () => void;
}
/** Forward+backward of `f` w.r.t. `vars`, reading every gradient back as a trainer would. */
function fwdBwdOf(f: () => tf.Tensor, vars: tf.Variable[]): void {
  const { value, grads } = tf.variableGrads(() => tf.sum(f()) as tf.Scalar, vars);
  for (const g of Object.values(grads)) g.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
}
const jobs: Job[] = all.map((r) => {
  const fwd = r.forward ?? ((xx: tf.Tensor2D, c: ForwardContext) => r.layer.forward(xx, c));
  const vars = [...r.layer.state('default').tensors.values()];
  return {
    name: r.name,
    params: vars.reduce((s, v) => s + v.size, 0),
    macs: r.macs,
    fwd: () => tf.tidy(() => void fwd(x, ctx()).dataSync()),
    fwdBwd: () => fwdBwdOf(() => fwd(x, ctx()), [...vars, x]),
  };
});
const baseJob: Job = {
  name: 'base Linear (no adapter)', params: 0, macs: macs.base(),
  fwd: () => tf.tidy(() => void base.forward(x).dataSync()),
  fwdBwd: () => fwdBwdOf(() => base.forward(x), [x]),
};
jobs.unshift(baseJob);
// Interleave the rows (round robin, 2 warm-up rounds) so machine noise hits all of them alike.
const tf_: number[][] = jobs.map(() => []);
const tb: number[][] = jobs.map(() => []);
for (let it = 0; it < ITERS + 2; it++) {
  jobs.forEach((j, i) => {
    const a = timeOnce(j.fwd);
    const b = timeOnce(j.fwdBwd);
    if (it >= 2) {
      tf_[i].push(a);
      tb[i].push(b);
    }
  });
}
// The minimum is the least disturbed run on a shared machine; ratios use it.
const results = jobs.map((j, i) => ({
  name: j.name, params: j.params, macs: j.macs,
  fwd: minOf(tf_[i]), fwdBwd: minOf(tb[i]), fwdMed: median(tf_[i]), fwdBwdMed: median(tb[i]),
}));

const info = backendInfo();
const mega = (n: number): string => (n / 1e6).toFixed(0);
console.log(`adapted layer [${T} tokens, ${D_IN} -> ${D_OUT}], matmul: ${info.matmulPath} (${info.threads} thread(s)), ${ITERS} interleaved runs: min (median) ms`);
console.log('| adapter | trainable params | forward ms | forward+backward ms | forward M mult-adds | forward+backward M mult-adds |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.name} | ${r.params.toLocaleString('en-US')} | ${r.fwd.toFixed(1)} (${r.fwdMed.toFixed(1)}) | ` +
    `${r.fwdBwd.toFixed(1)} (${r.fwdBwdMed.toFixed(1)}) | ${mega(r.macs.fwd)} | ${mega(r.macs.fwd + r.macs.bwd)} |`);
}
const get = (n: string) => results.find((r) => r.name === n)!;
const mor = get('MoR r=32 N=8');
const lora = get('LoRA r=32');
const moe = get('MoELoRA N=8 r_e=32');
const baseRow = get('base Linear (no adapter)');
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
const byCount = (a: typeof mor, b: typeof mor): string =>
  `by mult-add count ${ratio(a.macs.fwd, b.macs.fwd)} / ${ratio(a.macs.fwd + a.macs.bwd, b.macs.fwd + b.macs.bwd)}`;
console.log(`MoR / LoRA: forward ${ratio(mor.fwd, lora.fwd)}, forward+backward ${ratio(mor.fwdBwd, lora.fwdBwd)} ` +
  `(target <= 1.3x; ${byCount(mor, lora)})`);
console.log(`MoR / MoELoRA(N=8, r_e=32): forward ${ratio(mor.fwd, moe.fwd)}, forward+backward ${ratio(mor.fwdBwd, moe.fwdBwd)} ` +
  `(target <= 0.5x; ${byCount(mor, moe)})`);
console.log(`base layer alone / MoELoRA(N=8, r_e=32): forward ${ratio(baseRow.fwd, moe.fwd)}, forward+backward ` +
  `${ratio(baseRow.fwdBwd, moe.fwdBwd)} (${byCount(baseRow, moe)}): no adapter on the same layer can go below this`);
console.log(`MoR / MoELoRA(N=8, r_e=32) trainable params: ${(mor.params / moe.params).toFixed(4)}`);
