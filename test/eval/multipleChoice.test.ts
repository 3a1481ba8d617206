import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { parseHfConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { encodePair } from '../../src/data/render.ts';
import {
  evaluateMultipleChoice,
  multipleChoicePrompt,
  readMultipleChoice,
  resolvePromptStyle,
} from '../../src/eval/multipleChoice.ts';
import type { CausalLMLike } from '../../src/eval/loglikelihood.ts';
import type { MultipleChoiceItem } from '../../src/data/formats.ts';
import { UserError } from '../../src/errors.ts';
import { CharTokenizer } from '../data/charTokenizer.ts';

await initBackend();

const FIXTURE = 'test/fixtures/eval/mc_small.jsonl';
const config = parseHfConfig({
  model_type: 'llama',
  vocab_size: 160,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
  initializer_range: 0.5,
});
const model = createRandomModel(config, 1234);

/** Naive reference: one unpadded forward per choice, log-softmax in float64 on the host. */
function reference(m: CausalLMLike, tok: CharTokenizer, items: MultipleChoiceItem[], style: 'qa' | 'chat' | 'plain-chat') {
  return items.map((item) => {
    const { prompt, continuations } = multipleChoicePrompt(item, tok, style);
    const lls = continuations.map((cont) => {
      const { contextIds, continuationIds } = encodePair(tok, prompt, cont);
      const all = [...contextIds, ...continuationIds];
      const logits = tf.tidy(() => m.forward(tf.tensor2d([all.slice(0, -1)], [1, all.length - 1], 'int32')));
      const v = logits.shape[2];
      const data = logits.dataSync();
      logits.dispose();
      let sum = 0;
      for (let k = 0; k < continuationIds.length; k++) {
        const pos = contextIds.length - 1 + k;
        const row = Array.from(data.subarray(pos * v, (pos + 1) * v), Number);
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
        sum += row[continuationIds[k]] - lse;
      }
      return sum;
    });
    const first = (xs: number[]) => xs.indexOf(Math.max(...xs));
    return { lls, pred: first(lls), predNorm: first(lls.map((ll, c) => ll / [...item.choices[c]].length)) };
  });
}

test('acc / acc_norm equal a naive per-choice float64 reference (qa and chat styles, several batch sizes); no leaks', async () => {
  const items = await readMultipleChoice([FIXTURE]);
  assert.equal(items.length, 9);
  for (const [tok, style] of [
    [new CharTokenizer(), 'qa'],
    [new CharTokenizer({ chatTemplate: true }), 'chat'],
    [new CharTokenizer(), 'plain-chat'],
  ] as const) {
    const ref = reference(model, tok, items, style);
    for (const batchSize of [1, 5, 64]) {
      const before = tf.memory().numTensors;
      const res = await evaluateMultipleChoice(model, tok, items, { batchSize, promptStyle: style === 'qa' ? 'auto' : style });
      assert.equal(tf.memory().numTensors, before, 'tensor leak');
      assert.equal(res.promptStyle, style);
      res.items.forEach((r, i) => {
        r.logLikelihoods.forEach((ll, c) => assert.ok(Math.abs(ll - ref[i].lls[c]) < 1e-4, `${style} item ${i} choice ${c}: ${ll} vs ${ref[i].lls[c]}`));
        assert.equal(r.pred, ref[i].pred, `${style} item ${i} pred`);
        assert.equal(r.predNorm, ref[i].predNorm, `${style} item ${i} predNorm`);
      });
      for (const t of res.report.tasks) {
        const idx = items.map((it, i) => (it.task === t.task ? i : -1)).filter((i) => i >= 0);
        assert.equal(t.n, idx.length);
        assert.equal(t.metrics.acc, idx.filter((i) => ref[i].pred === items[i].answer).length / idx.length);
        assert.equal(t.metrics.acc_norm, idx.filter((i) => ref[i].predNorm === items[i].answer).length / idx.length);
      }
      const mean = (k: string) => res.report.tasks.reduce((a, t) => a + t.metrics[k], 0) / res.report.tasks.length;
      assert.deepEqual(res.report.average, { acc: mean('acc'), acc_norm: mean('acc_norm') });
    }
  }
});

test('acc and acc_norm on a stand-in model with known scores: sum vs per-character normalisation, ties to the first', async () => {
  // The stand-in's logits are all 0: every token has log-prob -log(V), so a choice scores
  // -tokens * log(V), with the leading space as one more token (char tokenizer, qa style).
  const tok = new CharTokenizer({ addsBos: false });
  const v = 200;
  const flat: CausalLMLike = {
    forward: (ids) => tf.tidy(() => tf.zeros([ids.shape[0], ids.shape[1], v]) as tf.Tensor3D),
  };
  const items: MultipleChoiceItem[] = [
    // acc: the shortest choice wins. acc_norm divides by the choice's characters WITHOUT the
    // space, (len+1)/len, which favours the longest; dividing by tokens would tie (-> index 0).
    { task: 't', question: 'q', choices: ['b', 'cc', 'aaaa'], answer: 0, file: 'f', line: 1 },
    { task: 't', question: 'q', choices: ['b', 'cc', 'aaaa'], answer: 2, file: 'f', line: 2 },
    // All equal: ties go to the first choice.
    { task: 'u', question: 'q', choices: ['a', 'b'], answer: 0, file: 'f', line: 3 },
  ];
  const res = await evaluateMultipleChoice(flat, tok, items, { promptStyle: 'qa' });
  const l = Math.log(v);
  assert.ok(Math.abs(res.items[0].logLikelihoods[2] - -5 * l) < 1e-4);
  assert.deepEqual(res.items.map((r) => [r.pred, r.predNorm]), [[0, 2], [0, 2], [0, 0]]);
  assert.deepEqual(
    res.report.tasks.map((t) => [t.task, t.n, t.metrics.acc, t.metrics.acc_norm]),
    [['t', 2, 0.5, 0.5], ['u', 1, 1, 1]],
  );
  assert.deepEqual(res.report.average, { acc: 0.75, acc_norm: 0.75 });
});

test('prompt styles: qa format, chat template user turn + generation prompt, plain template', () => {
  const item = { question: 'Q?', choices: ['yes', 'no'], context: 'C.' };
  assert.deepEqual(multipleChoicePrompt(item, new CharTokenizer(), 'qa'), { prompt: 'C.\nQuestion: Q?\nAnswer:', continuations: [' yes', ' no'] });
  assert.deepEqual(multipleChoicePrompt(item, new CharTokenizer({ chatTemplate: true }), 'chat'), {
    prompt: '^U:C.\n\nQ?\nA:',
    continuations: ['yes', 'no'],
  });
  assert.equal(multipleChoicePrompt({ question: 'Q?', choices: ['a'] }, new CharTokenizer(), 'plain-chat').prompt, '<|user|>\nQ?$\n<|assistant|>\n');
  assert.equal(resolvePromptStyle(new CharTokenizer()), 'qa');
  assert.equal(resolvePromptStyle(new CharTokenizer({ chatTemplate: true })), 'chat');
  assert.throws(() => resolvePromptStyle(new CharTokenizer(), 'chat'), UserError);
});

test('makeContext is called once per forward and left-truncation keeps the continuation', async () => {
  const items = (await readMultipleChoice([FIXTURE])).slice(0, 3);
  let calls = 0;
  const tok = new CharTokenizer();
  const full = await evaluateMultipleChoice(model, tok, items, { batchSize: 4 });
  const res = await evaluateMultipleChoice(model, tok, items, {
    batchSize: 4,
    makeContext: () => (calls++, { training: false, auxLosses: [] }),
  });
  assert.equal(calls, Math.ceil(items.reduce((a, it) => a + it.choices.length, 0) / 4));
  assert.deepEqual(res.items.map((r) => r.logLikelihoods), full.items.map((r) => r.logLikelihoods));
  const short = await evaluateMultipleChoice(model, tok, items, { maxLength: 12 });
  short.items.forEach((r, i) => assert.deepEqual(r.tokens, full.items[i].tokens));
});

test('a choice longer than maxLength is a UserError naming file:line and the choice, before any forward', async () => {
  const item: MultipleChoiceItem = { task: 't', question: 'Q?', choices: ['short', 'x'.repeat(40)], answer: 0, file: 'mc.jsonl', line: 7 };
  let forwards = 0;
  const counting: CausalLMLike = { forward: (ids, o) => { forwards++; return model.forward(ids, o); } };
  await assert.rejects(
    evaluateMultipleChoice(counting, new CharTokenizer(), [item], { promptStyle: 'qa', maxLength: 16 }),
    (e: Error) => e instanceof UserError && /^mc\.jsonl:7: choice 1 is 41 tokens long, more than the maximum length 16;/.test(e.message),
  );
  assert.equal(forwards, 0);
});
