import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import {
  numSequences,
  PackedBatches,
  splitDocuments,
  tokenizeDocuments,
  type PackingTokenizer,
} from '../../src/pretrain/packing.ts';

/** A tokenizer stand-in: one id per character (char code), BOS 1, EOS 2. */
const charTok: PackingTokenizer = {
  encode: (text, opts) => {
    assert.equal(opts?.addSpecialTokens, false, 'documents are encoded without special tokens');
    return [...text].map((c) => c.charCodeAt(0));
  },
  bosTokenId: 1,
  eosTokenIds: [2],
};

/** Stream 100, 101, ..., 100 + n - 1. */
const ramp = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => 100 + i);

test('splitDocuments: blank-line separated, trimmed, empty documents dropped', () => {
  assert.deepEqual(splitDocuments('a b\nc\n\n\nd\n \t\ne\r\n\r\nf\n\n'), ['a b\nc', 'd', 'e', 'f']);
  assert.deepEqual(splitDocuments('\n\n'), []);
});

test('tokenizeDocuments: <s> doc </s> per document, concatenated', () => {
  assert.deepEqual([...tokenizeDocuments(charTok, ['ab', 'c'])], [1, 97, 98, 2, 1, 99, 2]);
  const noBos = { ...charTok, bosTokenId: undefined };
  assert.deepEqual([...tokenizeDocuments(noBos, ['ab', 'c'])], [97, 98, 2, 99, 2]);
  assert.throws(() => tokenizeDocuments({ ...charTok, eosTokenIds: [] }, ['a']), UserError);
});

test('PackedBatches (in order): exact sequences, labels = inputs, full mask, tail dropped, epochs wrap', () => {
  const stream = ramp(23); // 5 sequences of 4, 3 tokens dropped
  assert.equal(numSequences(stream, 4), 5);
  const it = new PackedBatches(stream, { seqLen: 4, batchSize: 2, seed: 0, shuffle: false });
  const b1 = it.next();
  assert.deepEqual([...b1.inputIds], [100, 101, 102, 103, 104, 105, 106, 107]);
  assert.deepEqual([...b1.labels], [...b1.inputIds]);
  assert.notEqual(b1.labels, b1.inputIds, 'labels are a copy');
  assert.deepEqual([...b1.attentionMask], [1, 1, 1, 1, 1, 1, 1, 1]);
  assert.equal(b1.batchSize, 2);
  assert.equal(b1.seqLen, 4);
  assert.deepEqual(b1.tasks, ['pretrain', 'pretrain']);
  it.next();
  const b3 = it.next(); // sequence 4, then epoch 1 sequence 0
  assert.deepEqual([...b3.inputIds], [116, 117, 118, 119, 100, 101, 102, 103]);
  assert.deepEqual(it.getState(), { epoch: 1, index: 1 });
  assert.equal(it.tokensSeen(), 6 * 4);
});

test('PackedBatches (shuffled): each epoch is a permutation, seed-determined, epochs differ', () => {
  const n = 40;
  const stream = ramp(n * 3); // 40 sequences of 3
  const seqStarts = (seed: number): number[][] => {
    const it = new PackedBatches(stream, { seqLen: 3, batchSize: 8, seed });
    const epochs: number[][] = [[], []];
    for (let k = 0; k < 10; k++) {
      const b = it.next();
      for (let r = 0; r < 8; r++) {
        const first = b.inputIds[r * 3];
        // each row is a whole, aligned sequence of the stream
        assert.deepEqual([...b.inputIds.subarray(r * 3, r * 3 + 3)], [first, first + 1, first + 2]);
        assert.equal((first - 100) % 3, 0);
        epochs[Math.floor((k * 8 + r) / n)].push((first - 100) / 3);
      }
    }
    return epochs;
  };
  const a = seqStarts(7);
  const all = Array.from({ length: n }, (_, i) => i);
  for (const e of a) assert.deepEqual([...e].sort((x, y) => x - y), all);
  assert.notDeepEqual(a[0], all, 'shuffled');
  assert.notDeepEqual(a[0], a[1], 'a new order each epoch');
  assert.deepEqual(seqStarts(7), a, 'same seed, same order');
  assert.notDeepEqual(seqStarts(8)[0], a[0], 'another seed, another order');
});

test('PackedBatches: setState(getState()) on a fresh iterator continues exactly, across epochs', () => {
  const stream = ramp(7 * 5);
  const opts = { seqLen: 5, batchSize: 3, seed: 3 };
  const ref = new PackedBatches(stream, opts);
  const refBatches = Array.from({ length: 9 }, () => [...ref.next().inputIds]);
  for (const k of [0, 2, 4, 7]) {
    const a = new PackedBatches(stream, opts);
    for (let i = 0; i < k; i++) a.next();
    const state = JSON.parse(JSON.stringify(a.getState()));
    const b = new PackedBatches(stream, opts);
    b.setState(state);
    for (let i = k; i < 9; i++) assert.deepEqual([...b.next().inputIds], refBatches[i], `resumed after ${k} batches, batch ${i}`);
  }
});

test('PackedBatches: bad options and states are UserErrors naming the problem', () => {
  assert.throws(() => new PackedBatches(ramp(3), { seqLen: 4, batchSize: 1, seed: 0 }), /fewer than one sequence of 4/);
  assert.throws(() => new PackedBatches(ramp(8), { seqLen: 1, batchSize: 1, seed: 0 }), /seqLen/);
  assert.throws(() => new PackedBatches(ramp(8), { seqLen: 4, batchSize: 0, seed: 0 }), /batchSize/);
  const it = new PackedBatches(ramp(8), { seqLen: 4, batchSize: 1, seed: 0 });
  assert.throws(() => it.setState({ epoch: 0, index: 3 }), UserError);
  assert.throws(() => it.setState({ epoch: -1, index: 0 }), UserError);
  assert.throws(() => it.setState(null), /invalid pretraining data position/);
});
