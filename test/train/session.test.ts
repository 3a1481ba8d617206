/**
 * The shared training session (src/train/session.ts) on a tiny random LLaMA: what it hands to
 * `use`, what it writes with and without an output folder, and that every tensor is freed on
 * success, when `use` throws, and when the adapter cannot be injected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeTinySetup } from '../fixtures/train/tinyLlama.ts';
import { parseAdapterConfig } from '../../src/adapters/config.ts';
import { DataMixture } from '../../src/data/mix.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { trainingSession, type SessionOptions } from '../../src/train/session.ts';

await initBackend({ announce: false });

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-session-'));
const { modelDir, shout, reverse } = await makeTinySetup(root);
const tokenizer = Tokenizer.fromDir(modelDir);
const data = [shout, reverse];
const mixture = await DataMixture.load(data.map((p) => ({ path: p })), tokenizer, { seed: 0, maxLength: 32 });

const options = (over: Partial<SessionOptions> = {}): SessionOptions => ({
  model: modelDir,
  adapter: parseAdapterConfig({ kind: 'mor', r: 2, numExperts: 2 }, 'test adapter'),
  tokenizer,
  mixture,
  data,
  batchSize: 4,
  maxLength: 32,
  steps: 3,
  trainer: { schedule: { lr: 1e-2 }, seed: 0, logEvery: 1 },
  routing: { examplesPerTask: 4, plot: true, title: 'routing' },
  ...over,
});

test('trainingSession: hooks in order, trained model and routing handed to use, files in order, no tensor left', async () => {
  const tensorsBefore = tf.memory().numTensors;
  const outDir = path.join(root, 'out');
  const calls: string[] = [];
  const got = await trainingSession(
    options({
      outDir,
      saveAdapter: true,
      onBase: () => void calls.push('base'),
      onInjected: (peft) => void calls.push(`injected ${peft.trainableParameters().length > 0}`),
      onStep: (r, total) => calls.push(`step ${r.step}/${total}`),
    }),
    async (s) => {
      calls.push('use');
      assert.equal(s.result.stopped, 'completed');
      assert.equal(s.result.step, 3);
      assert.deepEqual(s.routing?.groups().sort(), ['reverse', 'shout']);
      assert.ok(s.trainSeconds > 0);
      return s.files.map((f) => path.relative(outDir, f));
    },
  );
  assert.deepEqual(calls, ['base', 'injected true', 'step 1/3', 'step 2/3', 'step 3/3', 'use']);
  assert.deepEqual(got, ['metrics.jsonl', 'loss.svg', 'adapter', 'routing.json', 'routing.svg']);
  for (const f of got) assert.ok(fs.existsSync(path.join(outDir, f)), f);
  assert.equal(tf.memory().numTensors, tensorsBefore);
});

test('trainingSession: without outDir nothing is written; routing statistics are still computed', async () => {
  const tensorsBefore = tf.memory().numTensors;
  const listing = (): string[][] => [fs.readdirSync(root).sort(), fs.readdirSync(process.cwd()).sort()];
  const before = listing();
  const s = await trainingSession(options({ saveAdapter: true, routing: { examplesPerTask: 2, plot: true, title: 't' } }), async (x) => x);
  assert.deepEqual(s.files, []);
  assert.equal(s.metricsFile, undefined);
  assert.equal(s.adapterDir, undefined);
  assert.ok(s.routing);
  assert.deepEqual(listing(), before);
  assert.equal(tf.memory().numTensors, tensorsBefore);
});

test('trainingSession: the model is freed when use throws, and when injection fails', async () => {
  const tensorsBefore = tf.memory().numTensors;
  await assert.rejects(
    trainingSession(options({ routing: undefined }), async () => {
      throw new Error('use failed');
    }),
    /use failed/,
  );
  assert.equal(tf.memory().numTensors, tensorsBefore);
  const adapter = parseAdapterConfig({ kind: 'lora', r: 2, targetModules: ['no_such_proj'] }, 'test adapter');
  await assert.rejects(trainingSession(options({ adapter }), async () => 0), /no_such_proj/);
  assert.equal(tf.memory().numTensors, tensorsBefore);
});
