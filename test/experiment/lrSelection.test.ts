/**
 * Learning-rate selection and the protocol's planning: grid runs per setting (shared when an
 * ablation point equals its method), scored on the validation fingerprint at the selection seed;
 * the choice rule (best validation accuracy, ties to the smaller rate, nothing before the grid
 * is complete); comparison runs planned at the chosen rate only, with the rate in their id;
 * held-out runs per group and method; config errors of the new sections.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeConfig } from '../../src/models/llama/config.ts';
import { parseExperimentConfig, type ExperimentConfigInput } from '../../src/experiment/config.ts';
import { planGridRuns, planRuns, waitingSettings } from '../../src/experiment/plan.ts';
import { chooseRates, pickRate, ratesOf } from '../../src/experiment/lrSelection.ts';

const model = makeConfig({ vocabSize: 50, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4 });
const FFN = ['gate_proj', 'up_proj', 'down_proj'];

function protocol(): ExperimentConfigInput {
  return {
    name: 't',
    model: 'm',
    trainData: 'train.jsonl',
    evalData: 'test.jsonl',
    selectData: 'validation.jsonl',
    lrGrid: [1e-3, 1e-2],
    seeds: [0, 1],
    train: { steps: 5 },
    methods: [
      { name: 'mor', adapter: { kind: 'mor', r: 4, numExperts: 4 } },
      { name: 'lora', adapter: { kind: 'lora', targetModules: FFN }, matchBudget: 'mor' },
      { name: 'full', adapter: { kind: 'full' }, lrGrid: [3e-4] },
    ],
    ablations: { of: 'mor', experts: [2, 4] },
    heldOut: { groups: { g1: ['a', 'b'], g2: ['c'] }, methods: ['mor', 'lora'] },
  };
}

test('pickRate: best accuracy, ties to the smaller rate, nothing while a point is missing', () => {
  assert.equal(pickRate([{ lr: 1e-3, accuracy: 0.4 }, { lr: 1e-2, accuracy: 0.5 }, { lr: 3e-2, accuracy: 0.45 }]), 1e-2);
  assert.equal(pickRate([{ lr: 1e-2, accuracy: 0.5 }, { lr: 1e-3, accuracy: 0.5 }, { lr: 3e-3, accuracy: 0.2 }]), 1e-3);
  assert.equal(pickRate([{ lr: 1e-3, accuracy: 0.4 }, { lr: 1e-2 }]), undefined);
  assert.equal(pickRate([]), undefined);
});

test('grid runs: one per rate per setting at the selection seed, shared by an ablation point equal to its method', () => {
  const c = parseExperimentConfig({ ...protocol(), selectSeed: 3 });
  const grid = planGridRuns(c, model, 'val');
  // mor (= experts:N=4) and lora and experts:N=2, two rates each; full has one rate: no grid.
  assert.deepEqual(grid.map((r) => `${r.memberships.map((m) => m.label).join('+')}@${r.train.lr}`), [
    'mor+experts:N=4@0.001', 'mor+experts:N=4@0.01', 'lora@0.001', 'lora@0.01', 'experts:N=2@0.001', 'experts:N=2@0.01',
  ]);
  assert.ok(grid.every((r) => r.seed === 3 && r.split === 'validation' && r.memberships.every((m) => m.group === 'grid')));
  assert.match(grid[1].id, /^mor-lr001-s3-[0-9a-f]{10}$/);
  assert.match(grid[4].id, /^mor-N2-lr0001-s3-[0-9a-f]{10}$/);
  // The validation fingerprint enters the ids: another validation file, other runs.
  assert.ok(planGridRuns(c, model, 'val2').every((r, i) => r.id !== grid[i].id));
});

test('chosen rates: comparison runs are planned once their setting is chosen, at that rate', () => {
  const c = parseExperimentConfig(protocol());
  const grid = planGridRuns(c, model, 'val');
  // Nothing finished: only the fixed-rate method is planned; the others wait.
  const none = planRuns(c, model, 'fp', { rates: ratesOf(chooseRates(grid, new Map())) });
  assert.deepEqual(none.map((r) => `${r.method}@${r.seed}`), ['full@0', 'full@1']);
  assert.equal(none[0].train.lr, 3e-4);
  assert.deepEqual(waitingSettings(c, model, new Map()).map((s) => s.key), ['mor', 'lora', 'experts:N=2', 'experts:N=4']);
  // Validation accuracies: mor prefers 1e-2, lora ties (-> 1e-3), N=2 not finished.
  const acc = new Map([[grid[0].id, 0.3], [grid[1].id, 0.4], [grid[2].id, 0.5], [grid[3].id, 0.5], [grid[4].id, 0.9]]);
  const choices = chooseRates(grid, acc);
  assert.deepEqual(choices.map((ch) => [ch.key, ch.lr]), [['mor', 1e-2], ['experts:N=4', 1e-2], ['lora', 1e-3], ['experts:N=2', undefined]]);
  const runs = planRuns(c, model, 'fp', { rates: ratesOf(choices) });
  const at = (label: string): number[] => runs.filter((r) => r.memberships.some((m) => m.label === label)).map((r) => r.train.lr);
  assert.deepEqual(at('mor'), [1e-2, 1e-2]);
  assert.deepEqual(at('lora'), [1e-3, 1e-3]);
  assert.deepEqual(at('N=4'), [1e-2]); // the ablation point equal to mor is mor's seed-0 run
  assert.deepEqual(at('N=2'), []); // still waiting
  // The rate is part of a run's identity.
  const other = planRuns(c, model, 'fp', { rates: new Map([['mor', 1e-3], ['lora', 1e-3]]) });
  const morId = (rs: typeof runs): string => rs.find((r) => r.method === 'mor' && r.seed === 0)!.id;
  assert.notEqual(morId(runs), morId(other));
});

test('held-out runs: every group x method at the first seed, at the main rate, with the group in the identity', () => {
  const c = parseExperimentConfig({ ...protocol(), lrGrid: undefined, selectData: undefined });
  const held = planRuns(c, model, 'fp').filter((r) => r.heldOut);
  assert.deepEqual(held.map((r) => `${r.memberships[0].label}@${r.seed}`), ['g1/mor@0', 'g1/lora@0', 'g2/mor@0', 'g2/lora@0']);
  assert.deepEqual(held[0].heldOut, { group: 'g1', tasks: ['a', 'b'] });
  const main = planRuns(c, model, 'fp').find((r) => r.method === 'mor' && r.seed === 0 && !r.heldOut)!;
  assert.deepEqual(held[0].train, main.train);
  assert.notEqual(held[0].id, main.id);
  assert.equal(new Set(held.map((r) => r.id)).size, 4);
  assert.deepEqual(planRuns(parseExperimentConfig({ ...protocol(), lrGrid: undefined, selectData: undefined, heldOut: { groups: { g1: ['a'] }, seeds: [4, 5] } }), model, 'fp')
    .filter((r) => r.heldOut).map((r) => `${r.method}@${r.seed}`), ['mor@4', 'lora@4', 'full@4', 'mor@5', 'lora@5', 'full@5']);
});

test('config: the protocol sections validate with errors that name the field', () => {
  const bad = (patch: Record<string, unknown>, re: RegExp): void =>
    assert.throws(() => parseExperimentConfig({ ...protocol(), ...patch }, 'v.yaml'), (e: Error) => re.test(e.message) && e.message.startsWith('v.yaml: '));
  bad({ selectData: undefined }, /selectData: required with an lrGrid/);
  bad({ selectData: 'test.jsonl' }, /selectData: must differ from evalData/);
  bad({ lrGrid: [1e-3, 1e-3] }, /lrGrid: repeated learning rate/);
  bad({ lrGrid: [0] }, /lrGrid/);
  bad({ methods: [{ name: 'mor', adapter: { kind: 'mor' }, train: { lr: 1e-3 } }], ablations: undefined, heldOut: undefined }, /methods\.0\.train\.lr: conflicts with lrGrid/);
  bad({ heldOut: { groups: { g: ['a'], h: ['a'] } } }, /heldOut\.groups\.h: task "a" is also in group "g"/);
  bad({ heldOut: { groups: { g: ['z'] } }, tasks: ['a', 'b'] }, /heldOut\.groups\.g: task "z" is not in tasks/);
  bad({ heldOut: { groups: { g: ['a', 'b'] } }, tasks: ['a', 'b'] }, /heldOut\.groups\.g: leaves no task to train on/);
  bad({ heldOut: { groups: { g: ['a'] }, methods: ['nope'] } }, /heldOut\.methods\.0: no method named "nope"/);
  bad({ heldOut: { groups: { g: ['a'] }, leave: 1 } }, /heldOut\.leave: unknown key/);
  bad({ intervals: { of: 'nope' } }, /intervals\.of: no method named "nope"/);
  bad({ intervals: { level: 1 } }, /intervals\.level/);
});
