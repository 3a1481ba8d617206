import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../src/errors.ts';
import { parsePretrainConfig } from '../../src/pretrain/config.ts';
import { splitDocuments } from '../../src/pretrain/packing.ts';

test('parsePretrainConfig: defaults are the bundled recipe; bad fields are UserErrors naming them', () => {
  const c = parsePretrainConfig({});
  assert.equal(c.outDir, 'models/base');
  assert.equal(c.architecture.vocabSize, 4096);
  assert.equal(c.seqLen, 128);
  assert.throws(() => parsePretrainConfig({ lr: -1 }), (e: unknown) => e instanceof UserError && /lr:/.test(e.message));
  assert.throws(() => parsePretrainConfig({ stpes: 3 }), /stpes: unknown key/);
  assert.throws(() => parsePretrainConfig({ architecture: { hiddenSize: 30, numAttentionHeads: 4 } }), /not divisible/);
  assert.throws(() => parsePretrainConfig({ seqLen: 1024 }), /exceeds maxPositionEmbeddings/);
});

test('scripts/pretrain-base.ts --dry-run-steps: model dir, README with the command, summary; bad flag exits 1', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-pretrain-script-'));
  try {
    const docs = (f: string, n: number): string => splitDocuments(fs.readFileSync(f, 'utf8')).slice(0, n).join('\n\n') + '\n';
    fs.writeFileSync(path.join(dir, 'train.txt'), docs('data/corpus/train.txt', 4));
    fs.writeFileSync(path.join(dir, 'valid.txt'), docs('data/corpus/valid.txt', 1));
    const out = path.join(dir, 'model');
    const args = [
      '--dry-run-steps', '2', '--out', out, '--run-dir', path.join(dir, 'run'),
      '--train-file', path.join(dir, 'train.txt'), '--valid-file', path.join(dir, 'valid.txt'),
      '--vocab', '300', '--hidden', '16', '--layers', '1', '--heads', '2', '--kv-heads', '1', '--intermediate', '32',
      '--seq-len', '16', '--batch-size', '2',
    ];
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/pretrain-base.ts', ...args], { env: { ...process.env, MOR_QUIET: '1' }, stdio: 'pipe' });
    const readme = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    assert.ok(readme.includes(`npm run pretrain:base -- ${args.join(' ')}`), 'README states the exact command');
    assert.match(readme, /\| updates \| 2 of 2 planned \(stopped: completed\)/);
    assert.match(readme, /Final validation loss \(all validation sequences\): \*\*\d+\.\d{4}\*\*/);
    const summary = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'summary.json'), 'utf8'));
    assert.equal(summary.tokensSeen, 2 * 2 * 16);
    assert.ok(fs.statSync(path.join(out, 'model.safetensors')).size > 0);

    // --check reloads the saved bf16 model: its validation loss matches the run's (f32) one.
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/pretrain-base.ts', '--check', '--run-dir', path.join(dir, 'run')], { env: { ...process.env, MOR_QUIET: '1' }, stdio: 'pipe' });
    const checked = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'summary.json'), 'utf8'));
    assert.ok(Math.abs(checked.savedValidLoss - summary.finalValidLoss) < 0.02, `${checked.savedValidLoss} vs ${summary.finalValidLoss}`);
    assert.equal(checked.samples.length, checked.config.samplePrompts.length);
    assert.match(fs.readFileSync(path.join(out, 'README.md'), 'utf8'), /Validation loss of the saved bf16 weights/);

    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/pretrain-base.ts', '--steps', 'x'], { env: { ...process.env, MOR_QUIET: '1' }, encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^error: --steps must be an integer \(got 'x'\)/m);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
