/** `mor train` through the CLI entry point, in-process. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../../src/backend/tf.ts';
import { makeTinySetup } from '../fixtures/train/tinyLlama.ts';
import { runCli as run } from '../cli/runCli.ts';

await initBackend({ announce: false });
const here = path.dirname(fileURLToPath(import.meta.url));
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-cli-train-'));
const setup = await makeTinySetup(root);


test('mor train --config FILE (YAML) with flag overrides trains and saves the adapter', async () => {
  const cfgFile = path.join(root, 'run.yaml');
  fs.writeFileSync(cfgFile, [
    `model: ${setup.modelDir}`,
    'adapter:',
    '  kind: lora',
    '  r: 4',
    '  targetModules: [q_proj, v_proj]',
    'data:',
    `  - path: ${setup.shout}`,
    `  - path: ${setup.reverse}`,
    'steps: 100',
    'batchSize: 2',
    `outDir: ${path.join(root, 'out')}`,
    'finalEval:',
    `  - ${path.join(here, '../fixtures/eval/mc_small.jsonl')}`,
    '',
  ].join('\n'));
  const r = await run(['train', '--config', cfgFile, '--steps', '3', '--lr', '0.01', '--log-every', '1']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^done: step 3\/3, loss \d+\.\d{4}/);
  assert.match(r.err, /step 3\/3 loss \d+\.\d{4} lr /);
  assert.match(r.err, /trainable params: /);
  assert.ok(fs.existsSync(path.join(root, 'out', 'adapter', 'adapter_model.safetensors')));
  assert.equal(fs.readFileSync(path.join(root, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').length, 3);
  // The final benchmark ran on the saved adapter: per-task accuracy table and eval.json.
  assert.match(r.out, /\n\| capitals +\| 4 \| +\d+\.\d\d \|/);
  const ev = JSON.parse(fs.readFileSync(path.join(root, 'out', 'eval', 'eval.json'), 'utf8')) as { adapter: string };
  assert.equal(ev.adapter, path.join(root, 'out', 'adapter'));
});

test('flags alone form a config; bad input is one line and exit 1', async () => {
  const out = path.join(root, 'out2');
  const ok = await run(['train', '--model', setup.modelDir, '--adapter', '{"kind":"mor","r":2,"numExperts":2}',
    '--data', `${setup.shout}:2`, '--data', setup.reverse, '--epochs', '0.2', '--batch-size', '2', '--out-dir', out]);
  assert.equal(ok.code, 0, ok.err);
  // 10 records x weight 2 + 10 records = 30 examples per epoch; 0.2 epochs / batch 2 = 3 updates.
  assert.match(ok.out, /^done: step 3\/3,/);
  assert.match(ok.err, /data: 30 examples per epoch from 2 file\(s\); 3 updates/);
  assert.ok(fs.existsSync(path.join(out, 'routing.svg')));
  const cases: [string[], RegExp][] = [
    [['train', '--steps', 'ten'], /^error: --steps: expected a number, got "ten"\n$/],
    [['train', '--steps', '2'], /^error: command line: model: .*; adapter: .*outDir/],
    [['train', '--model', setup.modelDir, '--adapter', '{"kind":"lora","rank":4}', '--data', setup.shout, '--steps', '2', '--out-dir', out],
      /^error: command line: adapter\.rank: unknown key\n$/],
    [['train', '--adapter', '{kind}'], /^error: --adapter: invalid JSON/],
    [['train', '--config', path.join(root, 'nope.yaml')], /^error: .*nope\.yaml: cannot read \(ENOENT\)\n$/],
  ];
  for (const [argv, re] of cases) {
    const r = await run(argv);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.equal(r.err.trim().split('\n').length, 1);
  }
  fs.writeFileSync(path.join(root, 'bad.json'), JSON.stringify({ model: setup.modelDir, adapter: { kind: 'lora' }, data: [{ path: setup.shout }], steps: 1, outDir: out, learningRate: 1 }));
  const bad = await run(['train', '--config', path.join(root, 'bad.json')]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /^error: .*bad\.json: learningRate: unknown key\n$/);
});

test('mor train --help lists the config flags', async () => {
  const r = await run(['train', '--help']);
  assert.equal(r.code, 0);
  for (const f of ['--config', '--grad-accumulation', '--max-grad-norm', '--eval-every', '--resume', '--overwrite', '--schedule']) assert.ok(r.out.includes(f), f);
});

test('mor train into a used folder: refused, then --overwrite replaces it; --resume with more steps says where it resumed', async () => {
  const out = path.join(root, 'out3');
  const argv = ['train', '--model', setup.modelDir, '--adapter', '{"kind":"lora","r":2}', '--data', setup.shout,
    '--steps', '2', '--batch-size', '2', '--checkpoint-every', '1', '--out-dir', out];
  assert.equal((await run(argv)).code, 0);
  const refused = await run(argv);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /^error: .*out3: the run folder is not empty .*--resume.*--overwrite/);
  const over = await run([...argv, '--overwrite', '--lr', '0.001']);
  assert.equal(over.code, 0, over.err);
  assert.match(over.out, /^done: step 2\/2/);
  const more = await run([...argv, '--lr', '0.001', '--resume', '--steps', '3']);
  assert.equal(more.code, 0, more.err);
  assert.match(more.err, /resuming from .*checkpoint-2 \(step 2 of 3\); changed: steps 2 -> 3\n/);
  assert.match(more.out, /^done: step 3\/3/);
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));
