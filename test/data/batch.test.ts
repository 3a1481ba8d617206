import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchesOf, bucketByLength, collate, countTargets, padIdOf, truncateExample } from '../../src/data/batch.ts';
import { Rng } from '../../src/util/rng.ts';

const M = -100;

test('collate: right padding with pad id, mask 0 and label -100 on pads', () => {
  const b = collate(
    [
      { inputIds: [5, 6, 7], labels: [M, 6, 7], task: 'x' },
      { inputIds: [8], labels: [8], task: 'y' },
    ],
    { padId: 9 },
  );
  assert.equal(b.batchSize, 2);
  assert.equal(b.seqLen, 3);
  assert.deepEqual([...b.inputIds], [5, 6, 7, 8, 9, 9]);
  assert.deepEqual([...b.labels], [M, 6, 7, 8, M, M]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 0, 0]);
  assert.deepEqual(b.tasks, ['x', 'y']);
  const b8 = collate([{ inputIds: [1, 2, 3], labels: [1, 2, 3], task: 't' }], { padId: 0, padToMultipleOf: 8 });
  assert.equal(b8.seqLen, 8);
  assert.deepEqual([...b8.attentionMask], [1, 1, 1, 0, 0, 0, 0, 0]);
});

test('truncation: truncate keeps the first maxLength tokens, drop rejects; nothing-to-learn is rejected', () => {
  const ex = { inputIds: [1, 2, 3, 4, 5], labels: [M, M, M, 4, 5], task: 't' };
  assert.deepEqual(truncateExample(ex, 4, 'truncate'), { inputIds: [1, 2, 3, 4], labels: [M, M, M, 4], task: 't' });
  assert.equal(truncateExample(ex, 4, 'drop'), null);
  assert.equal(truncateExample(ex, 3, 'truncate'), null, 'only masked labels left');
  assert.equal(truncateExample(ex, 5, 'drop'), ex);
  assert.equal(countTargets([7, M, 3, 4]), 2, 'position 0 is never a target');
});

test('padIdOf: pad, else first EOS, else 0', () => {
  assert.equal(padIdOf({ padTokenId: 3, eosTokenIds: [2] }), 3);
  assert.equal(padIdOf({ padTokenId: undefined, eosTokenIds: [2, 5] }), 2);
  assert.equal(padIdOf({ padTokenId: undefined, eosTokenIds: [] }), 0);
});

test('bucketByLength: batches hold consecutive lengths, cover every index once, order shuffled by the rng', () => {
  const lengths = [9, 1, 5, 3, 8, 2, 7, 4, 6, 10, 3];
  const plain = bucketByLength(lengths, 3);
  assert.deepEqual(plain, [
    [1, 5, 3],
    [10, 7, 2],
    [8, 6, 4],
    [0, 9],
  ]);
  const shuffled = bucketByLength(lengths, 3, new Rng(1));
  assert.deepEqual([...shuffled].sort((a, b) => a[0] - b[0]), [...plain].sort((a, b) => a[0] - b[0]));
  assert.deepEqual(bucketByLength(lengths, 3, new Rng(1)), shuffled, 'deterministic');
});

test('batchesOf: fixed list in order, or bucketed', () => {
  const exs = [3, 1, 2].map((n, i) => ({ inputIds: Array(n).fill(1), labels: Array(n).fill(1), task: `t${i}` }));
  assert.deepEqual(batchesOf(exs, 2, { padId: 0 }).map((b) => b.tasks), [['t0', 't1'], ['t2']]);
  assert.deepEqual(batchesOf(exs, 2, { padId: 0, bucket: true }).map((b) => [b.tasks, b.seqLen]), [
    [['t1', 't2'], 2],
    [['t0'], 3],
  ]);
});
