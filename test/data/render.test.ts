import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import { parseDataRecord, type ChatMessage } from '../../src/data/formats.ts';
import { encodePair, plainEosText, renderRecord, renderPlainChat } from '../../src/data/render.ts';
import { BOS, EOS, CharTokenizer, c, cs } from './charTokenizer.ts';

const M = -100;
const rec = (v: unknown) => parseDataRecord(v, 'data.jsonl', 7);
const masked = (ids: number[]) => ids.map(() => M);

test('text: BOS + text + EOS, loss on every text token and on EOS', () => {
  const r = renderRecord(rec({ text: 'hi' }), new CharTokenizer());
  assert.deepEqual(r.inputIds, [BOS, c('h'), c('i'), EOS]);
  assert.deepEqual(r.labels, [M, c('h'), c('i'), EOS]);
  assert.equal(r.task, 'data');
});

test('prompt/completion: loss only on completion + EOS', () => {
  const r = renderRecord(rec({ prompt: '2+2=', completion: '4', task: 'arith' }), new CharTokenizer());
  assert.deepEqual(r.inputIds, [BOS, ...cs('2+2='), c('4'), EOS]);
  assert.deepEqual(r.labels, [M, ...masked(cs('2+2=')), c('4'), EOS]);
  assert.equal(r.task, 'arith');
});

test('a token straddling the prompt/completion boundary goes to the completion; ids equal the whole-text encoding', () => {
  const tok = new CharTokenizer({ merges: { '=4': 500 } });
  const r = renderRecord(rec({ prompt: '2+2=', completion: '4' }), tok);
  assert.deepEqual(r.inputIds, [BOS, c('2'), c('+'), c('2'), 500, EOS]);
  assert.deepEqual(r.labels, [M, M, M, M, 500, EOS]);
});

test('BOS follows the tokenizer; addBos / addEos override', () => {
  const noBos = new CharTokenizer({ addsBos: false });
  assert.deepEqual(renderRecord(rec({ text: 'a' }), noBos).inputIds, [c('a'), EOS]);
  assert.deepEqual(renderRecord(rec({ text: 'a' }), noBos, { addBos: true }).inputIds, [BOS, c('a'), EOS]);
  const r = renderRecord(rec({ text: 'ab' }), new CharTokenizer(), { addEos: false, addBos: false });
  assert.deepEqual(r.inputIds, cs('ab'));
  assert.deepEqual(r.labels, cs('ab'));
});

const conv: ChatMessage[] = [
  { role: 'system', content: 's' },
  { role: 'user', content: 'u' },
  { role: 'assistant', content: 'a' },
  { role: 'user', content: 'v' },
  { role: 'assistant', content: 'b' },
];

test('chat, plain template: every turn ends with EOS; loss on each assistant content + its EOS only', () => {
  const r = renderRecord(rec({ messages: conv }), new CharTokenizer());
  const sys = cs('<|system|>\ns');
  const u1 = cs('\n<|user|>\nu');
  const a = cs('\n<|assistant|>\n');
  const u2 = cs('\n<|user|>\nv');
  assert.deepEqual(r.inputIds, [BOS, ...sys, EOS, ...u1, EOS, ...a, c('a'), EOS, ...u2, EOS, ...a, c('b'), EOS]);
  assert.deepEqual(r.labels, [M, ...masked(sys), M, ...masked(u1), M, ...masked(a), c('a'), EOS, ...masked(u2), M, ...masked(a), c('b'), EOS]);
  const tok = new CharTokenizer();
  assert.equal(plainEosText(tok), '$');
  assert.equal(renderPlainChat(conv.slice(0, 2), true, plainEosText(tok)), '<|system|>\ns$\n<|user|>\nu$\n<|assistant|>\n');
  // The text form tokenizes to the same ids as the rendered record (minus BOS).
  const text = renderPlainChat(conv, false, '$');
  assert.deepEqual([BOS, ...tok.encode(text, { addSpecialTokens: false })].slice(0, r.inputIds.length), r.inputIds);
});

test('chat, model template: BOS written by the template is not doubled; assistant spans incl. end token are labelled', () => {
  const tok = new CharTokenizer({ chatTemplate: true });
  const r = renderRecord(rec({ messages: conv }), tok);
  // Template text: ^S:s\nU:u\nA:a$\nU:v\nA:b$\n
  const p1 = cs('S:s\nU:u\nA:');
  const p2 = cs('U:v\nA:');
  assert.deepEqual(r.inputIds, [BOS, ...p1, c('a'), EOS, c('\n'), ...p2, c('b'), EOS, c('\n')]);
  assert.deepEqual(r.labels, [M, ...masked(p1), c('a'), EOS, c('\n'), ...masked(p2), c('b'), EOS, c('\n')]);
  // Forcing the plain template ignores the model's.
  assert.deepEqual(renderRecord(rec({ messages: conv }), tok, { chatTemplate: 'plain' }).inputIds.slice(0, 4), [BOS, ...cs('<|s')]);
});

test('chat, model template without an end token: one EOS is appended and labelled', () => {
  class NoEos extends CharTokenizer {
    override applyChatTemplate(m: ChatMessage[], o: { addGenerationPrompt: boolean }): string {
      return super.applyChatTemplate(m, o).replace(/\$/g, '');
    }
  }
  const r = renderRecord(rec({ messages: conv.slice(1, 3) }), new NoEos({ chatTemplate: true }));
  const p = cs('U:u\nA:');
  assert.deepEqual(r.inputIds, [BOS, ...p, c('a'), c('\n'), EOS]);
  assert.deepEqual(r.labels, [M, ...masked(p), c('a'), c('\n'), EOS]);
});

test('chat template errors name file:line', () => {
  class Unstable extends CharTokenizer {
    override applyChatTemplate(m: ChatMessage[], o: { addGenerationPrompt: boolean }): string {
      return `${m.length}` + super.applyChatTemplate(m, o);
    }
  }
  assert.throws(
    () => renderRecord(rec({ messages: conv }), new Unstable({ chatTemplate: true })),
    (e: Error) => e instanceof UserError && e.message.startsWith('data.jsonl:7: the chat template does not render message 2'),
  );
  assert.throws(() => renderRecord(rec({ messages: conv }), new CharTokenizer(), { chatTemplate: 'model' }), UserError);
  class SegmentsFail extends CharTokenizer {
    chatSegments(): { text: string; trainable: boolean }[] {
      throw new UserError('tok: the template is not prefix-stable at message 2');
    }
  }
  assert.throws(
    () => renderRecord(rec({ messages: conv }), new SegmentsFail({ chatTemplate: true })),
    (e: Error) => e instanceof UserError && e.message === 'data.jsonl:7: tok: the template is not prefix-stable at message 2',
  );
});

test('encodePair: continuation = encode(ctx + cont)[len(encode(ctx)):], trailing spaces move to the continuation', () => {
  const tok = new CharTokenizer({ merges: { ' c': 600 } });
  assert.deepEqual(encodePair(tok, 'ab ', 'c'), { contextIds: [BOS, c('a'), c('b')], continuationIds: [600] });
  assert.deepEqual(encodePair(tok, 'ab', ' x', false), { contextIds: cs('ab'), continuationIds: cs(' x') });
  // Empty context starts from BOS even without addBos.
  assert.deepEqual(encodePair(tok, '', 'x', false), { contextIds: [BOS], continuationIds: cs('x') });
  // A template that already writes BOS is not given a second one.
  assert.deepEqual(encodePair(tok, '^Q', 'x').contextIds, [BOS, c('Q')]);
});
