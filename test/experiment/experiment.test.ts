/**
 * `mor experiment --config experiments/smoke.yaml` end to end, in process, on a tiny random
 * checkpoint: exit 0; the report has the main table (base, mor, lora rows), the budget table
 * with every count equal, the ablation and static-routing tables and both plots; every run's
 * trainable count equals the docs/mor.md formula written out here for this model; a second call
 * reuses every cached run (resumable) and re-measures latency back to back; no tensor outlives the runs; `mor demo` writes its
 * outputs and table.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeTinyCheckpoint } from '../../scripts/make-tiny-checkpoint.ts';
import { runCli as run } from '../cli/runCli.ts';
import { adapterLabel, DEMO_DEFAULTS, demoAdapterInput } from '../../src/experiment/demo.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-experiment-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const modelDir = path.join(root, 'model');
// hidden 64, intermediate 128, 2 layers (the script's defaults).
await makeTinyCheckpoint(modelDir, { seed: 3 });


/** docs/mor.md per-layer formulas for the tiny model's FFN: gate/up [128, 64], down [64, 128]. */
function morFfn(r: number, n: number): number {
  const layer = (dIn: number, dOut: number): number => r * (dIn + dOut) + n * (r + dOut) + n * dIn;
  return 2 * (2 * layer(64, 128) + layer(128, 64));
}
function loraFfn(r: number): number {
  return 2 * 3 * r * (64 + 128);
}

test('mor experiment: smoke config end to end, then resumed from the cache', async () => {
  const out = path.join(root, 'smoke');
  const t0 = performance.now();
  const tensorsBefore = tf.memory().numTensors;
  const first = await run(['experiment', '--config', 'experiments/smoke.yaml', '--model', modelDir, '--out', out]);
  assert.equal(first.code, 0, first.err);
  assert.equal(tf.memory().numTensors, tensorsBefore, 'runs leak no tensors');
  assert.match(first.out, /3 of 3 runs finished \(3 in this call\)/);
  assert.match(first.err, /\[1\/3\] main:mor seed 0/);

  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  for (const heading of [
    '## Main comparison',
    '## Trainable-parameter budgets',
    '## Ablation (MoR): Number of experts N',
    '## MoR static-routing merge',
    '### mor, seed 0',
    '![accuracy_vs_params.svg](accuracy_vs_params.svg)',
    '![routing_heatmap.svg](routing_heatmap.svg)',
  ]) assert.ok(report.includes(heading), `report lacks ${heading}`);
  assert.match(report, /^\| base \(no fine-tuning\) \| 0 \| 0 \|/m);
  assert.match(report, /3 of 3 planned runs finished/);
  const fmt = (n: number): string => n.toLocaleString('en-US');
  // Main rows: MoR r=4 N=2, LoRA rank matched to it.
  const mor = morFfn(4, 2);
  let bestR = 1;
  for (let r = 1; r < 50; r++) if (Math.abs(loraFfn(r) - mor) < Math.abs(loraFfn(bestR) - mor)) bestR = r;
  assert.match(report, new RegExp(`^\\| mor \\| ${fmt(mor)} \\|`, 'm'));
  assert.match(report, new RegExp(`^\\| lora \\| ${fmt(loraFfn(bestR))} \\|`, 'm'));
  assert.ok(!report.includes('**NO**'));
  assert.match(report, new RegExp(`^\\| N=3 \\| mor N=3 r=4 .*\\| ${fmt(morFfn(4, 3))} \\| 0 \\|`, 'm'));
  for (const svg of ['accuracy_vs_params.svg', 'routing_heatmap.svg']) {
    assert.match(fs.readFileSync(path.join(out, svg), 'utf8'), /^<svg/);
  }

  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  const expected: Record<string, number> = { mor: mor, lora: loraFfn(bestR), 'N=3': morFfn(4, 3) };
  assert.equal(results.runs.length, 3);
  for (const r of results.runs) {
    const label = r.spec.memberships[0].label;
    assert.equal(r.result.trainableParams, expected[label], label);
    assert.equal(r.result.formulaParams, expected[label], label);
    assert.equal(r.result.steps, 3);
    assert.deepEqual(Object.keys(r.result.after.tasks).sort(), ['arithmetic', 'name_gender']);
    assert.equal(r.result.after.n.arithmetic, 6);
  }
  assert.equal(results.staticRouting.length, 1);
  const statics = results.staticRouting[0].tasks;
  assert.deepEqual(Object.keys(statics).sort(), ['arithmetic', 'name_gender']);
  for (const s of Object.values(statics) as { accuracy: number }[]) assert.ok(s.accuracy >= 0 && s.accuracy <= 1);

  // Rerun: everything is cached, nothing trains again.
  const tensorsMid = tf.memory().numTensors;
  const second = await run(['experiment', '--config', 'experiments/smoke.yaml', '--model', modelDir, '--out', out, '--latency-pass']);
  assert.equal(second.code, 0, second.err);
  assert.equal(tf.memory().numTensors, tensorsMid, 'the latency pass leaks no tensors');
  const lat = JSON.parse(fs.readFileSync(path.join(out, 'latency.json'), 'utf8'));
  assert.deepEqual(Object.keys(lat.msPerToken).sort(), ['lora', 'mor']);
  assert.ok(lat.baseMsPerToken > 0 && lat.rounds === 3);
  assert.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /measured back to back in one process/);
  assert.match(second.out, /3 of 3 runs finished \(0 in this call\)/);
  assert.match(second.err, /3 runs planned, 3 cached, 0 to run/);
  assert.ok(performance.now() - t0 < 120_000, 'the smoke experiment must stay under 2 minutes');
});

test('mor experiment: a bad config is one error line, exit 1', async () => {
  const bad = path.join(root, 'bad.yaml');
  fs.writeFileSync(bad, 'name: x\nmodel: m\ntrainData: a\nevalData: b\nseeds: [0]\ntrain: {steps: 1}\nmethods: []\n');
  const r = await run(['experiment', '--config', bad]);
  assert.equal(r.code, 1);
  assert.match(r.err, /^error: .*bad\.yaml: methods: /);
  const seeds = await run(['experiment', '--config', 'experiments/smoke.yaml', '--seeds', '1,x']);
  assert.equal(seeds.code, 1);
  assert.match(seeds.err, /--seeds must be/);
});

test('mor experiment runs the size policy of mor train: a step the heap cannot hold is one error line before training', async () => {
  const cfg = path.join(root, 'huge.yaml');
  const smoke = fs.readFileSync('experiments/smoke.yaml', 'utf8');
  // 4096 x 4096 tokens with checkpointing off: tens of GiB of activations on the tiny model.
  fs.writeFileSync(cfg, smoke.replace(/^model: .*$/m, `model: ${modelDir}`).replace(/^  batchSize: 4$/m, '  batchSize: 4096\n  gradientCheckpointing: false')
    .replace(/^  maxLength: 64$/m, '  maxLength: 4096'));
  const r = await run(['experiment', '--config', cfg, '--out', path.join(root, 'huge-out')]);
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /^error: .*needs about [\d.]+ GiB of tensor memory but the wasm heap holds .*gradientCheckpointing/m);
});

test('mor demo: fine-tunes, prints before/after per task, writes its outputs', async () => {
  const out = path.join(root, 'demo');
  const r = await run([
    'demo', '--model', modelDir, '--out', out, '--steps', '2', '--eval-data', 'data/suite/validation.mc.jsonl', '--eval-limit', '2',
    '--batch-size', '2', '--max-length', '48', '--adapter', '{"numExperts":4}',
  ]);
  assert.equal(r.code, 0, r.err);
  const tasks = JSON.parse(fs.readFileSync('data/suite/manifest.json', 'utf8')).tasks.map((t: { name: string }) => t.name);
  for (const t of tasks) assert.match(r.out, new RegExp(`^\\| ${t} \\| 2 \\| `, 'm'));
  assert.match(r.out, /^\| \*\*average\*\* \| \d+ \| /m);
  for (const f of ['adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'metrics.jsonl', 'loss.svg', 'routing.svg', 'eval_before.json', 'eval_after.json', 'eval.md', 'demo.json']) {
    assert.ok(fs.existsSync(path.join(out, f)), `missing ${f}`);
  }
  const demo = JSON.parse(fs.readFileSync(path.join(out, 'demo.json'), 'utf8'));
  assert.equal(demo.trainableParams, morFfn(8, 4), 'default MoR adapter (r=8 on gate/up/down) with N=4 from --adapter');
  const before = JSON.parse(fs.readFileSync(path.join(out, 'eval_before.json'), 'utf8'));
  assert.equal(before.average.n_tasks, tasks.length);
  const missing = await run(['demo', '--model', path.join(root, 'nope')]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^error: --model .*nope: not found/);
  for (const [arg, message] of [['{"r":', /^error: --adapter: invalid JSON/], ['[1]', /^error: --adapter must be a JSON object/], ['{"rank":4}', /rank/]] as const) {
    const bad = await run(['demo', '--model', modelDir, '--out', path.join(root, 'demo-bad'), '--adapter', arg]);
    assert.equal(bad.code, 1, bad.err);
    assert.match(bad.err, message);
  }
});

test('demo adapter: fields merge over the default MoR adapter; another kind replaces it', () => {
  assert.deepEqual(demoAdapterInput(), DEMO_DEFAULTS.adapter);
  assert.deepEqual(demoAdapterInput({ r: 4 }), { ...DEMO_DEFAULTS.adapter, r: 4 });
  assert.deepEqual(demoAdapterInput({ kind: 'mor', numExperts: 2 }), { ...DEMO_DEFAULTS.adapter, numExperts: 2 });
  assert.deepEqual(demoAdapterInput({ kind: 'lora', r: 16 }), { kind: 'lora', r: 16 });
  assert.equal(adapterLabel('moelora'), 'MoELoRA');
});
