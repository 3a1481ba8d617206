import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  findLatestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
  type CheckpointData,
} from '../../src/train/checkpoint.ts';

function data(step: number): CheckpointData {
  const f = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i + k + step) / 3);
  return {
    step,
    params: new Map([
      ['a.weight', { dtype: 'F32' as const, shape: [2, 3], data: f(6, 1) }],
      ['a.bias', { dtype: 'F32' as const, shape: [2], data: f(2, 2) }],
    ]),
    optimizer: {
      step,
      m: new Map([['a.weight', { shape: [2, 3], data: f(6, 3) }], ['a.bias', { shape: [2], data: f(2, 4) }]]),
      v: new Map([['a.weight', { shape: [2, 3], data: f(6, 5) }], ['a.bias', { shape: [2], data: f(2, 6) }]]),
    },
    rngState: [1, 2, 3, step],
    dataState: { file: 'x.jsonl', offset: step * 10 },
    log: [{ type: 'train', step, loss: 1 / step, lr: 0.1, gradNorm: 1, tokens: 8, elapsedSec: 1, tokensPerSec: 8 }],
  };
}

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'mor-ckpt-'));

test('save/load round-trips every field exactly; keeps the newest K', async () => {
  const dir = tmp();
  for (const s of [2, 4, 6, 8]) await saveCheckpoint(dir, data(s), 2);
  assert.deepEqual(listCheckpoints(dir), [6, 8]);
  assert.equal(fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim(), 'checkpoint-8');
  const got = await loadLatestCheckpoint(dir);
  assert.equal(got?.path, path.join(dir, 'checkpoint-8'));
  const want = data(8);
  assert.equal(got!.data.step, 8);
  assert.deepEqual(got!.data.params, want.params);
  assert.deepEqual(got!.data.optimizer, want.optimizer);
  assert.deepEqual(got!.data.rngState, want.rngState);
  assert.deepEqual(got!.data.dataState, want.dataState);
  assert.deepEqual(got!.data.log, want.log);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a crash while writing never becomes the latest checkpoint', async () => {
  const dir = tmp();
  await saveCheckpoint(dir, data(4));
  await saveCheckpoint(dir, data(8));

  // 1. A save that dies half-way (the optimizer file is invalid, so the writer throws).
  const broken = data(12);
  broken.optimizer.m.set('a.weight', { shape: [2, 3], data: new Float32Array(2) });
  await assert.rejects(saveCheckpoint(dir, broken));
  assert.ok(fs.existsSync(path.join(dir, 'checkpoint-12.tmp')), 'the half-written directory stays as .tmp');
  assert.ok(!fs.existsSync(path.join(dir, 'checkpoint-12')));
  assert.equal((await loadLatestCheckpoint(dir))?.data.step, 8);

  // 2. A killed writer: a .tmp directory with a truncated file of a later step.
  fs.mkdirSync(path.join(dir, 'checkpoint-16.tmp'));
  const good = fs.readFileSync(path.join(dir, 'checkpoint-8', 'params.safetensors'));
  fs.writeFileSync(path.join(dir, 'checkpoint-16.tmp', 'params.safetensors'), good.subarray(0, 20));
  assert.equal((await loadLatestCheckpoint(dir))?.data.step, 8);

  // 3. Even a damaged directory named as latest falls back to the newest one that loads.
  fs.mkdirSync(path.join(dir, 'checkpoint-20'));
  fs.writeFileSync(path.join(dir, 'checkpoint-20', 'params.safetensors'), good.subarray(0, 20));
  fs.copyFileSync(path.join(dir, 'checkpoint-8', 'trainer_state.json'), path.join(dir, 'checkpoint-20', 'trainer_state.json'));
  fs.writeFileSync(path.join(dir, 'latest'), 'checkpoint-20\n');
  await assert.rejects(loadCheckpoint(path.join(dir, 'checkpoint-20')));
  assert.equal((await loadLatestCheckpoint(dir))?.data.step, 8);

  // The next successful save clears the .tmp leftovers.
  await saveCheckpoint(dir, data(24), 10);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
  assert.equal((await loadLatestCheckpoint(dir))?.data.step, 24);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('no checkpoint: undefined; a bad state file is a one-line error naming it', async () => {
  const dir = tmp();
  assert.equal(await loadLatestCheckpoint(dir), undefined);
  fs.mkdirSync(path.join(dir, 'checkpoint-3'));
  fs.writeFileSync(path.join(dir, 'checkpoint-3', 'trainer_state.json'), '{"format":1,');
  await assert.rejects(loadCheckpoint(path.join(dir, 'checkpoint-3')), /checkpoint-3\/trainer_state\.json: cannot read checkpoint state/);
  assert.equal(await loadLatestCheckpoint(dir), undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('findLatestCheckpoint skips damaged checkpoints (non-finite tensor, missing state) newest first and reports why', async () => {
  const dir = tmp();
  for (const s of [2, 4, 6]) await saveCheckpoint(dir, data(s), 5);
  // checkpoint-6 (the one `latest` names): a NaN in the parameters; checkpoint-4: no state file.
  const bad = data(6);
  (bad.params.get('a.weight')!.data as Float32Array)[3] = NaN;
  await saveCheckpoint(dir, bad, 5);
  fs.rmSync(path.join(dir, 'checkpoint-4', 'trainer_state.json'));
  await assert.rejects(loadCheckpoint(path.join(dir, 'checkpoint-6')), /checkpoint-6\/params\.safetensors: tensor "a\.weight" has 1 non-finite value \(NaN\/Inf\) of 6$/);
  const { found, skipped } = await findLatestCheckpoint(dir);
  assert.equal(found?.path, path.join(dir, 'checkpoint-2'));
  assert.deepEqual(skipped.map((s) => path.basename(s.path)), ['checkpoint-6', 'checkpoint-4']);
  assert.match(skipped[0].reason, /non-finite/);
  assert.match(skipped[1].reason, /trainer_state\.json: cannot read checkpoint state/);
  assert.deepEqual(await findLatestCheckpoint(path.join(dir, 'absent')), { skipped: [] });
  fs.rmSync(dir, { recursive: true, force: true });
});
