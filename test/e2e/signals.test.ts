/**
 * Issue 14, group 8 (signals): `mor train` stopped by Ctrl-C (SIGINT) or SIGTERM after its
 * first step, as a real child process through bin/mor.js. It must save a checkpoint, say in one
 * line what was saved and how to continue, and exit 130 / 143 (not 0: `mor train && mor eval`
 * must not go on without an adapter); the checkpoint loads, and `--resume` continues from it to
 * an adapter that `mor eval` accepts.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../../src/backend/tf.ts';
import { main } from '../../src/cli/main.ts';
import { loadLatestCheckpoint } from '../../src/train/checkpoint.ts';
import { countNonFinite } from '../../src/io/finite.ts';
import { makeE2eSetup } from '../fixtures/e2e/setup.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-e2e-sig-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const setup = await makeE2eSetup(root);
const bin = fileURLToPath(new URL('../../bin/mor.js', import.meta.url));
const STEPS = 400;
const LORA = '{"kind":"lora","r":2,"targetModules":["q_proj","v_proj"]}';
const trainArgs = (out: string, steps: number): string[] =>
  ['train', '--model', setup.modelDir, '--adapter', LORA, '--data', setup.train, '--steps', String(steps), '--batch-size', '2', '--out-dir', out];

interface Child { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Run `mor` as a child; send `sig` once stderr shows the line of step 1. */
function runMor(argv: string[], sig: NodeJS.Signals): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...argv], { env: { ...process.env, MOR_QUIET: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && /^step 1\/\d+ /m.test(stderr)) {
        sent = true;
        child.kill(sig);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`mor train stopped by ${sig} after its first step: saves, says so in one line, exits ${code}; --resume continues`, async () => {
    const out = path.join(root, sig);
    const child = await runMor(trainArgs(out, STEPS), sig);
    assert.equal(child.signal, null, 'the process exits by itself (after saving), not killed by the signal');
    assert.equal(child.code, code, child.stderr);
    assert.equal(child.stdout, '', 'no "done" summary on stdout');
    const lines = child.stderr.split('\n').filter((l) => l !== '');
    assert.ok(!lines.some((l) => l.startsWith('error: ')), child.stderr);
    const last = lines[lines.length - 1];
    const m = new RegExp(
      `^interrupted by ${sig} at step (\\d+)/${STEPS}: saved checkpoint (\\S+) and ${out}/metrics\\.jsonl \\(no adapter yet\\); ` +
        'to continue, run the same command with --resume$',
    ).exec(last);
    assert.ok(m, `the last line says what was saved and how to continue, got:\n${child.stderr}`);
    const step = Number(m[1]);
    assert.ok(step >= 1 && step < STEPS, `stopped at step ${step}`);
    assert.equal(m[2], path.join(out, 'checkpoints', `checkpoint-${step}`));
    assert.ok(!fs.existsSync(path.join(out, 'adapter')), 'no adapter for an unfinished run');

    // The checkpoint loads: the step, every LoRA tensor, finite values.
    const ckpt = await loadLatestCheckpoint(path.join(out, 'checkpoints'));
    assert.ok(ckpt, 'a complete checkpoint');
    assert.equal(ckpt.path, m[2]);
    assert.equal(ckpt.data.step, step);
    assert.equal(ckpt.data.params.size, 2 * 2 * 2, 'lora_A and lora_B of q_proj and v_proj in 2 layers');
    for (const [name, t] of ckpt.data.params) assert.equal(countNonFinite(t.data as Float32Array), 0, name);

    // --resume continues from it (two more steps) and writes an adapter that mor eval accepts.
    let err = '';
    let stdout = '';
    const io = { stdout: (s: string) => { stdout += s; }, stderr: (s: string) => { err += s; } };
    const resumed = await main([...trainArgs(out, step + 2), '--resume'], io);
    assert.equal(resumed, 0, err);
    assert.match(err, new RegExp(`^resuming from ${m[2]} \\(step ${step} of ${step + 2}\\)`, 'm'));
    assert.match(stdout, new RegExp(`^done: step ${step + 2}/${step + 2}, loss `));
    const evaluated = await main(['eval', '--model', setup.modelDir, '--adapter', path.join(out, 'adapter'), '--data', setup.mc], { stdout: () => {}, stderr: (s) => { err += s; } });
    assert.equal(evaluated, 0, err);
  });
}
