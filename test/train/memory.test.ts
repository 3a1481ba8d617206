/**
 * The size policy in training: `gradientCheckpointing` and `lossChunkSize` config keys and
 * flags, 'auto' resolved by the estimate, and a run that cannot fit refused with one line
 * before any weight is read (the model directory below has a config.json and no weights).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend } from '../../src/backend/tf.ts';
import { makeTinySetup } from '../fixtures/train/tinyLlama.ts';
import { parseTrainConfig } from '../../src/train/config.ts';
import { sizeTrainingRun } from '../../src/train/memory.ts';
import { runTraining } from '../../src/train/run.ts';
import { loadConfig } from '../../src/models/load.ts';
import { makeConfig, toHfConfig } from '../../src/models/llama/config.ts';
import { main } from '../../src/cli/main.ts';
import { UserError } from '../../src/errors.ts';

await initBackend({ announce: false });

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-memory-'));
const { modelDir, shout } = await makeTinySetup(root);
test.after(() => fs.rmSync(root, { recursive: true, force: true }));

const base = { model: modelDir, adapter: { kind: 'mor', r: 4, numExperts: 2 }, data: [{ path: shout }], steps: 2, outDir: path.join(root, 'out') };

test('config: gradientCheckpointing defaults to auto, takes true/false/a layer count; lossChunkSize a non-negative integer', () => {
  assert.equal(parseTrainConfig(base).gradientCheckpointing, 'auto');
  assert.equal(parseTrainConfig({ ...base, gradientCheckpointing: true }).gradientCheckpointing, true);
  assert.equal(parseTrainConfig({ ...base, gradientCheckpointing: 3 }).gradientCheckpointing, 3);
  assert.throws(() => parseTrainConfig({ ...base, gradientCheckpointing: -1 }, 'c.yaml'), /^UserError: c\.yaml: gradientCheckpointing: /);
  assert.throws(() => parseTrainConfig({ ...base, gradientCheckpointing: 1.5 }, 'c.yaml'), /^UserError: c\.yaml: gradientCheckpointing: /);
  assert.equal(parseTrainConfig({ ...base, lossChunkSize: 0 }).lossChunkSize, 0);
  assert.throws(() => parseTrainConfig({ ...base, gradientCheckpointing: 'yes' }, 'c.yaml'), /^UserError: c\.yaml: gradientCheckpointing: /);
  assert.throws(() => parseTrainConfig({ ...base, lossChunkSize: -1 }, 'c.yaml'), /c\.yaml: lossChunkSize: /);
});

test('auto: off for the tiny model, the fewest last layers that fit where the activations would not; a forced value is kept', () => {
  const tiny = loadConfig(modelDir);
  assert.equal(sizeTrainingRun(parseTrainConfig(base), tiny).gradientCheckpointing, false);
  assert.equal(sizeTrainingRun(parseTrainConfig({ ...base, gradientCheckpointing: true }), tiny).gradientCheckpointing, true);
  // 16 layers of hidden 1024 at 4 x 512 tokens: ~20 GiB of activations without checkpointing, ~2 with.
  const mid = makeConfig({ vocabSize: 32000, hiddenSize: 1024, intermediateSize: 2816, numHiddenLayers: 16, numAttentionHeads: 16 });
  const big = parseTrainConfig({ ...base, batchSize: 4, maxLength: 512 });
  const placement = { weightsOffHeap: true, fileDtypeBytes: 2 };
  const chosen = sizeTrainingRun(big, mid, placement).gradientCheckpointing;
  assert.ok(typeof chosen === 'number' && chosen > 0 && chosen < 16, `auto chose ${chosen}`);
  // The fewest that fit: one layer fewer is refused by the same policy.
  assert.throws(() => sizeTrainingRun(parseTrainConfig({ ...big, gradientCheckpointing: chosen - 1 }), mid, placement), UserError);
  assert.equal(sizeTrainingRun(parseTrainConfig({ ...big, gradientCheckpointing: chosen }), mid, placement).gradientCheckpointing, chosen);
});

/** A model directory with the tiny model's tokenizer and a Qwen2.5-0.5B-shaped config.json, no weights. */
function bigModelDir(): string {
  const dir = path.join(root, 'qwen-shaped');
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(modelDir)) if (!f.endsWith('.safetensors') && f !== 'config.json') fs.copyFileSync(path.join(modelDir, f), path.join(dir, f));
  const c = makeConfig({ modelType: 'qwen2', vocabSize: 151936, hiddenSize: 896, numHiddenLayers: 24, intermediateSize: 4864, numAttentionHeads: 14, numKeyValueHeads: 2, tieWordEmbeddings: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHfConfig(c)));
  return dir;
}

test('runTraining refuses a run that cannot fit, with one line, before reading weights or writing outputs', async () => {
  const dir = bigModelDir();
  const outDir = path.join(root, 'refused');
  const config = parseTrainConfig({ ...base, model: dir, outDir, batchSize: 4, maxLength: 512, gradientCheckpointing: false });
  await assert.rejects(runTraining(config, { progress: false, log: () => {} }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^this run needs about [\d.]+ GiB of tensor memory but the wasm heap holds 3\.4 GiB .*gradientCheckpointing: true/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  assert.ok(!fs.existsSync(outDir), 'nothing written');
});

test('mor train: --gradient-checkpointing takes on|off|auto|N, anything else is one line', async () => {
  const err: string[] = [];
  const code = await main(['train', '--model', modelDir, '--data', shout, '--gradient-checkpointing', 'some'], { stdout: () => {}, stderr: (s: string) => err.push(s) });
  assert.equal(code, 1);
  assert.match(err.join(''), /--gradient-checkpointing must be on, off, auto or a number of layers \(got "some"\)/);
});

test('mor train flags: --gradient-checkpointing on|off|auto and --loss-chunk-size reach the config', async () => {
  const dir = bigModelDir();
  const err: string[] = [];
  const code = await main(
    ['train', '--model', dir, '--adapter', '{"kind":"mor","r":4,"numExperts":2}', '--data', shout, '--steps', '1', '--out-dir', path.join(root, 'cli'),
      '--batch-size', '4', '--max-length', '512', '--gradient-checkpointing', 'off', '--loss-chunk-size', '0'],
    { stdout: () => {}, stderr: (s: string) => err.push(s) },
  );
  assert.equal(code, 1);
  const text = err.join('');
  assert.match(text, /gradientCheckpointing: true/, text);
  assert.match(text, /a lossChunkSize above 0/, text);
});

test('runTraining with checkpointing and a small loss chunk logs the same losses as without', async () => {
  const losses = async (extra: Record<string, unknown>, name: string): Promise<number[]> => {
    const config = parseTrainConfig({ ...base, ...extra, adapter: { kind: 'mor', r: 4, numExperts: 2, dropout: 0.1, routerMode: 'balanced' }, steps: 3, logEvery: 1, batchSize: 2, maxLength: 32, outDir: path.join(root, name) });
    const r = await runTraining(config, { progress: false, log: () => {} });
    return r.log.flatMap((x) => (x.type === 'train' ? [x.loss] : []));
  };
  const plain = await losses({ gradientCheckpointing: false, lossChunkSize: 0 }, 'plain');
  const both = await losses({ gradientCheckpointing: true, lossChunkSize: 5 }, 'both');
  assert.equal(both.length, 3);
  both.forEach((l, i) => assert.ok(Math.abs(l - plain[i]) <= 1e-5 * Math.abs(plain[i]), `step ${i + 1}: ${l} vs ${plain[i]}`));
});
