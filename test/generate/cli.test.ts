/**
 * `mor generate` end to end on a tiny random checkpoint written by scripts/make-tiny-checkpoint.ts
 * (byte-level tokenizer, chat template): streams the same text as the library's greedy
 * generate(); bad options and directories are one-line user errors (exit 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { initBackend } from '../../src/backend/tf.ts';
import { generate } from '../../src/generate/generate.ts';
import { loadModel } from '../../src/models/load.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import { savePretrained as saveAdapter } from '../../src/adapters/save.ts';
import { makeTinyCheckpoint } from '../../scripts/make-tiny-checkpoint.ts';
import { tempDir } from '../models/helpers.ts';
import { runCli as run } from '../cli/runCli.ts';

await initBackend();
const dir = path.join(tempDir('mor-gen-cli-'), 'tiny');
await makeTinyCheckpoint(dir, { hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, initStd: 0.5, seed: 4 });


test('mor generate streams the greedy continuation', async () => {
  const r = await run(['generate', '--model', dir, '--prompt', 'Hello', '--max-new-tokens', '6']);
  assert.equal(r.code, 0, r.err);
  const model = await loadModel(dir);
  const tok = Tokenizer.fromDir(dir);
  const ref = await generate(model, tok, 'Hello', { maxNewTokens: 6 });
  model.dispose();
  assert.equal(r.out, ref.texts[0] + '\n');
  assert.ok(ref.tokenIds[0].length > 0);
});

test('mor generate --chat uses the chat template; sampling options accepted', async () => {
  const r = await run(['generate', '--model', dir, '--prompt', 'Hi', '--chat', '--max-new-tokens', '4', '--temperature', '0.8', '--top-k', '5', '--top-p', '0.9', '--seed', '3']);
  assert.equal(r.code, 0, r.err);
  const model = await loadModel(dir);
  const tok = Tokenizer.fromDir(dir);
  const prompt = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
  assert.match(prompt, /<\|user\|>\nHi<\/s>\n<\|assistant\|>\n$/);
  const ref = await generate(model, tok, prompt, { maxNewTokens: 4, temperature: 0.8, topK: 5, topP: 0.9, seed: 3, addSpecialTokens: false });
  model.dispose();
  assert.equal(r.out, ref.texts[0] + '\n');
});

test('mor generate --adapter applies a saved adapter (same text as the library with loadAdapter)', async () => {
  const adapterDir = path.join(path.dirname(dir), 'adapter');
  {
    const model = await loadModel(dir);
    // init false: A and B both random, so the adapter changes the output
    const peft = getPeftModel(model, { kind: 'lora', r: 2, alpha: 16, targetModules: ['q_proj', 'v_proj', 'down_proj'], init: false, seed: 1 });
    saveAdapter(peft, adapterDir);
    model.dispose();
  }
  const r = await run(['generate', '--model', dir, '--prompt', 'Hello', '--max-new-tokens', '6', '--adapter', adapterDir]);
  assert.equal(r.code, 0, r.err);
  const model = await loadModel(dir);
  const tok = Tokenizer.fromDir(dir);
  const base = await generate(model, tok, 'Hello', { maxNewTokens: 6 });
  loadAdapter(model, adapterDir);
  const adapted = await generate(model, tok, 'Hello', { maxNewTokens: 6 });
  model.dispose();
  assert.equal(r.out, adapted.texts[0] + '\n');
  assert.notDeepEqual(adapted.tokenIds, base.tokenIds, 'the adapter must change the output for this check to mean something');
  const bad = await run(['generate', '--model', dir, '--prompt', 'x', '--adapter', path.join(adapterDir, 'nope')]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /^error: .*adapter_config\.json/);
});

test('bad input: one-line errors, exit 1', async () => {
  let r = await run(['generate', '--model', path.join(dir, 'nope'), '--prompt', 'x']);
  assert.equal(r.code, 1);
  assert.match(r.err, /^error: .*nope/);
  r = await run(['generate', '--model', dir, '--prompt', 'x', '--temperature', '-1']);
  assert.equal(r.code, 1);
  assert.equal(r.err, 'error: --temperature must be a number >= 0 (got "-1")\n');
  r = await run(['generate', '--model', dir, '--prompt', 'x', '--top-p', '1.5']);
  assert.match(r.err, /--top-p must be in \(0, 1\]/);
});
