import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseJsonlText } from '../../src/data/jsonlText.ts';
import { readJsonlAll } from '../../src/data/jsonl.ts';
import { UserError } from '../../src/errors.ts';

test('parseJsonlText: the lines and line numbers the streaming reader gives (\\n, \\r\\n, lone \\r, blank lines, BOM)', async () => {
  const text = '\ufeff{"a":1}\r\n\n  \r{"b":[2]}\r{"c":"x"}\n';
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mor-jsonl-text-')), 'f.jsonl');
  fs.writeFileSync(file, text);
  try {
    const expected = (await readJsonlAll(file)).map((l) => ({ ...l, file: 'f.jsonl' }));
    assert.deepEqual(parseJsonlText(text, 'f.jsonl'), expected);
    assert.deepEqual(expected.map((l) => l.line), [1, 4, 5]);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
  assert.deepEqual(parseJsonlText('', 'empty.jsonl'), []);
});

test('parseJsonlText: a bad line is a UserError naming file:line', () => {
  assert.throws(() => parseJsonlText('{"a":1}\n{oops\n', 'suite/t/train.jsonl'),
    (e: unknown) => e instanceof UserError && /^suite\/t\/train\.jsonl:2: invalid JSON/.test(e.message));
});
