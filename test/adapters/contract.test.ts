/**
 * The adapter contract: every adapter type goes through the same checks on a LLaMA-shaped toy
 * model (no-op init, disable, finite-difference gradients of every trainable tensor, exact
 * parameter counts from the docs/mor.md formulas, save/load round trip, merge, merge under a
 * fixed routing vector, two adapters on one model, no tensor leaks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import { UserError } from '../../src/errors.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { savePretrained } from '../../src/adapters/save.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import { DoraLinear } from '../../src/adapters/dora.ts';
import { isDeltaLayer } from '../../src/adapters/deltaLayer.ts';
import { adapterKind } from '../../src/adapters/registry.ts';
import type { AdapterConfigInput } from '../../src/adapters/config.ts';
import type { PeftModel } from '../../src/adapters/inject.ts';
import { mergeWithRouting, setFixedRouting } from '../../src/routing/fixedRouting.ts';
import { ToyModel, fdCheck, maxAbsDiff, randTensor } from './helpers.ts';

await initBackend();

interface Case {
  name: string;
  config: AdapterConfigInput;
  mergeable: boolean;
  /** Number of experts of a kind that merges under a fixed routing vector. */
  fixedRouting?: number;
  /** Trainable parameters of one adapted `[dOut, dIn]` layer, per docs/mor.md's table. */
  perLayer: (dIn: number, dOut: number) => number;
}

const r = 3;
const n = 4;
const CASES: Case[] = [
  { name: 'lora', config: { kind: 'lora', r, alpha: 6 }, mergeable: true, perLayer: (i, o) => r * (i + o) },
  {
    name: 'lora rslora + lora_bias',
    config: { kind: 'lora', r: 2, alpha: 4, useRslora: true, loraBias: true },
    mergeable: true,
    perLayer: (i, o) => 2 * (i + o) + o,
  },
  { name: 'dora', config: { kind: 'dora', r, alpha: 6 }, mergeable: true, perLayer: (i, o) => r * (i + o) + o },
  {
    name: 'mor softmax',
    config: { kind: 'mor', r, alpha: 6, numExperts: n, omegaInit: 'ones+noise', omegaNoiseStd: 0.3, routerInitStd: 0.5 },
    mergeable: false,
    fixedRouting: n,
    perLayer: (i, o) => r * (i + o) + n * (r + o) + n * i,
  },
  {
    name: 'mor uniform',
    config: { kind: 'mor', r, alpha: 6, numExperts: n, routerMode: 'uniform', omegaInit: 'ones+noise', omegaNoiseStd: 0.3 },
    mergeable: true,
    fixedRouting: n,
    perLayer: (i, o) => r * (i + o) + n * (r + o),
  },
  {
    name: 'mor balanced + router bias',
    config: {
      kind: 'mor', r, alpha: 6, numExperts: n, routerMode: 'balanced', routerBias: true, loadBalanceCoef: 0.5,
      omegaInit: 'ones+noise', omegaNoiseStd: 0.3, routerInitStd: 0.5,
    },
    mergeable: false,
    fixedRouting: n,
    perLayer: (i, o) => r * (i + o) + n * (r + o) + n * i + n,
  },
  {
    name: 'moelora dense',
    config: { kind: 'moelora', r: 2, alpha: 4, numExperts: n, routerInitStd: 0.5 },
    mergeable: false,
    perLayer: (i, o) => n * 2 * (i + o) + n * i,
  },
  {
    name: 'moelora top-2 + load balance',
    config: { kind: 'moelora', r: 2, alpha: 4, numExperts: n, topK: 2, loadBalance: true, loadBalanceCoef: 0.5, routerInitStd: 0.5 },
    mergeable: false,
    perLayer: (i, o) => n * 2 * (i + o) + n * i,
  },
  { name: 'full', config: { kind: 'full' }, mergeable: true, perLayer: (i, o) => i * o },
  {
    name: 'hydralora',
    config: { kind: 'hydralora', r, alpha: 6, numExperts: n, routerInitStd: 0.5 },
    mergeable: false,
    fixedRouting: n,
    perLayer: (i, o) => r * i + n * r * o + n * i,
  },
  {
    name: 'hydralora load balance + router bias',
    config: { kind: 'hydralora', r: 2, alpha: 4, numExperts: n, loadBalance: true, loadBalanceCoef: 0.5, routerBias: true, routerInitStd: 0.5 },
    mergeable: false,
    fixedRouting: n,
    perLayer: (i, o) => 2 * i + n * 2 * o + n * i + n,
  },
];

const D = 8;
const F = 12;
const T = 5;
/** `up_proj` and `o_proj` of layer 1: one [F, D] and one [D, D] layer. */
const TARGETS = { targetModules: ['up_proj', 'o_proj'], layersToTransform: [1] };

function xInput(): tf.Tensor2D {
  return randTensor(new Rng(99), [T, D]) as tf.Tensor2D;
}

for (const c of CASES) {
  test(`contract: ${c.name}`, async (t) => {
    const before = tf.memory().numTensors;
    const x = xInput();

    await t.test('default init is a no-op (exactly the base output)', () => {
      const model = new ToyModel(D, F);
      const base = model.forward(x);
      const peft = getPeftModel(model, { ...c.config, ...TARGETS, seed: 3 });
      const out = model.forward(x);
      assert.equal(maxAbsDiff(out, base), 0);
      tf.dispose([base, out]);
      peft.dispose();
    });

    const model = new ToyModel(D, F);
    const base = model.forward(x);
    const allBase = model.namedParameters().reduce((s, [, p]) => s + p.size, 0);
    const cfg: AdapterConfigInput = { ...c.config, ...TARGETS, seed: 5, ...(c.config.kind === 'full' ? {} : { init: false }) };
    const peft = getPeftModel(model, cfg);
    if (c.config.kind === 'full') {
      // Move the trainable weights away from the base so the checks below can fail.
      for (const [, v] of peft.trainableParameters()) tf.tidy(() => v.assign(tf.add(v, randTensor(new Rng(7), v.shape, 0.3))));
    }
    const out = model.forward(x);

    await t.test('random init changes the output; disabled adapter equals the base', () => {
      assert.ok(maxAbsDiff(out, base) > 1e-3, 'adapter should change the output');
      const off = peft.withAdapterDisabled(() => model.forward(x));
      assert.equal(maxAbsDiff(off, base), 0);
      const again = model.forward(x);
      assert.equal(maxAbsDiff(again, out), 0, 'state restored after withAdapterDisabled');
      tf.dispose([off, again]);
    });

    await t.test('the layer merges as its registry entry says (full fine-tuning trains in place)', () => {
      const layers = peft.adapterLayers();
      assert.ok(layers.length > 0);
      const inPlace = adapterKind(c.config.kind).merge === 'inPlace';
      for (const [path, l] of layers) assert.equal(isDeltaLayer(l), !inPlace, path);
    });

    await t.test('parameter counts equal the docs/mor.md formulas', () => {
      const expected = c.perLayer(D, F) + c.perLayer(D, D);
      const counts = peft.countParameters();
      assert.equal(counts.trainable, expected);
      // full swaps the weights in place, the others add their tensors.
      assert.equal(counts.all, c.config.kind === 'full' ? allBase : allBase + expected);
      let line = '';
      peft.printTrainableParameters((l) => (line = l));
      assert.equal(
        line,
        `trainable params: ${expected.toLocaleString('en-US')} || all params: ${counts.all.toLocaleString('en-US')} || trainable%: ${((100 * expected) / counts.all).toFixed(4)}`,
      );
    });

    await t.test('finite-difference gradients of every trainable tensor', () => {
      const rng = new Rng(11);
      const weight = randTensor(rng, [T, model.v]);
      const lossOf = (): tf.Scalar => {
        const ctx: ForwardContext = { training: true, auxLosses: [], seed: 1 };
        const y = model.forward(x, ctx);
        let l = tf.mean(tf.mul(y, weight)) as tf.Scalar;
        for (const a of ctx.auxLosses) l = tf.add(l, a) as tf.Scalar;
        tf.dispose([y, ...ctx.auxLosses]);
        return l;
      };
      const vars = peft.trainableParameters();
      assert.ok(vars.length > 0);
      const { value, grads } = tf.variableGrads(lossOf, vars.map(([, v]) => v));
      value.dispose();
      // DoRA treats ||W + sBA|| as a constant in the backward (paper §4.3): its numeric
      // reference holds the norm at the current point while perturbing.
      const frozen: tf.Tensor[] = [];
      for (const [, l] of peft.adapterLayers()) {
        if (!(l instanceof DoraLinear)) continue;
        const n0 = l.weightNorm(l.state('default'));
        frozen.push(n0);
        Object.defineProperty(l, 'weightNorm', { value: () => tf.clone(n0), configurable: true });
      }
      for (const [name, v] of vars) {
        const g = grads[v.name];
        assert.ok(g, `gradient of ${name}`);
        const ana = Float32Array.from(g.dataSync());
        const res = fdCheck(v, ana, () => tf.tidy(() => lossOf().dataSync()[0]), rng, { samples: 10, eps: 1e-2 });
        assert.ok(res.worst <= 0, `${name}: ${res.detail}`);
      }
      for (const [, l] of peft.adapterLayers()) if (l instanceof DoraLinear) delete (l as unknown as Record<string, unknown>).weightNorm;
      tf.dispose([...Object.values(grads), ...frozen]);
      weight.dispose();
    });

    await t.test('save / load round trip is bit-exact', () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-adapter-'));
      try {
        savePretrained(peft, dir);
        const model2 = new ToyModel(D, F);
        const peft2 = loadAdapter(model2, dir);
        const a = peft.adapterTensors('default');
        const b = peft2.adapterTensors('default');
        assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
        for (const [k, v] of a) assert.deepEqual(b.get(k)!.dataSync(), v.dataSync(), k);
        const out2 = model2.forward(x);
        assert.equal(maxAbsDiff(out2, out), 0);
        out2.dispose();
        peft2.dispose();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    if (c.fixedRouting !== undefined) {
      const k = c.fixedRouting;
      await t.test('fixed routing: merging under g equals the forward with the router pinned to g', () => {
        const g = Array.from({ length: k }, (_, i) => (2 * (i + 1)) / (k * (k + 1))); // sums to 1, not uniform
        setFixedRouting(peft, g);
        const pinned = model.forward(x);
        assert.ok(maxAbsDiff(pinned, out) > 1e-5, 'pinning must change the output');
        setFixedRouting(peft, undefined);
        const free = model.forward(x);
        assert.equal(maxAbsDiff(free, out), 0, 'unpinning restores the router');
        mergeWithRouting(peft, g);
        const merged = model.forward(x);
        assert.ok(maxAbsDiff(merged, pinned) <= 1e-4, `merged vs pinned ${maxAbsDiff(merged, pinned)}`);
        peft.unmerge();
        const back = model.forward(x);
        assert.equal(maxAbsDiff(back, out), 0);
        assert.throws(() => mergeWithRouting(peft, g.slice(1)), (e: Error) => e instanceof UserError && /numExperts/.test(e.message));
        tf.dispose([pinned, free, merged, back]);
      });
    } else {
      await t.test('merging under a fixed routing vector is refused', () => {
        assert.throws(() => mergeWithRouting(peft, [1]), (e: Error) => e instanceof UserError && /mergeWithRouting needs/.test(e.message));
        const y = model.forward(x);
        assert.equal(maxAbsDiff(y, out), 0);
        y.dispose();
      });
    }

    await t.test(c.mergeable ? 'merge / unmerge / mergeAndUnload keep the output' : 'merge is refused', () => {
      if (!c.mergeable) {
        assert.throws(() => peft.merge(), (e: Error) => e instanceof UserError && /cannot be merged/.test(e.message));
        const y = model.forward(x);
        assert.equal(maxAbsDiff(y, out), 0, 'a refused merge leaves the model unchanged');
        y.dispose();
        assert.throws(() => peft.mergeAndUnload(), UserError);
        return;
      }
      peft.merge();
      const merged = model.forward(x);
      assert.ok(maxAbsDiff(merged, out) <= 1e-4, `merged ${maxAbsDiff(merged, out)}`);
      peft.unmerge();
      const unmerged = model.forward(x);
      assert.ok(maxAbsDiff(unmerged, out) <= 1e-4);
      const plain = peft.mergeAndUnload();
      const final = plain.forward(x);
      assert.ok(maxAbsDiff(final, out) <= 1e-4);
      // Only the merged lora_B bias may add a bias to layers that had none.
      const extra = c.config.kind === 'lora' && c.config.loraBias ? F + D : 0;
      assert.equal(plain.namedParameters().reduce((s, [, p]) => s + p.size, 0), allBase + extra, 'no adapter tensors left');
      tf.dispose([merged, unmerged, final]);
    });

    await t.test('two adapters on one model: add, switch, disable, delete', () => twoAdapters(c, x));

    tf.dispose([base, out, x]);
    peft.dispose();
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  });
}

/** A fresh peft model's adapter `name` with random values (full adapters start as the base). */
function randomise(peft: PeftModel, name: string, seed: number): void {
  for (const [, v] of peft.adapterTensors(name)) tf.tidy(() => v.assign(tf.add(v, randTensor(new Rng(seed), v.shape, 0.3))));
}

/**
 * Adapters `a` and `b` of the same kind on one model: adding `b` does not activate it, the
 * active adapter alone is trainable and shapes the output, disabling gives the base output,
 * switching back is exact, deleting the active one activates the other, deleting both restores
 * the base model (no wrappers, no extra parameters).
 */
function twoAdapters(c: Case, x: tf.Tensor2D): void {
  const model = new ToyModel(D, F);
  const base = model.forward(x);
  const allBase = model.namedParameters().reduce((s, [, p]) => s + p.size, 0);
  const cfg = (seed: number): AdapterConfigInput => ({ ...c.config, ...TARGETS, seed, ...(c.config.kind === 'full' ? {} : { init: false }) });
  const peft = getPeftModel(model, cfg(5), 'a');
  randomise(peft, 'a', 7);
  const outA = model.forward(x);
  peft.addAdapter('b', cfg(6));
  randomise(peft, 'b', 8);
  assert.equal(peft.activeAdapter, 'a');
  const stillA = model.forward(x);
  assert.equal(maxAbsDiff(stillA, outA), 0, 'adding an adapter does not activate it');

  peft.setAdapter('b');
  const outB = model.forward(x);
  assert.ok(maxAbsDiff(outB, outA) > 1e-3, 'b differs from a');
  const trainable = new Set(peft.trainableParameters().map(([, v]) => v));
  assert.deepEqual(trainable, new Set(peft.adapterTensors('b').values()), 'only the active adapter is trainable');
  const off = peft.withAdapterDisabled(() => model.forward(x));
  assert.equal(maxAbsDiff(off, base), 0, 'disabled: the base output');

  // Switching away from a merged adapter unmerges it first (exactly: the original base is kept).
  if (c.mergeable || c.fixedRouting) {
    peft.setAdapter('a');
    if (c.fixedRouting) mergeWithRouting(peft, new Array<number>(c.fixedRouting).fill(1 / c.fixedRouting));
    else peft.merge();
    peft.setAdapter('b');
    const unmergedB = model.forward(x);
    assert.equal(maxAbsDiff(unmergedB, outB), 0, 'switching from a merged adapter unmerges it');
    unmergedB.dispose();
  }

  peft.setAdapter('a');
  const backA = model.forward(x);
  assert.equal(maxAbsDiff(backA, outA), 0, 'switching back is exact');

  peft.deleteAdapter('a');
  assert.equal(peft.activeAdapter, 'b');
  const onlyB = model.forward(x);
  assert.equal(maxAbsDiff(onlyB, outB), 0, 'deleting the active adapter activates the other');
  peft.deleteAdapter('b');
  const none = model.forward(x);
  assert.equal(maxAbsDiff(none, base), 0, 'no adapter left: the base output');
  assert.equal(peft.adapterLayers().length, 0, 'layers unwrapped');
  assert.equal(model.namedParameters().reduce((s, [, p]) => s + p.size, 0), allBase, 'no adapter tensors left');

  tf.dispose([base, outA, stillA, outB, off, backA, onlyB, none]);
  peft.dispose();
}
