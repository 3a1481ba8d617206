/**
 * Rendering with the project's real Tokenizer on the committed fixtures: a SentencePiece
 * LLaMA-2 tokenizer (BOS, `<s>[INST] ... [/INST] ... </s>` template) and a byte-level BPE one
 * with a ChatML template (EOS `<|im_end|>`, no BOS).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { UserError } from '../../src/errors.ts';
import { parseDataRecord, type ChatMessage } from '../../src/data/formats.ts';
import { encodePair, renderRecord, type TokenizerLike } from '../../src/data/render.ts';

const llama: TokenizerLike = Tokenizer.fromDir('test/fixtures/tokenizers/llama2-sp');
const chatml: TokenizerLike = Tokenizer.fromDir('test/fixtures/tokenizers/gpt2-bytelevel');
const rec = (v: unknown) => parseDataRecord(v, 'x.jsonl', 1);
const conv: ChatMessage[] = [
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello there' },
  { role: 'user', content: 'Bye' },
  { role: 'assistant', content: 'Ciao' },
];

/** Texts of the maximal labelled runs. */
function labelledRuns(tok: TokenizerLike, labels: number[]): string[] {
  const runs: number[][] = [];
  let cur: number[] | undefined;
  for (const l of labels) {
    if (l === -100) cur = undefined;
    else {
      if (!cur) runs.push((cur = []));
      cur.push(l);
    }
  }
  return runs.map((r) => tok.decode(r));
}

test('LLaMA-2 SentencePiece: prompt/completion ids equal encode(prompt + completion) + EOS, BOS once', () => {
  const r = renderRecord(rec({ prompt: 'Hello', completion: ' world' }), llama);
  assert.deepEqual(r.inputIds, [...llama.encode('Hello world'), llama.eosTokenIds[0]]);
  assert.equal(r.inputIds.filter((t) => t === llama.bosTokenId).length, 1);
  const promptLen = llama.encode('Hello').length;
  assert.ok(r.labels.slice(0, promptLen).every((l) => l === -100));
  assert.deepEqual(r.labels.slice(promptLen), r.inputIds.slice(promptLen));
});

test('LLaMA-2 chat template: ids equal the template text encoded, BOS from the template only, labels on the replies + </s>', () => {
  const text = llama.applyChatTemplate(conv, { addGenerationPrompt: false });
  const r = renderRecord(rec({ messages: conv }), llama);
  assert.deepEqual(r.inputIds, llama.encode(text, { addSpecialTokens: false }));
  assert.equal(r.inputIds[0], llama.bosTokenId);
  assert.notEqual(r.inputIds[1], llama.bosTokenId);
  assert.deepEqual(labelledRuns(llama, r.labels).map((s) => s.trim()), ['Hello there </s>', 'Ciao </s>']);
});

test('a conversation the template rejects fails with file:line', () => {
  const bad = rec({ messages: [conv[0], conv[0], conv[1]] });
  assert.throws(
    () => renderRecord(bad, llama),
    (e: Error) => e instanceof UserError && /^x\.jsonl:1: .*Conversation roles must alternate/.test(e.message) && !e.message.includes('\n'),
  );
});

test('ChatML byte-level: labels are exactly each assistant reply + <|im_end|>\\n; no BOS, no extra EOS', () => {
  const r = renderRecord(rec({ messages: conv }), chatml);
  const text = chatml.applyChatTemplate(conv, { addGenerationPrompt: false });
  assert.deepEqual(r.inputIds, chatml.encode(text, { addSpecialTokens: false }));
  assert.equal(chatml.decode(r.inputIds), text);
  assert.deepEqual(labelledRuns(chatml, r.labels), ['Hello there<|im_end|>\n', 'Ciao<|im_end|>\n']);
});

test('ChatML byte-level: plain template when forced; text format gets EOS', () => {
  const r = renderRecord(rec({ messages: conv.slice(0, 2) }), chatml, { chatTemplate: 'plain' });
  assert.equal(chatml.decode(r.inputIds), '<|user|>\nHi<|im_end|>\n<|assistant|>\nHello there<|im_end|>');
  assert.deepEqual(labelledRuns(chatml, r.labels), ['Hello there<|im_end|>']);
  const t = renderRecord(rec({ text: 'abc' }), chatml);
  assert.equal(chatml.decode(t.inputIds), 'abc<|im_end|>');
});

test('encodePair with a real tokenizer: context + continuation tokens = encode(whole)', () => {
  const { contextIds, continuationIds } = encodePair(chatml, 'Question: 2+2?\nAnswer:', ' 4');
  assert.deepEqual([...contextIds, ...continuationIds], chatml.encode('Question: 2+2?\nAnswer: 4', { addSpecialTokens: false }));
  assert.equal(chatml.decode(continuationIds), ' 4');
  const l = encodePair(llama, 'Question: 2+2?\nAnswer:', ' four');
  assert.deepEqual([...l.contextIds, ...l.continuationIds], llama.encode('Question: 2+2?\nAnswer: four'));
});

test('plain template = the tokenizer default template (Zephyr) when the model has none, minus the final newline', async () => {
  const fs = await import('node:fs');
  const dir = 'test/fixtures/tokenizers/gpt2-bytelevel';
  const cfg = JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, 'utf8'));
  delete cfg.chat_template;
  const tok: TokenizerLike = Tokenizer.fromJson(JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, 'utf8')), cfg);
  assert.equal(tok.hasChatTemplate, false);
  const msgs: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, ...conv];
  const r = renderRecord(rec({ messages: msgs }), tok);
  const text = tok.applyChatTemplate(msgs, { addGenerationPrompt: false });
  assert.ok(text.endsWith('\n'));
  assert.deepEqual(r.inputIds, tok.encode(text.slice(0, -1), { addSpecialTokens: false }));
  assert.deepEqual(labelledRuns(tok, r.labels), ['Hello there<|im_end|>', 'Ciao<|im_end|>']);
});
