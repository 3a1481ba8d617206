/**
 * Acceptance test of issue 5, through the CLI entry point in-process (`main(argv, io)`), as a
 * user runs it: on a tiny random LLaMA with a two-task chat JSONL (`"task"` field) and a
 * multiple-choice file for both tasks:
 *   mor train (MoR, YAML config + flag overrides) -> loss decreases, adapter saved (PEFT layout)
 *   mor eval --adapter   -> per-task acc/acc_norm table and eval.json; the adapter changes the scores
 *   mor generate --adapter -> equals the library's generate on base+adapter, differs from the base
 *   mor routing          -> one row per adapted module and task
 *   mor merge --routing-from -> a plain model directory that `mor generate` and `mor inspect` load.
 * The tests run in order and share the files of the first.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { main } from '../../src/cli/main.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import { generate } from '../../src/generate/generate.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { readSafetensors } from '../../src/io/safetensors.ts';
import { makeE2eSetup } from '../fixtures/e2e/setup.ts';
import { runCli as run } from '../cli/runCli.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-e2e-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const setup = await makeE2eSetup(root);
const outDir = path.join(root, 'run');
const adapterDir = path.join(outDir, 'adapter');
const TARGETS = ['q_proj', 'v_proj', 'up_proj', 'down_proj'];
const LAYERS = 2;
const STEPS = 10;


const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

test('mor train: MoR from a YAML config with flag overrides; loss decreases; PEFT-layout adapter saved', async () => {
  const cfg = path.join(root, 'train.yaml');
  fs.writeFileSync(cfg, [
    '# MoR on two tasks',
    `model: ${setup.modelDir}`,
    'adapter:',
    '  kind: mor',
    '  r: 4',
    '  alpha: 8',
    '  numExperts: 4',
    `  targetModules: [${TARGETS.join(', ')}]`,
    'data:',
    `  - path: ${setup.train}`,
    'evalData:',
    `  - path: ${setup.train}`,
    'evalEvery: 1',
    'steps: 100', // overridden by --steps
    'batchSize: 4',
    'lr: 0.001', // overridden by --lr
    'schedule: constant',
    'maxGradNorm: 1',
    'logEvery: 1',
    'seed: 3',
    `outDir: ${outDir}`,
    '',
  ].join('\n'));
  const before = tf.memory().numTensors;
  const r = await run(['train', '--config', cfg, '--steps', String(STEPS), '--lr', '0.03']);
  assert.equal(r.code, 0, r.err);
  assert.equal(tf.memory().numTensors, before, 'training leaks no tensor');
  assert.match(r.out, new RegExp(`^done: step ${STEPS}/${STEPS}, loss \\d+\\.\\d{4}`));
  assert.ok(r.out.includes(`adapter: ${adapterDir}`), r.out);

  const records = fs.readFileSync(path.join(outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as
    { type: string; step: number; loss?: number; lr?: number; metrics?: Record<string, number> });
  const trainRecs = records.filter((x) => x.type === 'train');
  const evalRecs = records.filter((x) => x.type === 'eval');
  // The flags won over the file: STEPS updates, at lr 0.03 (constant schedule, no warmup).
  assert.deepEqual(trainRecs.map((x) => x.step), Array.from({ length: STEPS }, (_, i) => i + 1));
  for (const x of trainRecs) assert.ok(Math.abs(x.lr! - 0.03) < 1e-12, `lr ${x.lr}`);
  for (const x of trainRecs) assert.ok(Number.isFinite(x.loss), `loss ${x.loss}`);
  // The training loss (different batches each step) falls, and so does the eval loss on fixed data.
  const trainLoss = trainRecs.map((x) => x.loss!);
  assert.ok(mean(trainLoss.slice(-2)) < mean(trainLoss.slice(0, 2)) - 0.3, `train loss ${trainLoss.map((l) => l.toFixed(3))}`);
  assert.equal(evalRecs.length, STEPS);
  const evalLoss = evalRecs.map((x) => x.metrics!.loss);
  assert.ok(evalLoss[STEPS - 1] < evalLoss[0] - 0.3, `eval loss ${evalLoss.map((l) => l.toFixed(3))}`);

  // The adapter: PEFT layout, peft_type MOR, every adapted module's mor_* tensors and nothing else.
  const ac = JSON.parse(fs.readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(ac.peft_type, 'MOR');
  assert.equal(ac.r, 4);
  assert.equal(ac.num_experts, 4);
  assert.deepEqual(ac.target_modules, TARGETS);
  const { tensors } = readSafetensors(path.join(adapterDir, 'adapter_model.safetensors'));
  const keys = [...tensors.keys()];
  assert.ok(keys.every((k) => /^base_model\.model\.model\.layers\.\d\.(self_attn|mlp)\.\w+_proj\.mor_(A\.weight|B\.weight|omega_A|omega_B|router\.weight)$/.test(k)), keys.join(' '));
  assert.equal(keys.length, LAYERS * TARGETS.length * 5);
  // B starts at zero; training moved it.
  const b = tensors.get('base_model.model.model.layers.0.mlp.up_proj.mor_B.weight')!;
  assert.deepEqual(b.shape, [64, 4]);
  assert.ok(Math.max(...Array.from(b.data as Float32Array, Math.abs)) > 1e-3, 'mor_B was trained');
  assert.ok(fs.existsSync(path.join(outDir, 'loss.svg')));
});

test('mor eval --adapter: per-task acc/acc_norm for both tasks (table and eval.json); the adapter changes the scores', async () => {
  const evalOut = path.join(root, 'eval-adapter');
  const r = await run(['eval', '--model', setup.modelDir, '--adapter', adapterDir, '--data', setup.mc, '--out', evalOut]);
  assert.equal(r.code, 0, r.err);
  // The table: a title naming the prompt style (the tokenizer has a chat template), the header,
  // one row per task (4 items each), the average row.
  const lines = r.out.trim().split('\n');
  assert.match(lines[0], /^Multiple choice \(0-shot, prompt style `chat`\)$/);
  assert.ok(lines.some((l) => /^\| task +\| +n \| +acc \(%\) \| +acc_norm \(%\) \|$/.test(l)), r.out);
  for (const task of setup.tasks) {
    assert.ok(lines.some((l) => new RegExp(`^\\| ${task} +\\| +4 \\| +\\d+\\.\\d\\d \\| +\\d+\\.\\d\\d \\|$`).test(l)), `${task} row in\n${r.out}`);
  }
  assert.ok(lines.some((l) => /^\| \*\*average\*\* +\| +8 \|/.test(l)), r.out);
  const json = JSON.parse(fs.readFileSync(path.join(evalOut, 'eval.json'), 'utf8')) as Record<string, unknown>;
  const tasks = findTasks(json);
  assert.deepEqual(Object.keys(tasks).sort(), setup.tasks);
  for (const task of setup.tasks) {
    const t = tasks[task];
    assert.equal(t.n, 4);
    for (const m of ['acc', 'acc_norm']) {
      assert.ok(t[m] >= 0 && t[m] <= 1 && Number.isInteger(t[m] * 4), `${task}.${m} = ${t[m]}`);
      // The printed percentage is the JSON value.
      const row = lines.find((l) => l.startsWith(`| ${task} `))!.split('|').map((c) => c.trim());
      assert.equal(row[m === 'acc' ? 3 : 4], (100 * t[m]).toFixed(2));
    }
  }
  // Without the adapter the per-choice log-likelihoods differ: eval really applied it.
  const baseOut = path.join(root, 'eval-base');
  const rb = await run(['eval', '--model', setup.modelDir, '--data', setup.mc, '--out', baseOut]);
  assert.equal(rb.code, 0, rb.err);
  const ll = (dir: string): number[] => fs.readFileSync(path.join(dir, 'predictions.jsonl'), 'utf8').trim().split('\n')
    .flatMap((l) => findNumbers(JSON.parse(l) as Record<string, unknown>));
  const [withA, withoutA] = [ll(evalOut), ll(baseOut)];
  assert.equal(withA.length, withoutA.length);
  assert.ok(withA.length >= 8 * 3);
  assert.ok(withA.some((v, i) => Math.abs(v - withoutA[i]) > 1e-3), 'adapter changes the choice scores');
});

test('mor generate --adapter: same text as the library on base+adapter, and not the base model\'s', async () => {
  const prompt = 'Shout red';
  const args = ['generate', '--model', setup.modelDir, '--prompt', prompt, '--max-new-tokens', '12', '--seed', '5'];
  const withA = await run([...args, '--adapter', adapterDir]);
  assert.equal(withA.code, 0, withA.err);
  const base = await run(args);
  assert.equal(base.code, 0, base.err);
  // Independent: the library with and without the adapter, same greedy decoding.
  const tok = Tokenizer.fromDir(setup.modelDir);
  const model = await loadModel(setup.modelDir);
  const plain = (await generate(model, tok, prompt, { maxNewTokens: 12, seed: 5 })).texts[0];
  const peft = loadAdapter(model, adapterDir);
  const adapted = (await generate(peft.model, tok, prompt, { maxNewTokens: 12, seed: 5 })).texts[0];
  peft.dispose();
  assert.notEqual(adapted, plain, 'the trained adapter changes the greedy continuation (else this test proves nothing)');
  assert.equal(withA.out, adapted + '\n');
  assert.equal(base.out, plain + '\n');

  // Sampling with a seed is reproducible through the CLI.
  const s1 = await run([...args, '--adapter', adapterDir, '--temperature', '1', '--top-k', '20']);
  const s2 = await run([...args, '--adapter', adapterDir, '--temperature', '1', '--top-k', '20']);
  assert.equal(s1.code, 0, s1.err);
  assert.equal(s1.out, s2.out);
});

test('mor routing: a row per adapted module and task, each a distribution over the 4 experts', async () => {
  const r = await run(['routing', '--model', setup.modelDir, '--adapter', adapterDir, '--data', setup.train]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.ok(lines.includes('| module | task | tokens | e0 | e1 | e2 | e3 |'), r.out);
  const rows = lines.filter((l) => /^\| model\./.test(l)).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
  assert.equal(rows.length, LAYERS * TARGETS.length * setup.tasks.length, r.out);
  for (let layer = 0; layer < LAYERS; layer++) {
    for (const t of TARGETS) {
      const mod = `model.layers.${layer}.${t === 'q_proj' || t === 'v_proj' ? 'self_attn' : 'mlp'}.${t}`;
      for (const task of setup.tasks) {
        const row = rows.find((c) => c[0] === mod && c[1] === task);
        assert.ok(row, `${mod} / ${task}`);
        assert.ok(Number(row[2]) > 0);
        const w = row.slice(3).map((c) => Number(c.replace(/\*/g, '')));
        assert.equal(w.length, 4);
        assert.ok(Math.abs(w.reduce((a, x) => a + x, 0) - 1) <= 0.003, `${row}`);
      }
    }
  }
});

test('mor merge --routing-from: the merged directory is a plain model that mor generate and mor inspect load', async () => {
  const merged = path.join(root, 'merged');
  const r = await run(['merge', '--model', setup.modelDir, '--adapter', adapterDir, '--out', merged, '--routing-from', setup.train]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), merged);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(fs.existsSync(path.join(merged, f)), f);

  const g = await run(['generate', '--model', merged, '--prompt', 'Reverse cat', '--max-new-tokens', '8']);
  assert.equal(g.code, 0, g.err);
  assert.ok(g.out.endsWith('\n'));
  // Same as the library's generate on the merged weights.
  const tok = Tokenizer.fromDir(merged);
  const model = await loadModel(merged);
  const text = (await generate(model, tok, 'Reverse cat', { maxNewTokens: 8 })).texts[0];
  model.dispose();
  assert.equal(g.out, text + '\n');

  // Plain weights (no adapter tensors), and the adapted ones moved away from the base.
  const ins = await run(['inspect', path.join(merged, 'model.safetensors')]);
  assert.equal(ins.code, 0, ins.err);
  assert.match(ins.out, /model\.layers\.1\.mlp\.down_proj\.weight/);
  assert.doesNotMatch(ins.out, /mor_|lora_/);
  const baseW = readSafetensors(path.join(setup.modelDir, 'model.safetensors')).tensors;
  const mergedW = readSafetensors(path.join(merged, 'model.safetensors')).tensors;
  const diff = (k: string): number => {
    const [a, b] = [baseW.get(k)!.data as Float32Array, mergedW.get(k)!.data as Float32Array];
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    return m;
  };
  assert.ok(diff('model.layers.0.mlp.up_proj.weight') > 1e-4, 'adapted weight changed');
  assert.equal(diff('model.layers.0.self_attn.k_proj.weight'), 0, 'untouched weight kept');
});

/** The per-task object of eval.json (`tasks` at the top level or under the report's kind). */
function findTasks(json: Record<string, unknown>): Record<string, Record<string, number>> {
  if (json.tasks && typeof json.tasks === 'object') return json.tasks as Record<string, Record<string, number>>;
  for (const v of Object.values(json)) {
    if (v && typeof v === 'object' && 'tasks' in (v as object)) return (v as { tasks: Record<string, Record<string, number>> }).tasks;
  }
  throw new Error(`no tasks in eval.json: ${JSON.stringify(json)}`);
}

/** The per-choice log-likelihoods of one predictions.jsonl record. */
function findNumbers(rec: Record<string, unknown>): number[] {
  const ll = rec.logLikelihoods ?? rec.log_likelihoods ?? rec.loglikelihoods;
  assert.ok(Array.isArray(ll), `no log-likelihoods in ${JSON.stringify(rec)}`);
  return ll as number[];
}

test('the real `mor` binary (child process) inspects the trained adapter', () => {
  const bin = fileURLToPath(new URL('../../bin/mor.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'inspect', path.join(adapterDir, 'adapter_model.safetensors'), '--filter', 'layers.1.mlp.down_proj'],
    { encoding: 'utf8', env: { ...process.env, MOR_QUIET: '1' }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /base_model\.model\.model\.layers\.1\.mlp\.down_proj\.mor_omega_B +F32 +\[4, 32\] +128\n/);
  assert.match(r.stdout, /total: 5 tensors \(matching "layers\.1\.mlp\.down_proj", of 40\)/);
});
