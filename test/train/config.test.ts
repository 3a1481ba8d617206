import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTrainConfig, parseTrainConfig } from '../../src/train/config.ts';
import { UserError } from '../../src/errors.ts';

const base = {
  model: 'models/tiny',
  adapter: { kind: 'mor', r: 8, numExperts: 4 },
  data: [{ path: 'a.jsonl', weight: 2 }, { path: 'b.jsonl' }],
  steps: 100,
  outDir: 'runs/x',
};

test('defaults are filled in', () => {
  const c = parseTrainConfig(base);
  assert.equal(c.batchSize, 4);
  assert.equal(c.gradAccumulation, 1);
  assert.equal(c.schedule, 'cosine');
  assert.equal(c.maxGradNorm, 1);
  assert.equal(c.data[1].weight, 1);
  assert.equal(c.logEvery, 10);
  assert.equal(c.adapter.kind === 'mor' ? c.adapter.numExperts : 0, 4);
});

test('unknown keys, wrong types and conflicts name the key path on one line', () => {
  const cases: [unknown, RegExp][] = [
    [{ ...base, learningRate: 1 }, /^cfg\.yaml: learningRate: unknown key$/],
    [{ ...base, data: [{ path: 'a.jsonl', wieght: 2 }] }, /^cfg\.yaml: data\.0\.wieght: unknown key$/],
    [{ ...base, batchSize: 'four' }, /^cfg\.yaml: batchSize: .*expected number/],
    [{ ...base, batchSize: 2.5 }, /^cfg\.yaml: batchSize: /],
    [{ ...base, schedule: 'step' }, /^cfg\.yaml: schedule: .*"cosine"/],
    [{ ...base, epochs: 2 }, /steps: give exactly one of "steps" or "epochs"/],
    [{ ...base, evalEvery: 10 }, /evalEvery: needs "evalData"/],
    [{ ...base, data: [] }, /^cfg\.yaml: data: /],
    [(({ model: _m, ...rest }) => rest)(base), /^cfg\.yaml: model: /],
    [{ ...base, adapter: { kind: 'mor', rank: 8 } }, /^cfg\.yaml: adapter\.rank: unknown key$/],
    [{ ...base, adapter: { kind: 'vera' } }, /^cfg\.yaml: adapter\.kind: /],
    [{ ...base, adapter: { kind: 'moelora', numExperts: 2, topK: 3 } }, /^cfg\.yaml: adapter: topK \(3\) must be <= numExperts \(2\)/],
  ];
  for (const [value, re] of cases) {
    assert.throws(() => parseTrainConfig(value, 'cfg.yaml'), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  }
});

test('YAML and JSON files load; flags override; syntax errors name the line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-cfg-'));
  const y = path.join(dir, 'run.yaml');
  fs.writeFileSync(y, 'model: m\nadapter:\n  kind: lora\ndata:\n  - path: a.jsonl\nsteps: 5\noutDir: out\nlr: 0.001\n');
  const c = loadTrainConfig(y, { lr: 0.01, seed: undefined });
  assert.equal(c.lr, 0.01);
  assert.equal(c.adapter.kind, 'lora');
  assert.equal(c.adapter.kind === 'lora' ? c.adapter.r : 0, 8); // adapter defaults filled
  const j = path.join(dir, 'run.json');
  fs.writeFileSync(j, JSON.stringify(base));
  assert.equal(loadTrainConfig(j).steps, 100);
  fs.writeFileSync(y, 'model: m\ndata: [a\n  steps: 5\n');
  assert.throws(() => loadTrainConfig(y), /run\.yaml:\d+: invalid YAML/);
  fs.writeFileSync(j, '{"model": ');
  assert.throws(() => loadTrainConfig(j), /run\.json: invalid JSON/);
  assert.throws(() => loadTrainConfig(path.join(dir, 'missing.yaml')), /missing\.yaml: cannot read \(ENOENT\)/);
  fs.rmSync(dir, { recursive: true, force: true });
});
