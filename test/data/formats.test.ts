import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../src/errors.ts';
import { readDataRecords } from '../../src/data/mix.ts';
import { readMultipleChoice } from '../../src/eval/multipleChoice.ts';
import { readExactMatch } from '../../src/eval/exactMatch.ts';
import { readJsonlAll } from '../../src/data/jsonl.ts';
import { taskNameOf } from '../../src/data/formats.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-formats-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
function write(lines: string[], name?: string): string {
  const p = path.join(dir, name ?? `f${fileNo++}.jsonl`);
  fs.writeFileSync(p, lines.join('\n') + (lines.length ? '\n' : ''));
  return p;
}

const goodChat = JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] });

/** [case name, lines, expected line number, message fragment] for training data. */
const trainCases: [string, string[], number, RegExp][] = [
  ['invalid JSON', [goodChat, '{"messages": [', goodChat], 2, /invalid JSON/],
  ['blank lines keep numbering', [goodChat, '', '   ', '{bad'], 4, /invalid JSON/],
  ['not an object', ['[1, 2]'], 1, /expected a JSON object, got array/],
  ['unrecognised record', ['{"foo": 1}'], 1, /unrecognised record/],
  ['empty messages', ['{"messages": []}'], 1, /field "messages" is empty/],
  ['messages wrong type', ['{"messages": "hi"}'], 1, /field "messages": expected array, got string/],
  ['unknown role', ['{"messages": [{"role": "bot", "content": "x"}]}'], 1, /field "messages\[0\]\.role": unknown value "bot"/],
  ['missing content', ['{"messages": [{"role": "user"}]}'], 1, /missing field "messages\[0\]\.content"/],
  ['content wrong type', ['{"messages": [{"role": "assistant", "content": 5}]}'], 1, /"messages\[0\]\.content": expected string, got number/],
  ['no assistant turn', ['{"messages": [{"role": "user", "content": "x"}]}'], 1, /no assistant message/],
  ['missing completion', ['{"prompt": "p"}'], 1, /missing field "completion"/],
  ['completion wrong type', ['{"prompt": "p", "completion": ["x"]}'], 1, /"completion": expected string, got array/],
  ['empty completion', ['{"prompt": "p", "completion": ""}'], 1, /"completion" is an empty string/],
  ['text wrong type', ['{"text": null}'], 1, /"text": expected string, got null/],
  ['task wrong type', ['{"text": "x", "task": 3}'], 1, /"task": expected string, got number/],
];

for (const [name, lines, line, re] of trainCases) {
  test(`training data: ${name} -> one-line UserError naming file:line`, async () => {
    const f = write(lines);
    await assert.rejects(readDataRecords(f), (e: Error) => {
      assert.ok(e instanceof UserError, `not a UserError: ${e}`);
      assert.ok(e.message.startsWith(`${f}:${line}: `), e.message);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  });
}

const goodMc = JSON.stringify({ task: 't', question: 'q', choices: ['a', 'b'], answer: 1 });
const mcCases: [string, string[], number, RegExp][] = [
  ['invalid JSON', [goodMc, 'nope'], 2, /invalid JSON/],
  ['choices empty', ['{"question": "q", "choices": [], "answer": 0}'], 1, /field "choices" is empty/],
  ['one choice (always "right")', [goodMc, '{"question": "q", "choices": ["a"], "answer": 0}'], 2, /field "choices" has 1 item, needs at least 2$/],
  ['answer out of range', [goodMc, '{"question": "q", "choices": ["a", "b"], "answer": 2}'], 2, /"answer" = 2 is out of range \(expected an integer index in 0\.\.1 for 2 choices\)/],
  ['negative answer', ['{"question": "q", "choices": ["a", "b"], "answer": -1}'], 1, /out of range/],
  ['answer not an integer', ['{"question": "q", "choices": ["a", "b"], "answer": 0.5}'], 1, /field "answer" must be an integer, got 0\.5/],
  ['answer wrong type', ['{"question": "q", "choices": ["a", "b"], "answer": "b"}'], 1, /"answer": expected number, got string/],
  ['missing question', ['{"choices": ["a"], "answer": 0}'], 1, /missing field "question"/],
  ['missing answer', ['{"question": "q", "choices": ["a", "b"]}'], 1, /missing field "answer"/],
  ['choice wrong type', ['{"question": "q", "choices": ["a", 3], "answer": 0}'], 1, /"choices\[1\]": expected string, got number/],
  ['empty choice', ['{"question": "q", "choices": ["a", ""], "answer": 0}'], 1, /"choices\[1\]" is an empty string/],
  ['context wrong type', ['{"question": "q", "choices": ["a", "b"], "answer": 0, "context": 1}'], 1, /"context": expected string/],
];

for (const [name, lines, line, re] of mcCases) {
  test(`multiple-choice data: ${name} -> one-line UserError naming file:line`, async () => {
    const f = write(lines);
    await assert.rejects(readMultipleChoice([f]), (e: Error) => {
      assert.ok(e instanceof UserError, `not a UserError: ${e}`);
      assert.ok(e.message.startsWith(`${f}:${line}: `), e.message);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  });
}

test('empty and missing files fail with a UserError naming the file', async () => {
  const empty = write([]);
  const blank = write(['', '  ']);
  const missing = path.join(dir, 'nope.jsonl');
  for (const [p, re] of [
    [empty, /empty dataset/],
    [blank, /empty dataset/],
    [missing, /cannot read \(ENOENT\)/],
  ] as const) {
    await assert.rejects(readDataRecords(p), (e: Error) => e instanceof UserError && e.message.startsWith(p) && re.test(e.message));
    await assert.rejects(readMultipleChoice([p]), (e: Error) => e instanceof UserError && e.message.startsWith(p) && re.test(e.message));
    await assert.rejects(readExactMatch([p]), (e: Error) => e instanceof UserError && e.message.startsWith(p) && re.test(e.message));
  }
  await assert.rejects(readMultipleChoice([]), UserError);
  await assert.rejects(readDataRecords(dir), /is a directory/);
});

test('valid records: formats detected, task defaults to the file base name, extra fields ignored', async () => {
  const f = write(
    [
      JSON.stringify({ dataset: 'flan_v2', id: 'x1', messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'u' }, { role: 'assistant', content: 'a' }] }),
      JSON.stringify({ prompt: 'p', completion: 'c', task: 'arith' }),
      JSON.stringify({ text: 'hello' }),
    ],
    'mix.train.jsonl',
  );
  const recs = await readDataRecords(f);
  assert.deepEqual(
    recs.map((r) => [r.format, r.task, r.line]),
    [
      ['chat', 'mix.train', 1],
      ['prompt_completion', 'arith', 2],
      ['text', 'mix.train', 3],
    ],
  );
  assert.deepEqual((await readDataRecords(f, 'override')).map((r) => r.task), ['override', 'arith', 'override']);
  assert.equal(taskNameOf('/a/b/qa.test.jsonl'), 'qa.test');
  const mc = await readMultipleChoice([write(['{"question": "q", "choices": ["x", "y"], "answer": 1, "context": "c"}'], 'boolq.jsonl')]);
  assert.deepEqual({ ...mc[0], file: undefined }, { task: 'boolq', question: 'q', choices: ['x', 'y'], answer: 1, context: 'c', file: undefined, line: 1 });
});

test('readJsonl strips a UTF-8 BOM and handles CRLF', async () => {
  const p = path.join(dir, 'bom.jsonl');
  fs.writeFileSync(p, '\ufeff{"text": "a"}\r\n{"text": "b"}\r\n');
  const lines = await readJsonlAll(p);
  assert.deepEqual(lines.map((l) => [l.line, l.value]), [[1, { text: 'a' }], [2, { text: 'b' }]]);
});

test('readJsonl decodes strictly: invalid UTF-8 is "file:line: invalid UTF-8", line numbers count \\n, \\r\\n and \\r', async () => {
  const ok = JSON.stringify({ text: 'café' });
  const p = write([]);
  fs.writeFileSync(p, Buffer.concat([Buffer.from(`${ok}\r\n\r${ok}\n`), Buffer.from('{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
  await assert.rejects(readJsonlAll(p), (e: Error) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.message, `${p}:4: invalid UTF-8 (byte 0xe9 at column 14); save the file as UTF-8`);
    return true;
  });
  // Valid multi-byte characters split across read chunks survive; no terminator at the end is fine.
  const big = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ text: `€${i}😀` })).join('\r\n');
  fs.writeFileSync(p, big);
  const lines = await readJsonlAll(p);
  assert.equal(lines.length, 3000);
  assert.deepEqual(lines[2999], { file: p, line: 3000, value: { text: '€2999😀' } });
});
