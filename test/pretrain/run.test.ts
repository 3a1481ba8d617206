import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { loadModel } from '../../src/models/load.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { train } from '../../src/train/trainer.ts';
import { parsePretrainConfig, type PretrainConfigInput } from '../../src/pretrain/config.ts';
import { makeAllTrainable } from '../../src/pretrain/trainable.ts';
import { runPretrain, streamLoss } from '../../src/pretrain/run.ts';
import { splitDocuments, tokenizeDocuments } from '../../src/pretrain/packing.ts';

await initBackend({ announce: false });

const TINY_ARCH = { vocabSize: 400, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 64 };

/** A small corpus (the real one's first documents) in a temp dir. */
function tinyCorpus(dir: string): { trainFile: string; validFile: string } {
  const read = (f: string, n: number): string => splitDocuments(fs.readFileSync(f, 'utf8')).slice(0, n).join('\n\n') + '\n';
  const trainFile = path.join(dir, 'train.txt');
  const validFile = path.join(dir, 'valid.txt');
  fs.writeFileSync(trainFile, read('data/corpus/train.txt', 6));
  fs.writeFileSync(validFile, read('data/corpus/valid.txt', 2));
  return { trainFile, validFile };
}

function tinyConfig(dir: string, extra: Partial<PretrainConfigInput> = {}) {
  return parsePretrainConfig({
    ...tinyCorpus(dir),
    outDir: path.join(dir, 'model'),
    runDir: path.join(dir, 'run'),
    architecture: TINY_ARCH,
    steps: 3,
    seqLen: 32,
    batchSize: 4,
    lr: 5e-3,
    checkpointEvery: 2,
    evalEvery: 2,
    evalSequences: 4,
    logEvery: 1,
    samplePrompts: ['The'],
    sampleTokens: 3,
    ...extra,
  });
}

test('makeAllTrainable: every parameter becomes one trainable variable (tied embedding once), same values, no leak', () => {
  const before = tf.memory().numTensors;
  const model = createRandomModel(makeConfig({ vocabSize: 50, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, tieWordEmbeddings: true }), 1);
  const values = new Map(model.namedParameters().map(([n, p]) => [n, [...p.dataSync()]]));
  const params = makeAllTrainable(model);
  assert.deepEqual(params.map(([n]) => n), [...values.keys()]);
  assert.equal(params.length, 2 * 9 + 2, 'per layer 7 linears + 2 norms; embedding and final norm; no lm_head');
  for (const [n, v] of params) {
    assert.ok(v instanceof tf.Variable && v.trainable, n);
    assert.deepEqual([...v.dataSync()], values.get(n), n);
  }
  assert.equal(model.numParameters(), 50 * 16 + 2 * (4 * 16 * 16 + 3 * 16 * 24 + 2 * 16) + 16);
  model.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('full training of a tiny model on one repeated batch: loss finite and decreasing', async () => {
  const model = createRandomModel(makeConfig({ vocabSize: 64, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, tieWordEmbeddings: true }), 2);
  const params = makeAllTrainable(model);
  const ids = Int32Array.from({ length: 2 * 12 }, (_, i) => (i * 5 + 3) % 64);
  const batch = { ids };
  const res = await train({
    params,
    lossFn: (b: typeof batch) => tf.tidy(() => {
      const t = tf.tensor2d(b.ids, [2, 12], 'int32');
      return model.loss(t, t);
    }),
    data: { next: () => batch, getState: () => 0, setState: () => {} },
    steps: 6,
    schedule: { lr: 1e-2 },
    maxGradNorm: 1,
    logEvery: 1,
  });
  const losses = res.log.flatMap((r) => (r.type === 'train' ? [r.loss] : []));
  assert.equal(losses.length, 6);
  for (const l of losses) assert.ok(Number.isFinite(l));
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i] < losses[i - 1], `loss ${i}: ${losses[i]} >= ${losses[i - 1]}`);
  assert.ok(Math.abs(losses[0] - Math.log(64)) < 0.3, `initial loss ${losses[0]} near ln(64)`);
  model.dispose();
});

test('runPretrain: a 3-step run writes a loadable HF model directory whose weights are the trained ones', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-pretrain-'));
  try {
    const cfg = tinyConfig(dir);
    const r = await runPretrain(cfg, { log: () => {} });
    assert.equal(r.stopReason, 'completed');
    assert.equal(r.train.step, 3);
    assert.equal(r.tokensSeen, 3 * 4 * 32);
    assert.ok(Number.isFinite(r.finalTrainLoss) && Number.isFinite(r.finalValidLoss));
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'training_log.jsonl', 'loss.svg']) {
      assert.ok(fs.existsSync(path.join(cfg.outDir, f)), f);
    }
    const hf = JSON.parse(fs.readFileSync(path.join(cfg.outDir, 'config.json'), 'utf8'));
    assert.equal(hf.torch_dtype, 'bfloat16');
    assert.equal(hf.num_key_value_heads, 2);
    assert.equal(hf.tie_word_embeddings, true);
    const gen = JSON.parse(fs.readFileSync(path.join(cfg.outDir, 'generation_config.json'), 'utf8'));

    const tok = Tokenizer.fromDir(cfg.outDir);
    assert.equal(tok.vocabSize, 400);
    assert.equal(tok.bosTokenId, hf.bos_token_id);
    assert.deepEqual(tok.eosTokenIds.slice(0, 1), [hf.eos_token_id]);
    assert.equal(gen.eos_token_id, hf.eos_token_id);
    assert.ok(tok.hasChatTemplate);
    // The base model's template: one space before each message's content, so answers tokenize as in running text.
    const chat = [{ role: 'user' as const, content: 'Is Mary a female name?' }, { role: 'assistant' as const, content: 'female' }];
    assert.equal(tok.applyChatTemplate(chat, { addGenerationPrompt: false }), '<|user|>\n Is Mary a female name?</s>\n<|assistant|>\n female</s>\n');
    assert.equal(tok.applyChatTemplate(chat.slice(0, 1), { addGenerationPrompt: true }), '<|user|>\n Is Mary a female name?</s>\n<|assistant|>\n ');
    assert.equal(tok.decode(tok.encode('whale: a large sea mammal.', { addSpecialTokens: false })), 'whale: a large sea mammal.');

    const model = await loadModel(cfg.outDir);
    try {
      assert.equal(model.numParameters(), r.numParameters);
      // The saved (bf16) weights reproduce the reported validation loss, so they are the trained ones.
      const validStream = tokenizeDocuments(tok, splitDocuments(fs.readFileSync(cfg.validFile, 'utf8')));
      const n = Math.floor(validStream.length / cfg.seqLen);
      const loss = streamLoss(model, validStream, cfg.seqLen, n, 8);
      assert.ok(Math.abs(loss - r.finalValidLoss) < 0.02, `reloaded valid loss ${loss} vs ${r.finalValidLoss}`);
      assert.ok(loss < Math.log(400), `trained loss ${loss} below uniform ${Math.log(400)}`);
    } finally {
      model.dispose();
    }
    const log = fs.readFileSync(path.join(cfg.outDir, 'training_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(log.filter((x) => x.type === 'train').map((x) => x.step), [1, 2, 3]);
    assert.deepEqual(log.filter((x) => x.type === 'eval').map((x) => x.step), [2, 3]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('runPretrain --resume continues a stopped run with the same losses as an uninterrupted one', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-pretrain-'));
  try {
    const full = await runPretrain(tinyConfig(path.join(dir), { steps: 4, sampleTokens: 0, runDir: path.join(dir, 'a'), outDir: path.join(dir, 'ma') }), { log: () => {} });
    // Second run: stop after the checkpoint at step 2 (abort during step 2), then resume.
    const ac = new AbortController();
    const lines: string[] = [];
    const cfgB = tinyConfig(dir, { steps: 4, sampleTokens: 0, runDir: path.join(dir, 'b'), outDir: path.join(dir, 'mb') });
    const first = await runPretrain(cfgB, {
      signal: ac.signal,
      log: (l) => {
        lines.push(l);
        if (l.startsWith('step 2/4 | loss')) ac.abort();
      },
    });
    assert.equal(first.stopReason, 'interrupted');
    assert.equal(first.train.step, 2);
    assert.equal(first.outDir, undefined);
    const resumed = await runPretrain({ ...cfgB, resume: true }, { log: () => {} });
    assert.equal(resumed.train.resumedFrom, 2);
    const losses = (r: typeof full) => r.train.log.flatMap((x) => (x.type === 'train' ? [x.loss] : []));
    assert.deepEqual(losses(resumed), losses(full));
    assert.equal(resumed.finalValidLoss, full.finalValidLoss);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
