import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../src/errors.ts';
import { BatchStream, DataMixture, loadExamples, loadExamplesPerTask, type DataSource } from '../../src/data/mix.ts';
import { CharTokenizer, PAD } from './charTokenizer.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-mix-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
function write(name: string, lines: unknown[]): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return p;
}
// Record i of file a is the text `a{i}` padded with i dots, so lengths differ and are known.
const fileA = write('alpha.jsonl', Array.from({ length: 4 }, (_, i) => ({ text: `a${i}${'.'.repeat(i)}` })));
const fileB = write('beta.jsonl', Array.from({ length: 10 }, (_, i) => ({ prompt: `b${i}`, completion: '.'.repeat(i + 1), task: i < 5 ? 'b-low' : 'b-high' })));
const tok = new CharTokenizer();
const sources: DataSource[] = [
  { path: fileA, weight: 2 },
  { path: fileB, weight: 0.5 },
];
const key = (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true });

test('weights are per-epoch multipliers: w=2 repeats every record twice, w=0.5 takes a fresh half each epoch', async () => {
  const mix = await DataMixture.load(sources, tok, { seed: 3, maxLength: 64 });
  assert.equal(mix.epochSize, 8 + 5);
  assert.deepEqual(mix.sources.map((s) => s.examplesPerEpoch), [8, 5]);
  const subsets: string[] = [];
  for (let epoch = 0; epoch < 3; epoch++) {
    const counts = new Map<string, number>();
    for (let i = 0; i < mix.epochSize; i++) {
      const ex = mix.next();
      assert.equal(ex.epoch, epoch);
      const k = key(ex.inputIds);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const a = [...counts].filter(([k]) => k.startsWith('a'));
    const b = [...counts].filter(([k]) => k.startsWith('b'));
    assert.equal(a.length, 4);
    assert.ok(a.every(([, n]) => n === 2), 'each alpha record twice');
    assert.equal(b.length, 5);
    assert.ok(b.every(([, n]) => n === 1), 'half of beta, without repeats');
    subsets.push(b.map(([k]) => k).sort().join(','));
  }
  assert.ok(new Set(subsets).size > 1, 'different halves across epochs');
  assert.deepEqual(mix.tasks, ['alpha', 'b-high', 'b-low']);
});

test('the stream is deterministic given the seed, and shuffled differently for another seed', async () => {
  const take = async (seed: number) => {
    const m = await DataMixture.load(sources, tok, { seed, maxLength: 64 });
    return Array.from({ length: 30 }, () => key(m.next().inputIds));
  };
  const s1 = await take(11);
  assert.deepEqual(await take(11), s1);
  assert.notDeepEqual(await take(12), s1);
  const m = await DataMixture.load(sources, tok, { seed: 11, maxLength: 64, shuffle: false });
  assert.deepEqual(
    Array.from({ length: 5 }, () => key(m.next().inputIds)),
    ['a0', 'a1.', 'a2..', 'a3...', 'a0'],
    'unshuffled: files in order',
  );
});

test('BatchStream resumes exactly from a serialised state, at every point of its windows', async () => {
  const opts = { seed: 5, maxLength: 64 };
  const ref = new BatchStream(await DataMixture.load(sources, tok, opts), { batchSize: 3, bucketWindow: 2 });
  const batches = Array.from({ length: 14 }, () => ref.next());
  for (const k of [0, 1, 2, 3, 4, 5, 9]) {
    const s = new BatchStream(await DataMixture.load(sources, tok, opts), { batchSize: 3, bucketWindow: 2 });
    for (let i = 0; i < k; i++) s.next();
    const state = JSON.parse(JSON.stringify(s.state()));
    const resumed = new BatchStream(await DataMixture.load(sources, tok, opts), { batchSize: 3, bucketWindow: 2 });
    resumed.restore(state);
    for (let i = k; i < k + 5; i++) assert.deepEqual(resumed.next(), batches[i], `resume at ${k}, batch ${i}`);
    assert.equal(resumed.state().step, k + 5);
  }
});

test('BatchStream: full batches, padded, bucketed by length within a window', async () => {
  const s = new BatchStream(await DataMixture.load(sources, tok, { seed: 1, maxLength: 64 }), { batchSize: 2, bucketWindow: 4 });
  const win = Array.from({ length: 4 }, () => s.next());
  const ranges: [number, number][] = [];
  for (const b of win) {
    assert.equal(b.batchSize, 2);
    const lens = [0, 1].map((r) => b.attentionMask.slice(r * b.seqLen, (r + 1) * b.seqLen).reduce((a, x) => a + x, 0));
    assert.equal(Math.max(...lens), b.seqLen);
    ranges.push([Math.min(...lens), Math.max(...lens)]);
    for (let i = 0; i < b.inputIds.length; i++) if (!b.attentionMask[i]) assert.equal(b.inputIds[i], PAD, 'pad = pad id');
  }
  ranges.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i - 1][1] <= ranges[i][0], `bucket ranges overlap: ${JSON.stringify(ranges)}`);
});

test('restore refuses a state from other data or options', async () => {
  const s = new BatchStream(await DataMixture.load(sources, tok, { seed: 5, maxLength: 64 }), { batchSize: 3 });
  s.next();
  const state = s.state();
  const other = new BatchStream(await DataMixture.load(sources, tok, { seed: 6, maxLength: 64 }), { batchSize: 3 });
  assert.throws(() => other.restore(state), (e: Error) => e instanceof UserError && /fingerprint/.test(e.message));
  const otherBatch = new BatchStream(await DataMixture.load(sources, tok, { seed: 5, maxLength: 64 }), { batchSize: 4 });
  assert.throws(() => otherBatch.restore(state), UserError);
});

test('truncation drop skips long examples; a dataset where nothing fits fails', async () => {
  const m = await DataMixture.load([{ path: fileA }], tok, { seed: 0, maxLength: 5, truncation: 'drop' });
  // BOS + a{i} + i dots + EOS = 4 + i tokens: records 0 and 1 fit in 5.
  const seen = new Set(Array.from({ length: 6 }, () => key(m.next().inputIds)));
  assert.deepEqual([...seen].sort(), ['a0', 'a1.']);
  assert.equal(m.stats.dropped, 2);
  const none = await DataMixture.load([{ path: fileA }], tok, { seed: 0, maxLength: 3, truncation: 'drop' });
  assert.throws(() => none.next(), (e: Error) => e instanceof UserError && /no training example fits maxLength 3/.test(e.message));
  const t = await DataMixture.load([{ path: fileA }], tok, { seed: 0, maxLength: 3 });
  assert.ok(Array.from({ length: 4 }, () => t.next()).every((e) => e.inputIds.length <= 3));
});

test('bad options and bad files are UserErrors', async () => {
  await assert.rejects(DataMixture.load([], tok, { seed: 0, maxLength: 8 }), UserError);
  await assert.rejects(DataMixture.load([{ path: fileA, weight: 0 }], tok, { seed: 0, maxLength: 8 }), /weight must be a positive number/);
  await assert.rejects(DataMixture.load([{ path: fileA }], tok, { seed: 0, maxLength: 1 }), /maxLength/);
  const bad = write('bad.jsonl', [{ text: 'x' }, { messages: [] }]);
  await assert.rejects(DataMixture.load([{ path: fileA }, { path: bad }], tok, { seed: 0, maxLength: 8 }), (e: Error) =>
    e.message.startsWith(`${bad}:2: `),
  );
});

test('loadExamplesPerTask: the first n of each task in file order, rendering only those; task filter; errors', async () => {
  const counting = new (class extends CharTokenizer {
    encoded: string[] = [];
    override encode(text: string, opts?: Parameters<CharTokenizer['encode']>[1]): number[] {
      this.encoded.push(text);
      return super.encode(text, opts);
    }
  })();
  const exs = await loadExamplesPerTask([fileA, fileB], counting, { maxLength: 64, perTask: 2 });
  assert.deepEqual(exs.map((e) => [key(e.inputIds), e.task]), [
    ['a0', 'alpha'], ['a1.', 'alpha'], ['b0.', 'b-low'], ['b1..', 'b-low'], ['b5......', 'b-high'], ['b6.......', 'b-high'],
  ]);
  // The same examples as loadExamples then filtering, with 6 records rendered instead of 14.
  const all = await loadExamples([fileA, fileB], tok, { maxLength: 64 });
  const firstTwo = all.filter((e, i) => all.slice(0, i).filter((f) => f.task === e.task).length < 2);
  assert.deepEqual(exs.map((e) => e.inputIds), firstTwo.map((e) => e.inputIds));
  // Only the selected records were tokenized: no text of a later record of a full task.
  assert.ok(counting.encoded.length > 0);
  for (const text of counting.encoded) assert.doesNotMatch(text, /a[23]|b[2-47-9]/, text);
  const high = await loadExamplesPerTask([fileB], tok, { maxLength: 64, task: 'b-high' });
  assert.deepEqual(high.map((e) => key(e.inputIds)), ['b5......', 'b6.......', 'b7........', 'b8.........', 'b9..........']);
  await assert.rejects(loadExamplesPerTask([fileA, fileB], tok, { maxLength: 64, task: 'gamma' }), (e: Error) =>
    e instanceof UserError && e.message === `task "gamma" has no example in ${fileA}, ${fileB} (tasks there: alpha, b-low, b-high)`,
  );
  await assert.rejects(loadExamplesPerTask([], tok, { maxLength: 64 }), /no data files given/);
});

test('loadExamples: every record once in file order, for validation', async () => {
  const exs = await loadExamples([fileA, { path: fileB, task: 'ignored-when-record-has-task' }], tok, { maxLength: 64 });
  assert.equal(exs.length, 14);
  assert.deepEqual(exs.slice(0, 2).map((e) => [key(e.inputIds), e.task]), [['a0', 'alpha'], ['a1.', 'alpha']]);
  assert.equal(exs[4].task, 'b-low');
});

test('fromRecords: records parsed elsewhere (a browser) give the stream load() gives for their files; errors', async () => {
  const { readDataRecords } = await import('../../src/data/mix.ts');
  const fromFiles = await DataMixture.load(sources, tok, { seed: 5, maxLength: 64 });
  const fromRecords = DataMixture.fromRecords(
    await Promise.all(sources.map(async (s) => ({ path: s.path, weight: s.weight, records: await readDataRecords(s.path) }))),
    tok, { seed: 5, maxLength: 64 },
  );
  assert.equal(fromRecords.fingerprint, fromFiles.fingerprint);
  for (let i = 0; i < 30; i++) assert.deepEqual(fromRecords.next(), fromFiles.next());
  assert.throws(() => DataMixture.fromRecords([], tok, { seed: 0, maxLength: 8 }), (e: unknown) => e instanceof UserError && /no training data given/.test(e.message));
  assert.throws(() => DataMixture.fromRecords([{ path: 'x.jsonl', records: [] }], tok, { seed: 0, maxLength: 8 }), /x\.jsonl: empty dataset/);
  const records = await readDataRecords(fileA);
  assert.throws(() => DataMixture.fromRecords([{ path: 'y.jsonl', records, weight: -1 }], tok, { seed: 0, maxLength: 8 }), /y\.jsonl: weight must be a positive number, got -1/);
});
