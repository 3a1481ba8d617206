import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { parseHfConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { evaluateExactMatch, exactMatchPrompt, modelGenerator, normalizeAnswer, readExactMatch } from '../../src/eval/exactMatch.ts';
import { BOS, CharTokenizer, cs } from '../data/charTokenizer.ts';

await initBackend();

test('normalizeAnswer: case, punctuation, articles and whitespace', () => {
  const cases: [string, string][] = [
    ['  The Eiffel   Tower.', 'eiffel tower'],
    ['PARIS!', 'paris'],
    ['an apple, a pear', 'apple pear'],
    ['theater', 'theater'],
    ['5', '5'],
    ['"Yes"', 'yes'],
  ];
  for (const [a, b] of cases) assert.equal(normalizeAnswer(a), b, a);
});

test('evaluateExactMatch: normalised comparison on the first line(s), per task and average', async () => {
  const items = await readExactMatch(['test/fixtures/eval/em_small.jsonl']);
  const answers: Record<string, string> = {
    '2 + 3 = ': '5.\nand more text',
    '10 - 4 = ': '7',
    'Capital of France: ': '\nThe PARIS',
  };
  const seen: string[] = [];
  const res = await evaluateExactMatch(
    items,
    (prompts) => {
      seen.push(...prompts);
      return prompts.map((p) => answers[p]);
    },
    { batchSize: 2 },
  );
  assert.deepEqual(seen, items.map((i) => i.prompt), 'raw prompts by default');
  assert.deepEqual(res.items.map((r) => [r.prediction, r.correct]), [
    ['5.', true],
    ['7', false],
    ['The PARIS', true],
  ]);
  assert.deepEqual(
    res.report.tasks.map((t) => [t.task, t.n, t.metrics.exact_match]),
    [
      ['arith', 2, 0.5],
      ['capitals', 1, 1],
    ],
  );
  assert.equal(res.report.average.exact_match, 0.75);
  const whole = await evaluateExactMatch(items.slice(0, 1), () => ['5\nmore'], { firstLine: false });
  assert.equal(whole.items[0].correct, false);
});

test('exact-match prompt styles', () => {
  assert.equal(exactMatchPrompt({ prompt: 'p' }, 'raw'), 'p');
  assert.equal(exactMatchPrompt({ prompt: 'p' }, 'chat', new CharTokenizer({ chatTemplate: true })), '^U:p\nA:');
  assert.equal(exactMatchPrompt({ prompt: 'p' }, 'plain-chat', new CharTokenizer()), '<|user|>\np$\n<|assistant|>\n');
});

test('modelGenerator: greedy generation with BOS once; one new token = argmax of the last logits', async () => {
  // Counted before the model exists: on the pure-wasm path its projections keep a Wᵀ from the
  // first call on, which dispose() frees.
  const before = tf.memory().numTensors;
  const model = createRandomModel(
    parseHfConfig({ model_type: 'llama', vocab_size: 140, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, initializer_range: 0.5 }),
    7,
  );
  const tok = new CharTokenizer();
  const prompts = ['2 + 3 = ', 'Capital: '];
  const outs = await modelGenerator(model, tok, { maxNewTokens: 1 })(prompts);
  const expected = prompts.map((p) => {
    const ids = [BOS, ...cs(p)];
    const logits = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')));
    const data = logits.dataSync();
    logits.dispose();
    const last = Array.from(data.subarray((ids.length - 1) * 140, ids.length * 140));
    return tok.decode([last.indexOf(Math.max(...last))], { skipSpecialTokens: true });
  });
  assert.deepEqual(outs, expected);
  model.dispose();
  assert.equal(tf.memory().numTensors, before);
});
