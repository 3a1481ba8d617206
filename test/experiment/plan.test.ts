/**
 * Experiment config validation and run planning: seed-major order of the main comparison,
 * budget matching and alpha = alphaRatio * r, ablation points that equal a main run reuse it,
 * run ids that change exactly when a setting that determines the result changes; the
 * statistics helpers against hand values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeConfig } from '../../src/models/llama/config.ts';
import { parseExperimentConfig, type ExperimentConfigInput } from '../../src/experiment/config.ts';
import { planRuns } from '../../src/experiment/plan.ts';
import { formulaTrainableParameters } from '../../src/experiment/budget.ts';
import { formatPercentMeanStd, mean, std } from '../../src/experiment/stats.ts';

const model = makeConfig({ vocabSize: 50, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4 });
const FFN = ['gate_proj', 'up_proj', 'down_proj'];

function base(): ExperimentConfigInput {
  return {
    name: 't',
    model: 'm',
    trainData: 'train.jsonl',
    evalData: 'eval.jsonl',
    seeds: [0, 1],
    train: { steps: 5 },
    methods: [
      { name: 'mor', adapter: { kind: 'mor', r: 4, numExperts: 4 } },
      { name: 'lora', adapter: { kind: 'lora', targetModules: FFN }, matchBudget: 'mor' },
      { name: 'full', adapter: { kind: 'full' }, train: { lr: 1e-4 } },
    ],
    ablations: { of: 'mor', experts: [2, 4], routers: ['uniform'] },
    staticRouting: { of: 'mor' },
  };
}

test('plan: seed-major main runs, budget matching, alpha ratio, ablation dedupe', () => {
  const c = parseExperimentConfig(base());
  const runs = planRuns(c, model, 'fp');
  const labels = runs.map((r) => `${r.memberships.map((m) => `${m.group}:${m.label}`).join('+')}@${r.seed}`);
  assert.deepEqual(labels, [
    'main:mor+experts:N=4@0', // the N=4 ablation point IS the main MoR run at the ablation seed
    'main:lora@0',
    'main:full@0',
    'main:mor@1',
    'main:lora@1',
    'main:full@1',
    'experts:N=2@0',
    'routers:uniform@0',
  ]);
  const mor = runs[0];
  assert.equal(mor.adapter.kind, 'mor');
  assert.equal(mor.adapter.kind === 'mor' && mor.adapter.alpha, 8); // alphaRatio 2 x r 4
  assert.equal(mor.staticRouting, true);
  assert.equal(runs[3].staticRouting, false); // static routing on the first seed only
  // LoRA rank: closest budget to MoR's, by brute force over the formula 2 x 3 x r x 160.
  const target = formulaTrainableParameters(model, mor.adapter);
  let best = 1;
  for (let r = 1; r < 100; r++) if (Math.abs(960 * r - target) < Math.abs(960 * best - target)) best = r;
  const lora = runs[1].adapter;
  assert.equal(lora.kind === 'lora' && lora.r, best);
  assert.equal(lora.kind === 'lora' && lora.alpha, 2 * best);
  assert.match(runs[1].budgetNote ?? '', new RegExp(`r=${best}`));
  assert.equal(runs[2].train.lr, 1e-4); // per-method override
  assert.equal(runs[1].train.lr, 1e-3); // default
  const uniform = runs[7].adapter;
  assert.equal(uniform.kind === 'mor' && uniform.routerMode, 'uniform');
  assert.equal(new Set(runs.map((r) => r.id)).size, runs.length);
});

test('plan: ids are stable and change with the model/data fingerprint, settings and seed', () => {
  const c = parseExperimentConfig(base());
  const a = planRuns(c, model, 'fp').map((r) => r.id);
  assert.deepEqual(planRuns(c, model, 'fp').map((r) => r.id), a);
  const b = planRuns(c, model, 'other').map((r) => r.id);
  assert.ok(a.every((id, i) => id !== b[i]));
  const more = parseExperimentConfig({ ...base(), train: { steps: 6 } });
  assert.ok(planRuns(more, model, 'fp').every((r, i) => r.id !== a[i]));
  // --seeds override: main at those seeds, ablations at the first.
  const seeds = planRuns(c, model, 'fp', { seeds: [7] });
  assert.deepEqual(seeds.map((r) => r.seed), [7, 7, 7, 7, 7]);
  // The static-routing seed comes from the config (its first seed), not from the override.
  assert.ok(seeds.every((r) => !r.staticRouting));
  assert.equal(planRuns(c, model, 'fp', { seeds: [1, 0] }).find((r) => r.seed === 0 && r.method === 'mor')?.staticRouting, true);
});

test('plan: a config without the protocol sections keeps the run ids it always had (caches stay valid)', () => {
  // Ids of this config before lrGrid / heldOut / intervals existed (commit 2928e15).
  assert.deepEqual(planRuns(parseExperimentConfig(base()), model, 'fp').map((r) => r.id), [
    'mor-s0-becacbf792', 'lora-s0-8ac374bd9d', 'full-s0-84a877f5ca', 'mor-s1-11eb859bd7', 'lora-s1-83c598491c', 'full-s1-db385951e1',
    'mor-N2-s0-39487276af', 'mor-uniform-s0-73a24844ea',
  ]);
  // The new sections' defaults add nothing to a run's identity.
  const withDefaults = parseExperimentConfig({ ...base(), selectSeed: 0, intervals: { resamples: 2000 } });
  assert.deepEqual(planRuns(withDefaults, model, 'fp').map((r) => r.id), planRuns(parseExperimentConfig(base()), model, 'fp').map((r) => r.id));
});

test('config: errors name the field', () => {
  const bad = (patch: Record<string, unknown>, re: RegExp): void =>
    assert.throws(() => parseExperimentConfig({ ...base(), ...patch }, 'x.yaml'), (e: Error) => re.test(e.message) && e.message.startsWith('x.yaml: '));
  bad({ sedes: [1] }, /sedes: unknown key/);
  bad({ methods: [{ name: 'a', adapter: { kind: 'lora' }, matchBudget: 'nope' }] }, /methods\.0\.matchBudget: no method named "nope"/);
  bad({ methods: [{ name: 'a', adapter: { kind: 'lora', rr: 2 } }] }, /methods\.0\.adapter/);
  bad({ methods: [{ name: 'a', adapter: { kind: 'lora' } }, { name: 'a', adapter: { kind: 'mor' } }] }, /duplicate method name "a"/);
  bad({ ablations: { of: 'full' } }, /ablations\.of: "full" is a full fine-tuning method, which does not route tokens to experts/);
  bad({ staticRouting: { of: 'lora' } }, /staticRouting\.of: "lora" is a LoRA method, which does not merge under a fixed routing vector/);
  bad({ seeds: [] }, /seeds/);
});

test('config: ablations and static routing ask the registry what the kind of their method can do', () => {
  const hydra = { name: 'hydra', adapter: { kind: 'hydralora' as const, r: 4, numExperts: 4 } };
  const moe = { name: 'moe', adapter: { kind: 'moelora' as const, r: 2, numExperts: 4 } };
  const withMethods = (patch: Partial<ExperimentConfigInput>): ExperimentConfigInput => ({ ...base(), methods: [...base().methods, hydra, moe], ...patch });
  // HydraLoRA routes and merges under a fixed routing vector: experts / ranks ablations and static routing apply.
  const c = parseExperimentConfig(withMethods({ ablations: { of: 'hydra', experts: [2], ranks: [8] }, staticRouting: { of: 'hydra' } }));
  const ablated = planRuns(c, model, 'fp').filter((r) => r.memberships.some((m) => m.group !== 'main'));
  assert.deepEqual(ablated.map((r) => r.adapter.kind === 'hydralora' && [r.adapter.numExperts, r.adapter.r]), [[2, 4], [4, 8]]);
  // Only MoR has router modes; MoELoRA never merges.
  assert.throws(() => parseExperimentConfig(withMethods({ ablations: { of: 'hydra', routers: ['uniform'] } })), /ablations\.routers: a HydraLoRA adapter cannot take routerMode "uniform"/);
  assert.throws(() => parseExperimentConfig(withMethods({ staticRouting: { of: 'moe' } })), /staticRouting\.of: "moe" is a MoELoRA method, which does not merge under a fixed routing vector/);
});

test('stats: mean, sample std, formatting', () => {
  assert.equal(mean([1, 2, 3, 6]), 3);
  assert.ok(Math.abs(std([1, 2, 3, 6]) - Math.sqrt(14 / 3)) < 1e-12);
  assert.ok(Number.isNaN(std([1])));
  assert.equal(formatPercentMeanStd([0.5, 0.7]), `60.00 ± ${(100 * Math.sqrt(0.02)).toFixed(2)}`);
  assert.equal(formatPercentMeanStd([0.25]), '25.00');
  assert.equal(formatPercentMeanStd([]), '-');
});
