/**
 * `mor routing` in-process: a tiny random LLaMA with a MoR adapter created here (random router
 * so the routing is far from uniform), two tasks. The printed table, routing.json and the
 * heatmap agree with the mean routing computed independently (one example per forward, our
 * own observer, grouped by task).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import { savePretrained as saveAdapter } from '../../src/adapters/save.ts';
import type { AdapterConfigInput } from '../../src/adapters/config.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { renderRecord } from '../../src/data/render.ts';
import { readDataRecords } from '../../src/data/mix.ts';
import { Rng } from '../../src/util/rng.ts';
import { makeTinySetup } from '../fixtures/train/tinyLlama.ts';
import { runCli as run } from './runCli.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-cli-routing-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const setup = await makeTinySetup(root);


async function makeAdapter(name: string, config: AdapterConfigInput, seed: number): Promise<string> {
  const dir = path.join(root, name);
  const peft = getPeftModel(await loadModel(setup.modelDir), config);
  const rng = new Rng(seed);
  for (const [k, v] of peft.adapterTensors('default')) {
    if (/router/.test(k)) v.assign(tf.tensor(rng.normalArray(v.size, 0, 1), v.shape));
  }
  saveAdapter(peft, dir);
  peft.dispose();
  return dir;
}

type Means = Map<string, Map<string, { tokens: number; mean: number[] }>>;

/** Mean routing per module and task over the first `perTask` examples of each task, one unpadded example per forward. */
async function reference(adapterDir: string, files: string[], perTask = Infinity): Promise<Means> {
  const tok = Tokenizer.fromDir(setup.modelDir);
  const peft = loadAdapter(await loadModel(setup.modelDir), adapterDir);
  const acc = new Map<string, Map<string, { tokens: number; sum: Float64Array }>>();
  let task = '';
  const observer = {
    record(p: string, w: tf.Tensor2D): void {
      const [t, n] = w.shape;
      const d = w.dataSync();
      if (!acc.has(p)) acc.set(p, new Map());
      let a = acc.get(p)!.get(task);
      if (!a) acc.get(p)!.set(task, (a = { tokens: 0, sum: new Float64Array(n) }));
      for (let i = 0; i < t; i++) for (let j = 0; j < n; j++) a.sum[j] += d[i * n + j];
      a.tokens += t;
    },
  };
  const seen = new Map<string, number>();
  for (const f of files) {
    for (const rec of await readDataRecords(f)) {
      const ex = renderRecord(rec, tok);
      if ((seen.get(ex.task) ?? 0) >= perTask) continue;
      seen.set(ex.task, (seen.get(ex.task) ?? 0) + 1);
      task = ex.task;
      const ctx: ForwardContext = { training: false, auxLosses: [], routing: observer };
      tf.tidy(() => peft.model.forward(tf.tensor2d([ex.inputIds], undefined, 'int32'), { ctx }));
    }
  }
  peft.dispose();
  const out: Means = new Map();
  for (const [p, byTask] of acc) {
    out.set(p, new Map([...byTask].map(([t, a]) => [t, { tokens: a.tokens, mean: Array.from(a.sum, (s) => s / a.tokens) }])));
  }
  return out;
}

const MOR: AdapterConfigInput = { kind: 'mor', r: 4, alpha: 8, numExperts: 4, targetModules: ['up_proj', 'down_proj'] };

test('mor routing prints the per-module, per-task table and writes routing.json + routing.svg matching a reference', async () => {
  const adapter = await makeAdapter('adapter-mor', MOR, 7);
  const out = path.join(root, 'out');
  const before = tf.memory().numTensors;
  const r = await run(['routing', '--model', setup.modelDir, '--adapter', adapter, '--data', setup.shout, setup.reverse,
    '--out', out, '--batch-size', '3']);
  assert.equal(r.code, 0, r.err);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
  const expected = await reference(adapter, [setup.shout, setup.reverse]);
  assert.equal(expected.size, 4);

  const json = JSON.parse(fs.readFileSync(path.join(out, 'routing.json'), 'utf8')) as Record<string, Record<string, { tokens: number; mean: number[] }>>;
  assert.deepEqual(Object.keys(json).sort(), [...expected.keys()].sort());
  let spread = 0;
  for (const [p, byTask] of expected) {
    assert.deepEqual(Object.keys(json[p]).sort(), ['reverse', 'shout']);
    for (const [task, e] of byTask) {
      const got = json[p][task];
      assert.equal(got.tokens, e.tokens, `${p}/${task} tokens (padding excluded)`);
      assert.equal(got.mean.length, 4);
      for (let i = 0; i < 4; i++) assert.ok(Math.abs(got.mean[i] - e.mean[i]) < 1e-5, `${p}/${task}[${i}] ${got.mean[i]} vs ${e.mean[i]}`);
      spread = Math.max(spread, Math.max(...e.mean) - Math.min(...e.mean));
    }
  }
  assert.ok(spread > 0.05, `routing is not uniform (spread ${spread}), so the check is meaningful`);

  // The Markdown table: header with one column per expert, one row per (module, task), 3 decimals.
  const lines = r.out.trim().split('\n');
  assert.ok(lines.includes('| module | task | tokens | e0 | e1 | e2 | e3 |'), r.out);
  const rows = lines.filter((l) => /^\| model\./.test(l));
  assert.equal(rows.length, 4 * 2);
  for (const row of rows) {
    const cells = row.split('|').slice(1, -1).map((c) => c.trim());
    const e = expected.get(cells[0])!.get(cells[1])!;
    assert.equal(Number(cells[2]), e.tokens);
    const nums = cells.slice(3).map((c) => Number(c.replace(/\*/g, '')));
    nums.forEach((v, i) => assert.ok(Math.abs(v - e.mean[i]) <= 0.0005 + 1e-9, `${row}`));
    const top = e.mean.indexOf(Math.max(...e.mean));
    assert.match(cells[3 + top], /^\*\*/, `top expert in bold: ${row}`);
  }
  assert.equal(fs.readFileSync(path.join(out, 'routing.md'), 'utf8'), r.out);
  const svg = fs.readFileSync(path.join(out, 'routing.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.match(svg, /shout/);
  assert.match(svg, /layers\.1\.mlp\.down_proj/);
});

test('mor routing --max-examples N counts only the first N examples per task; --json prints routing.json', async () => {
  const adapter = path.join(root, 'adapter-mor');
  const r = await run(['routing', '--model', setup.modelDir, '--adapter', adapter, '--data', setup.shout, setup.reverse, '--max-examples', '3', '--json']);
  assert.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out) as Record<string, Record<string, { tokens: number; mean: number[] }>>;
  const expected = await reference(adapter, [setup.shout, setup.reverse], 3);
  for (const [p, byTask] of expected) {
    for (const [task, e] of byTask) {
      assert.equal(json[p][task].tokens, e.tokens);
      for (let i = 0; i < 4; i++) assert.ok(Math.abs(json[p][task].mean[i] - e.mean[i]) < 1e-5);
    }
  }
});

test('mor routing works for MoELoRA (rows sum to 1) and refuses adapters without a router', async () => {
  const moe = await makeAdapter('adapter-moelora', { kind: 'moelora', r: 2, numExperts: 3, topK: 2, targetModules: ['up_proj'] }, 9);
  const r = await run(['routing', '--model', setup.modelDir, '--adapter', moe, '--data', setup.shout, setup.reverse, '--json']);
  assert.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out) as Record<string, Record<string, { mean: number[] }>>;
  assert.equal(Object.keys(json).length, 2);
  for (const byTask of Object.values(json)) {
    for (const { mean } of Object.values(byTask)) assert.ok(Math.abs(mean.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  }

  const lora = path.join(root, 'adapter-lora');
  const peft = getPeftModel(await loadModel(setup.modelDir), { kind: 'lora', r: 2 });
  saveAdapter(peft, lora);
  peft.dispose();
  for (const [args, re] of [
    [['--adapter', lora], /lora adapter has no router/],
    [['--adapter', moe, '--max-examples', '0'], /--max-examples must be a positive integer/],
  ] as [string[], RegExp][]) {
    const e = await run(['routing', '--model', setup.modelDir, '--data', setup.shout, ...args]);
    assert.equal(e.code, 1, e.err);
    assert.equal(e.err.trim().split('\n').length, 1, e.err);
    assert.match(e.err, /^error: /);
    assert.match(e.err, re);
  }
});
