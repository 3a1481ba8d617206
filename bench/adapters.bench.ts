/**
 * `npm run bench:adapters`: forward and forward+backward time of ONE adapted layer
 * (`[1024 tokens, 576 -> 1536]`, SmolLM-135M's up_proj shape) for LoRA r=32, MoR r=32 N=8
 * (rank-expansion form, and the per-expert loop for reference), MoELoRA N=8 r_e=32 and
 * MoELoRA N=8 r_e=4, all in this process, with trainable-parameter counts and the ratios
 * MoR / LoRA (target <= 1.3x) and MoR / MoELoRA(N=8, r_e=32) (target <= 0.5x).
 *
 * Forward+backward computes the gradients of the adapter tensors AND of the layer input (as
 * inside a network); the base weight is frozen. Rows run interleaved; the minimum (least
 * disturbed) and median of the runs are reported, ratios use the minimum.
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
}

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
    { name: 'LoRA r=32', layer: lora },
    { name: 'MoR r=32 N=8', layer: mor },
    {
      name: 'MoR r=32 N=8 (per-expert loop)',
      layer: mor,
      forward: (x, ctx) => tf.tidy(() => {
        const s = mor.state('default');
        const g = mor.routing(s, x, ctx);
        return tf.add(mor.baseLayer.forward(x), morDeltaNaive(x, mor.params(s), g, s.scaling));
      }),
    },
    { name: 'MoELoRA N=8 r_e=32', layer: moe(32) },
    { name: 'MoELoRA N=8 r_e=4', layer: moe(4) },
  ];
  for (const r of all) r.layer.setActiveAdapter('default');
  return all;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
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
const jobs: { name: string; params: number; fwd: () => void; fwdBwd: () => void }[] = all.map((r) => {
  const fwd = r.forward ?? ((xx: tf.Tensor2D, c: ForwardContext) => r.layer.forward(xx, c));
  const vars = [...r.layer.state('default').tensors.values()];
  return {
    name: r.name,
    params: vars.reduce((s, v) => s + v.size, 0),
    fwd: () => tf.tidy(() => void fwd(x, ctx()).dataSync()),
    fwdBwd: () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(fwd(x, ctx())) as tf.Scalar, [...vars, x]);
      for (const g of Object.values(grads)) g.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    },
  };
});
const baseJob = { name: 'base Linear (no adapter)', params: 0, fwd: () => tf.tidy(() => void base.forward(x).dataSync()), fwdBwd: () => {
  const { value, grads } = tf.variableGrads(() => tf.sum(base.forward(x)) as tf.Scalar, [x]);
  tf.dispose([value, ...Object.values(grads)]);
} };
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
  name: j.name, params: j.params,
  fwd: Math.min(...tf_[i]), fwdBwd: Math.min(...tb[i]), fwdMed: median(tf_[i]), fwdBwdMed: median(tb[i]),
}));

const info = backendInfo();
console.log(`adapted layer [${T} tokens, ${D_IN} -> ${D_OUT}], matmul: ${info.matmulPath} (${info.threads} thread(s)), ${ITERS} interleaved runs: min (median) ms`);
console.log('| adapter | trainable params | forward ms | forward+backward ms |');
console.log('|---|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.name} | ${r.params.toLocaleString('en-US')} | ${r.fwd.toFixed(1)} (${r.fwdMed.toFixed(1)}) | ${r.fwdBwd.toFixed(1)} (${r.fwdBwdMed.toFixed(1)}) |`);
}
const get = (n: string) => results.find((r) => r.name === n)!;
const mor = get('MoR r=32 N=8');
const lora = get('LoRA r=32');
const moe = get('MoELoRA N=8 r_e=32');
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
console.log(`MoR / LoRA: forward ${ratio(mor.fwd, lora.fwd)}, forward+backward ${ratio(mor.fwdBwd, lora.fwdBwd)} (target <= 1.3x)`);
console.log(`MoR / MoELoRA(N=8, r_e=32): forward ${ratio(mor.fwd, moe.fwd)}, forward+backward ${ratio(mor.fwdBwd, moe.fwdBwd)} (target <= 0.5x)`);
console.log(`MoR / MoELoRA(N=8, r_e=32) trainable params: ${(mor.params / moe.params).toFixed(4)}`);
