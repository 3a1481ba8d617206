import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aggregate, formatMarkdownTable, reportToJson, writeReport } from '../../src/eval/report.ts';

const rows = [
  { task: 'b', values: { acc: 1, acc_norm: 0 } },
  { task: 'a', values: { acc: 1, acc_norm: 1 } },
  { task: 'b', values: { acc: 0, acc_norm: 0 } },
  { task: 'b', values: { acc: 1, acc_norm: 1 } },
];

test('aggregate: mean per task (sorted by name), unweighted mean over tasks', () => {
  const r = aggregate('multiple_choice', ['acc', 'acc_norm'], rows);
  assert.deepEqual(r.tasks, [
    { task: 'a', n: 1, metrics: { acc: 1, acc_norm: 1 } },
    { task: 'b', n: 3, metrics: { acc: 2 / 3, acc_norm: 1 / 3 } },
  ]);
  assert.deepEqual(r.average, { acc: (1 + 2 / 3) / 2, acc_norm: (1 + 1 / 3) / 2 });
  assert.equal(r.n, 4);
});

test('Markdown table: one row per task and an average row', () => {
  const r = aggregate('multiple_choice', ['acc', 'acc_norm'], rows);
  assert.equal(
    formatMarkdownTable(r),
    [
      '| task        | n | acc (%) | acc_norm (%) |',
      '|:------------|--:|--------:|-------------:|',
      '| a           | 1 |  100.00 |       100.00 |',
      '| b           | 3 |   66.67 |        33.33 |',
      '| **average** | 4 |   83.33 |        66.67 |',
      '',
    ].join('\n'),
  );
  assert.match(formatMarkdownTable(r, { percent: false }), /\| b +\| 3 \| 0\.6667 \| +0\.3333 \|/);
});

test('JSON: snake_case metric names per task and the average; writeReport writes both files', async () => {
  const r = aggregate('exact_match', ['exact_match'], [{ task: 'x', values: { exact_match: 1 } }, { task: 'y', values: { exact_match: 0 } }]);
  const json = reportToJson(r, { model: 'm' });
  assert.deepEqual(json, {
    kind: 'exact_match',
    model: 'm',
    tasks: { x: { n: 1, exact_match: 1 }, y: { n: 1, exact_match: 0 } },
    average: { n_tasks: 2, n: 2, exact_match: 0.5 },
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-report-'));
  const out = await writeReport(path.join(dir, 'sub'), r, { name: 'em', extra: { model: 'm' } });
  assert.deepEqual(JSON.parse(fs.readFileSync(out.json, 'utf8')), json);
  assert.equal(fs.readFileSync(out.markdown, 'utf8'), formatMarkdownTable(r));
  fs.rmSync(dir, { recursive: true, force: true });
});
