/**
 * `mor experiment --config experiments/verdict-smoke.yaml` end to end, in process, on a tiny
 * random checkpoint, its `selectData` replaced by a 3-items-per-task cut of the validation
 * split (so that the grid runs' scoring file is visible in their item counts): stopped after
 * 3 runs (settings wait for their rate), resumed, then rerun from the cache. Checks that the grid
 * runs score validation items at the selection seed, that each setting's rate is the best
 * validation accuracy (ties: the smaller rate, computed here independently), that the main,
 * ablation and held-out runs train at the chosen rate and score test items, that held-out runs
 * neither train on nor score the other tasks, that the paired interval's difference equals the
 * plain paired difference of the runs' averages, and that the report has every section and
 * states its duration and machine.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeTinyCheckpoint } from '../../scripts/make-tiny-checkpoint.ts';
import { runCli as run } from '../cli/runCli.ts';
import { verdictOf } from '../../src/experiment/bootstrap.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-verdict-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const modelDir = path.join(root, 'model');
await makeTinyCheckpoint(modelDir, { seed: 3 });

interface Run {
  spec: { id: string; method: string; seed: number; split?: string; heldOut?: { group: string }; memberships: { group: string; label: string }[]; train: { lr: number } };
  result: { after: { tasks: Record<string, number>; n: Record<string, number>; average: number; correct?: string }; lossCurve: [number, number][] };
}

test('mor experiment: verdict-smoke config (grid, seeds, intervals, held-out) end to end, stopped, resumed, cached', async () => {
  const t0 = performance.now();
  const tasks = ['name_gender', 'arithmetic', 'antonym'];
  // The validation split, first 3 items of each configured task.
  const counts = new Map<string, number>();
  const validation = fs.readFileSync('data/suite/validation.mc.jsonl', 'utf8').trim().split('\n').filter((l) => {
    const t = JSON.parse(l).task as string;
    if (!tasks.includes(t) || (counts.get(t) ?? 0) >= 3) return false;
    counts.set(t, (counts.get(t) ?? 0) + 1);
    return true;
  });
  const selectFile = path.join(root, 'validation3.mc.jsonl');
  fs.writeFileSync(selectFile, validation.join('\n') + '\n');
  const yaml = fs.readFileSync('experiments/verdict-smoke.yaml', 'utf8');
  const cfgText = yaml.replace(/^selectData: .*$/m, `selectData: ${selectFile}`);
  assert.notEqual(cfgText, yaml);
  const cfg = path.join(root, 'verdict-smoke.yaml');
  fs.writeFileSync(cfg, cfgText);
  const out = path.join(root, 'out');
  const args = ['experiment', '--config', cfg, '--model', modelDir, '--out', out];

  // Stopped after 3 runs: mor's grid is complete, lora's and N=3's are not.
  const tensorsBefore = tf.memory().numTensors;
  const partial = await run([...args, '--max-runs', '3']);
  assert.equal(partial.code, 0, partial.err);
  assert.match(partial.err, /6 runs planned, 0 cached, 6 to run; 3 settings wait for their learning-rate choice \(mor, lora, experts:N=3\)/);
  assert.match(partial.out, /3 of 9 runs finished \(3 in this call\)/); // 6 grid + mor's 2 seeds and its held-out run
  assert.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /2 settings wait for their learning-rate choice before their runs are planned \(lora, experts:N=3\)/);

  const full = await run(args);
  assert.equal(full.code, 0, full.err);
  assert.equal(tf.memory().numTensors, tensorsBefore, 'runs leak no tensors');
  assert.match(full.out, /13 of 13 runs finished \(10 in this call\)/);

  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  const runs = results.runs as Run[];
  assert.equal(runs.length, 13);
  const grid = runs.filter((r) => r.spec.split === 'validation');
  assert.equal(grid.length, 6);
  for (const r of grid) {
    assert.equal(r.spec.seed, 0);
    assert.deepEqual(r.result.after.n, { antonym: 3, arithmetic: 3, name_gender: 3 }, 'grid runs score the validation file');
  }
  // The rule, independently: the best validation average, ties to the smaller rate.
  const chosen = new Map<string, number>();
  for (const key of ['mor', 'lora', 'experts:N=3']) {
    const points = grid.filter((r) => r.spec.memberships.some((m) => m.label === key)).map((r) => ({ lr: r.spec.train.lr, acc: r.result.after.average }));
    assert.deepEqual(points.map((p) => p.lr).sort(), [1e-3, 1e-2]);
    const best = Math.max(...points.map((p) => p.acc));
    chosen.set(key, Math.min(...points.filter((p) => p.acc === best).map((p) => p.lr)));
  }
  assert.deepEqual(results.rateChoices.map((c: { key: string; lr: number }) => [c.key, c.lr]), [...chosen]);

  const main = runs.filter((r) => r.spec.memberships.some((m) => m.group === 'main'));
  assert.deepEqual(main.map((r) => `${r.spec.method}@${r.spec.seed}`), ['mor@0', 'lora@0', 'mor@1', 'lora@1']);
  for (const r of main) {
    assert.equal(r.spec.train.lr, chosen.get(r.spec.method));
    assert.deepEqual(r.result.after.n, { antonym: 4, arithmetic: 4, name_gender: 4 }, 'main runs score the test file');
    assert.equal(r.result.after.correct?.length, 12);
  }
  const ablation = runs.find((r) => r.spec.memberships.some((m) => m.group === 'experts'))!;
  assert.equal(ablation.spec.train.lr, chosen.get('experts:N=3'));
  // The seed-0 main run trains exactly as the grid run at the chosen rate (only the scoring differs).
  const morGrid = grid.find((r) => r.spec.method === 'mor' && r.spec.memberships[0].label === 'mor' && r.spec.train.lr === chosen.get('mor'))!;
  assert.deepEqual(main[0].result.lossCurve, morGrid.result.lossCurve);

  const held = runs.filter((r) => r.spec.heldOut);
  assert.deepEqual(held.map((r) => `${r.spec.heldOut!.group}/${r.spec.method}`), ['reasoning/mor', 'reasoning/lora']);
  for (const r of held) {
    assert.deepEqual(Object.keys(r.result.after.tasks), ['arithmetic']);
    assert.equal(r.spec.train.lr, chosen.get(r.spec.method));
  }
  const heldTrain = fs.readFileSync(path.join(out, 'data', 'train-without-reasoning.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).task as string);
  assert.deepEqual([...new Set(heldTrain)].sort(), ['antonym', 'name_gender']);

  // The interval's difference is the plain paired difference of the runs' averages.
  assert.equal(results.intervals.length, 1);
  const iv = results.intervals[0];
  assert.deepEqual([iv.of, iv.vs, iv.seeds], ['mor', 'lora', [0, 1]]);
  const avg = (m: string, s: number): number => main.find((r) => r.spec.method === m && r.spec.seed === s)!.result.after.average;
  const plain = (avg('mor', 0) - avg('lora', 0) + avg('mor', 1) - avg('lora', 1)) / 2;
  assert.ok(Math.abs(iv.interval.mean - plain) < 1e-12, `${iv.interval.mean} vs ${plain}`);
  assert.ok(iv.interval.lo <= iv.interval.hi);
  assert.equal(iv.interval.verdict, verdictOf(iv.interval.lo, iv.interval.hi));

  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  for (const heading of [
    '## Learning-rate selection', '## Main comparison', '## Paired differences: mor minus each method', '## Ablation (MoR): Number of experts N',
    '## Held-out tasks (zero-shot transfer)', '## MoR static-routing merge', '![routing_heatmap.svg](routing_heatmap.svg)',
  ]) assert.ok(report.includes(heading), `report lacks ${heading}`);
  assert.match(report, /^\| setting \| lr 0\.001 \| lr 0\.01 \| chosen \|$/m);
  assert.match(report, new RegExp(`^\\| mor \\| .* \\| \\*\\*${chosen.get('mor')}\\*\\* \\|$`, 'm'));
  assert.match(report, /^\| mor − lora \| 0,1 \| 12 \| [+-]\d+\.\d\d \| [+-]\d+\.\d\d \| \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \| \*\*(better|worse|not distinguishable)\*\* \|$/m);
  assert.match(report, /^\| reasoning \| arithmetic \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|$/m);
  assert.match(report, new RegExp(`The routing heatmap is run \`${main[0].spec.id}\` of the main comparison \\(seed 0, lr ${chosen.get('mor')}\\)`));
  assert.match(report, /- \*\*Duration:\*\* 13 finished runs, sum of run wall times .*grid 6 runs.*comparison 5 runs.*held-out 2 runs.*; wall clock .* over 2 calls of `mor experiment`/);
  assert.match(report, new RegExp(`- \\*\\*Machine:\\*\\* ${os.cpus().length} x .*(BLAS threads?|pure wasm, 1 thread), Node ${process.version.replace(/\./g, '\\.')}`));
  assert.ok(fs.existsSync(path.join(out, 'routing_heatmap.svg')));

  // Rerun: every run cached, the same intervals (fixed resampling seed), one more call recorded.
  const again = await run(args);
  assert.equal(again.code, 0, again.err);
  assert.match(again.err, /13 runs planned, 13 cached, 0 to run/);
  const results2 = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.deepEqual(results2.intervals, results.intervals);
  assert.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /over 3 calls of `mor experiment`/);
  assert.ok(performance.now() - t0 < 90_000, 'the verdict smoke experiment must stay fast');
});
