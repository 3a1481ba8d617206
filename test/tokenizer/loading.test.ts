/**
 * Loading a tokenizer directory: errors name the file and field, side files
 * (special_tokens_map.json, generation_config.json, chat_template.jinja/.json) are honoured,
 * LLaMA-style add_bos_token/add_eos_token decide the special tokens, inputs are not mutated.
 * Tokenizer.fromSource reads the same files through a FileSource, with the same results and errors.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { UserError } from '../../src/errors.ts';
import { memorySource } from '../../src/io/files.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '..', 'fixtures', 'tokenizers');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-tok-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const llamaJson = JSON.parse(fs.readFileSync(path.join(fixtures, 'llama2-sp', 'tokenizer.json'), 'utf8'));
const llamaConfig = JSON.parse(fs.readFileSync(path.join(fixtures, 'llama2-sp', 'tokenizer_config.json'), 'utf8'));

let n = 0;
/** A fresh directory with the given files (objects are written as JSON). */
function dirWith(files: Record<string, unknown>): string {
  const dir = path.join(tmpRoot, `d${n++}`);
  fs.mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

function throwsUser(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('fromDir errors', () => {
  test('missing directory', () => {
    throwsUser(() => Tokenizer.fromDir(path.join(tmpRoot, 'nope')), /nope: not a directory/);
  });
  test('missing tokenizer.json', () => {
    const dir = dirWith({ 'tokenizer_config.json': llamaConfig });
    throwsUser(() => Tokenizer.fromDir(dir), /tokenizer\.json: file not found/);
  });
  test('malformed tokenizer_config.json', () => {
    const dir = dirWith({ 'tokenizer.json': llamaJson, 'tokenizer_config.json': '{"bos_token": ' });
    throwsUser(() => Tokenizer.fromDir(dir), /tokenizer_config\.json: malformed JSON/);
  });
  test('a field of the wrong type is named', () => {
    const config = { ...llamaConfig, add_bos_token: 'yes' };
    const dir = dirWith({ 'tokenizer.json': llamaJson, 'tokenizer_config.json': config });
    throwsUser(() => Tokenizer.fromDir(dir), /tokenizer_config\.json: field 'add_bos_token'/);
  });
  test('generation_config.json with a bad eos_token_id', () => {
    const dir = dirWith({ 'tokenizer.json': llamaJson, 'generation_config.json': { eos_token_id: 'x' } });
    throwsUser(() => Tokenizer.fromDir(dir), /generation_config\.json: field 'eos_token_id'/);
  });
  test('tokenizer.json without a model', () => {
    const dir = dirWith({ 'tokenizer.json': { version: '1.0' } });
    throwsUser(() => Tokenizer.fromDir(dir), /no 'model' object/);
  });
  test('an unknown model type', () => {
    const dir = dirWith({ 'tokenizer.json': { ...llamaJson, model: { type: 'Nope' } } });
    throwsUser(() => Tokenizer.fromDir(dir), /cannot build the tokenizer/);
  });
  test('a special token missing from the vocabulary', () => {
    const config = { ...llamaConfig, pad_token: '<nope>' };
    const dir = dirWith({ 'tokenizer.json': llamaJson, 'tokenizer_config.json': config });
    throwsUser(() => Tokenizer.fromDir(dir), /pad_token '<nope>' is not in the vocabulary/);
  });
  test('add_bos_token without a bos token', () => {
    throwsUser(
      () => Tokenizer.fromJson(llamaJson, { add_bos_token: true }),
      /add_bos_token is true but there is no bos_token/,
    );
  });
});

describe('side files and special-token rules', () => {
  test('tokenizer_config.json is optional; then tokenizer.json post-processor adds <s>', () => {
    const tok = Tokenizer.fromDir(dirWith({ 'tokenizer.json': llamaJson }));
    const plain = tok.encode('Hi', { addSpecialTokens: false });
    assert.deepEqual(tok.encode('Hi'), [1, ...plain]);
    assert.equal(tok.bosTokenId, undefined);
    assert.equal(tok.hasChatTemplate, false);
  });

  test('add_eos_token / add_bos_token override the post-processor, as LlamaTokenizerFast does', () => {
    const tok = Tokenizer.fromJson(llamaJson, { ...llamaConfig, add_bos_token: false, add_eos_token: true });
    const plain = tok.encode('Hi', { addSpecialTokens: false });
    assert.deepEqual(tok.encode('Hi'), [...plain, 2]);
    const both = Tokenizer.fromJson(llamaJson, { ...llamaConfig, add_eos_token: true });
    assert.deepEqual(both.encode('Hi'), [1, ...plain, 2]);
  });

  test('special_tokens_map.json overrides tokenizer_config.json; generation_config adds eos ids', () => {
    const dir = dirWith({
      'tokenizer.json': llamaJson,
      'tokenizer_config.json': { ...llamaConfig, eos_token: '<s>' },
      'special_tokens_map.json': { eos_token: { content: '</s>', lstrip: false } , pad_token: '<unk>' },
      'generation_config.json': { bos_token_id: 1, eos_token_id: [2, 0] },
    });
    const tok = Tokenizer.fromDir(dir);
    assert.deepEqual(tok.eosTokenIds, [2, 0]);
    assert.equal(tok.padTokenId, 0);
  });

  test('chat_template.jinja and chat_template.json side files', () => {
    const a = Tokenizer.fromDir(
      dirWith({ 'tokenizer.json': llamaJson, 'chat_template.jinja': '{{ messages[0].content }}!' }),
    );
    assert.equal(a.hasChatTemplate, true);
    assert.equal(a.applyChatTemplate([{ role: 'user', content: 'x' }]), 'x!');
    const b = Tokenizer.fromDir(
      dirWith({
        'tokenizer.json': llamaJson,
        'chat_template.json': { chat_template: '{{ bos_token }}' },
        'tokenizer_config.json': llamaConfig,
      }),
    );
    assert.equal(b.applyChatTemplate([{ role: 'user', content: 'x' }]), '<s>');
    throwsUser(
      () => Tokenizer.fromDir(dirWith({ 'tokenizer.json': llamaJson, 'chat_template.json': { template: 1 } })),
      /chat_template\.json: field 'chat_template'/,
    );
  });

  test('fromJson does not modify its arguments', () => {
    const tj = structuredClone(llamaJson);
    const cfg = structuredClone(llamaConfig);
    const tok = Tokenizer.fromJson(tj, cfg);
    tok.encode('Hello </s> world');
    assert.deepEqual(tj, llamaJson);
    assert.deepEqual(cfg, llamaConfig);
  });

  test('encode rejects a non-string', () => {
    const tok = Tokenizer.fromJson(llamaJson, llamaConfig);
    throwsUser(() => tok.encode(42 as unknown as string), /encode expects a string/);
  });
});

/** Every file of `dir`, as a page would hand them to memorySource. */
function sourceOf(dir: string, label = 'mem') {
  return memorySource(Object.fromEntries(fs.readdirSync(dir).map((f) => [f, new Uint8Array(fs.readFileSync(path.join(dir, f)))])), label);
}

describe('fromSource (a FileSource instead of a directory)', () => {
  const base = path.resolve(here, '..', '..', 'models', 'base');
  const chat = dirWith({
    'tokenizer.json': llamaJson,
    'tokenizer_config.json': llamaConfig,
    'generation_config.json': { eos_token_id: [2, 0] },
    'chat_template.jinja': '{{ bos_token }}{{ messages[0].content }}!',
  });
  for (const [name, dir] of [['models/base', base], ['llama2-sp', path.join(fixtures, 'llama2-sp')], ['llama2-sp + side files', chat]]) {
    test(`${name}: the same tokenizer as fromDir`, async () => {
      const [a, b] = [Tokenizer.fromDir(dir), await Tokenizer.fromSource(sourceOf(dir))];
      const text = 'Hello </s> world, héllo 123 <unk>!';
      assert.deepEqual(b.encode(text), a.encode(text));
      assert.deepEqual(b.encode(text, { addSpecialTokens: false }), a.encode(text, { addSpecialTokens: false }));
      assert.equal(b.decode(a.encode(text)), a.decode(a.encode(text)));
      for (const k of ['vocabSize', 'bosTokenId', 'eosTokenIds', 'padTokenId', 'unkTokenId', 'modelMaxLength', 'hasChatTemplate'] as const) {
        assert.deepEqual(b[k], a[k], k);
      }
      if (a.hasChatTemplate) {
        const msgs = [{ role: 'user' as const, content: 'x' }];
        assert.equal(b.applyChatTemplate(msgs), a.applyChatTemplate(msgs));
      }
    });
  }
  test('errors name <source>/<file>', async () => {
    const rejects = (files: Record<string, string>, re: RegExp) =>
      assert.rejects(Tokenizer.fromSource(memorySource(files, 'mem')), (e: unknown) => e instanceof UserError && re.test(e.message));
    await rejects({ 'tokenizer_config.json': '{}' }, /^mem\/tokenizer\.json: file not found$/);
    await rejects({ 'tokenizer.json': JSON.stringify(llamaJson), 'tokenizer_config.json': '{"bos_token": ' }, /^mem\/tokenizer_config\.json: malformed JSON/);
    await rejects({ 'tokenizer.json': '{' }, /^mem\/tokenizer\.json: malformed JSON/);
    await assert.rejects(
      Tokenizer.fromSource(memorySource({ 'tokenizer.json': new Uint8Array([0x7b, 0xff]) }, 'mem')),
      /^UserError: mem\/tokenizer\.json: not valid UTF-8$/,
    );
  });
});
