/**
 * Claims on experiment runs (src/experiment/runClaims.ts): a claim held by a live process is
 * respected, a claim whose process is gone is taken over, and two `mor experiment` processes on
 * one output folder (real child processes through bin/mor.js, verdict-smoke on a tiny random
 * checkpoint) split the runs: together they execute each planned run exactly once, and both
 * end with the complete report.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { claimedByOther, claimRun, releaseRun } from '../../src/experiment/runClaims.ts';
import { makeTinyCheckpoint } from '../../scripts/make-tiny-checkpoint.ts';
import { initBackend } from '../../src/backend/tf.ts';

await initBackend({ announce: false });

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-claims-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const bin = fileURLToPath(new URL('../../bin/mor.js', import.meta.url));

function sleeper(): ChildProcess {
  return spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
}

function claimOf(pid: number): string {
  return JSON.stringify({ pid, host: os.hostname(), since: new Date().toISOString() }) + '\n';
}

test('claimRun: own claim, a live other process holds, a dead one is taken over, release', async () => {
  const dir = path.join(root, 'unit', 'run-a');
  assert.equal(claimRun(dir), true);
  assert.equal(claimRun(dir), true, 'claiming again in the same process');
  assert.equal(claimedByOther(dir), false);
  releaseRun(dir);
  assert.equal(fs.existsSync(path.join(dir, 'claim.json')), false);

  const other = sleeper();
  try {
    fs.writeFileSync(path.join(dir, 'claim.json'), claimOf(other.pid!));
    assert.equal(claimedByOther(dir), true);
    assert.equal(claimRun(dir), false);
    releaseRun(dir); // not ours: stays
    assert.equal(fs.existsSync(path.join(dir, 'claim.json')), true);
  } finally {
    other.kill('SIGKILL');
    await new Promise((resolve) => other.once('exit', resolve));
  }
  assert.equal(claimedByOther(dir), false, 'its process is gone');
  assert.equal(claimRun(dir), true, 'stale claim taken over');
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'claim.json'), 'utf8')).pid, process.pid);
  releaseRun(dir);
});

interface Done { code: number | null; stdout: string; stderr: string }

function runMor(argv: string[]): Promise<Done> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...argv], { env: { ...process.env, MOR_QUIET: '1', MOR_BLAS_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('two mor experiment processes on one folder run each planned run once', async () => {
  const modelDir = path.join(root, 'model');
  await makeTinyCheckpoint(modelDir, { seed: 5 });
  const out = path.join(root, 'out');
  const args = ['experiment', '--config', 'experiments/verdict-smoke.yaml', '--model', modelDir, '--out', out];
  const [a, b] = await Promise.all([runMor(args), runMor(args)]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const summary = /(\d+) of (\d+) runs finished \((\d+) in this call\)/;
  const ma = summary.exec(a.stdout);
  const mb = summary.exec(b.stdout);
  assert.ok(ma && mb, `${a.stdout}\n${b.stdout}`);
  const planned = Number(ma[2]);
  assert.equal(Number(mb[2]), planned);
  assert.equal(Number(ma[1]), planned, 'process A ends with every run finished');
  assert.equal(Number(mb[1]), planned, 'process B ends with every run finished');
  assert.equal(Number(ma[3]) + Number(mb[3]), planned, `runs executed: ${ma[3]} + ${mb[3]} for ${planned} planned`);
  assert.ok(Number(ma[3]) > 0 && Number(mb[3]) > 0, 'both processes took work');
  const runDirs = fs.readdirSync(path.join(out, 'runs')).filter((d) => !d.startsWith('base-'));
  assert.equal(runDirs.length, planned);
  for (const d of runDirs) {
    assert.ok(fs.existsSync(path.join(out, 'runs', d, 'result.json')), d);
    assert.equal(fs.existsSync(path.join(out, 'runs', d, 'claim.json')), false, `${d}: claim released`);
  }
});
