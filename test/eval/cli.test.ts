/**
 * `mor eval` end to end, in-process: a tiny random model saved in the HF layout with the
 * byte-level fixture tokenizer, with and without a (perturbed) LoRA adapter.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { parseHfConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { savePretrained } from '../../src/models/save.ts';
import { loadModel } from '../../src/models/load.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { savePretrained as saveAdapter } from '../../src/adapters/save.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { evaluateMultipleChoice, readMultipleChoice } from '../../src/eval/multipleChoice.ts';
import { Rng } from '../../src/util/rng.ts';
import { runCli as run } from '../cli/runCli.ts';

await initBackend();

const TOK_DIR = 'test/fixtures/tokenizers/gpt2-bytelevel';
const MC = 'test/fixtures/eval/mc_small.jsonl';
const EM = 'test/fixtures/eval/em_small.jsonl';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-eval-cli-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const modelDir = path.join(root, 'model');
const adapterDir = path.join(root, 'adapter');

const config = parseHfConfig({
  model_type: 'llama',
  vocab_size: 3259,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  max_position_embeddings: 128,
  initializer_range: 0.3,
});
{
  const model = createRandomModel(config, 99);
  await savePretrained(model, modelDir);
  for (const f of fs.readdirSync(TOK_DIR)) if (f !== 'expected.json') fs.copyFileSync(path.join(TOK_DIR, f), path.join(modelDir, f));
  const peft = getPeftModel(model, { kind: 'lora', r: 2, alpha: 4, targetModules: ['up_proj', 'down_proj'] });
  // LoRA starts as a no-op (B = 0): give every adapter tensor random values so it matters.
  const rng = new Rng(5);
  for (const [, v] of peft.adapterTensors('default')) v.assign(tf.tensor(rng.normalArray(v.size, 0, 0.5), v.shape));
  saveAdapter(peft, adapterDir);
  model.dispose();
}


test('mor eval prints the per-task table and writes eval.json equal to the library evaluation', async () => {
  const outDir = path.join(root, 'out');
  const r = await run(['eval', '--model', modelDir, '--data', MC, EM, '--out', outDir, '--batch-size', '4', '--max-new-tokens', '3']);
  assert.equal(r.code, 0, r.err);
  for (const t of ['arith', 'capitals', 'sentiment', '**average**']) assert.match(r.out, new RegExp(`\\| ${t.replace(/\*/g, '\\*')} `));
  assert.match(r.out, /Multiple choice \(0-shot, prompt style `chat`\)/);
  assert.match(r.out, /exact_match/);
  const json = JSON.parse(fs.readFileSync(path.join(outDir, 'eval.json'), 'utf8'));
  const model = await loadModel(modelDir);
  const ref = await evaluateMultipleChoice(model, Tokenizer.fromDir(modelDir), await readMultipleChoice([MC]), { batchSize: 1 });
  model.dispose();
  for (const t of ref.report.tasks) {
    assert.equal(json.multiple_choice.tasks[t.task].acc, t.metrics.acc);
    assert.equal(json.multiple_choice.tasks[t.task].acc_norm, t.metrics.acc_norm);
    assert.equal(json.multiple_choice.tasks[t.task].n, t.n);
  }
  assert.equal(json.exact_match.average.n, 3);
  assert.equal(fs.readFileSync(path.join(outDir, 'eval.md'), 'utf8'), r.out);
  const preds = fs.readFileSync(path.join(outDir, 'predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(preds.length, 9 + 3);
});

test('mor eval --adapter changes the scores; --json prints the report', async () => {
  const base = await run(['eval', '--model', modelDir, '--data', MC, '--json', '--limit', '2']);
  const adapted = await run(['eval', '--model', modelDir, '--adapter', adapterDir, '--data', MC, '--json', '--limit', '2', '--out', path.join(root, 'out2')]);
  assert.equal(base.code, 0, base.err);
  assert.equal(adapted.code, 0, adapted.err);
  assert.equal(JSON.parse(adapted.out).adapter, adapterDir);
  assert.equal(JSON.parse(base.out).multiple_choice.average.n, 2);
  const lls = (dir: string) => fs.readFileSync(path.join(dir, 'predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loglikelihoods);
  await run(['eval', '--model', modelDir, '--data', MC, '--limit', '2', '--out', path.join(root, 'out3')]);
  assert.notDeepEqual(lls(path.join(root, 'out2')), lls(path.join(root, 'out3')));
});

test('mor eval: bad input exits 1 with one line naming the place', async () => {
  const bad = path.join(root, 'bad.jsonl');
  fs.writeFileSync(bad, '{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": "q", "choices": [], "answer": 0}\n');
  const cases: [string[], RegExp][] = [
    [['eval', '--model', modelDir, '--data', bad], new RegExp(`^error: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: field "choices" is empty\n$`)],
    [['eval', '--model', modelDir, '--data', MC, '--batch-size', '0'], /^error: --batch-size must be a positive integer \(got "0"\)\n$/],
    [['eval', '--model', modelDir, '--data', MC, '--prompt-style', 'fancy'], /^error: --prompt-style must be one of/],
    [['eval', '--model', path.join(root, 'nope'), '--data', MC], /^error: .*nope/],
    [['eval', '--model', modelDir, '--data', path.join(root, 'missing.jsonl')], /^error: .*missing\.jsonl: cannot read \(ENOENT\)\n$/],
  ];
  for (const [argv, re] of cases) {
    const r = await run(argv);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
});

test('mor eval: each malformed evaluation line exits 1 with "error: file:line: reason" on one line', async () => {
  const lines: [string, RegExp][] = [
    ['{"question": "q", "choices": ["a"], ', /invalid JSON/],
    ['{"choices": ["a"], "answer": 0}', /missing field "question"/],
    ['{"question": "q", "choices": "a", "answer": 0}', /"choices": expected array, got string/],
    ['{"question": "q", "choices": [], "answer": 0}', /"choices" is empty/],
    ['{"question": "q", "choices": ["a", "b"], "answer": 5}', /"answer" = 5 is out of range/],
    ['{"question": "q", "choices": ["a", "b"], "answer": "0"}', /"answer": expected number, got string/],
    ['{"question": "q", "choices": ["a"], "answer": 0}', /"choices" has 1 item, needs at least 2/],
    ['{"prompt": "p"}', /missing field "completion"/],
    ['{"something": 1}', /not an evaluation record/],
  ];
  for (const [i, [line, re]] of lines.entries()) {
    const f = path.join(root, `bad${i}.jsonl`);
    const first = line.includes('prompt') ? '{"prompt": "p", "completion": "c"}' : '{"question": "q", "choices": ["a", "b"], "answer": 0}';
    fs.writeFileSync(f, i === lines.length - 1 ? `${line}\n` : `${first}\n\n${line}\n`);
    const r = await run(['eval', '--model', modelDir, '--data', f]);
    assert.equal(r.code, 1, r.err);
    assert.ok(r.err.startsWith(`error: ${f}:${i === lines.length - 1 ? 1 : 3}: `), r.err);
    assert.match(r.err, re);
    assert.equal(r.err.split('\n').length, 2, 'one line');
  }
});

test('mor eval --help', async () => {
  const r = await run(['eval', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.out, /--adapter <dir>/);
  assert.match(r.out, /--prompt-style <style>/);
});
