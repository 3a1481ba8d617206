/**
 * Crash and interrupt tests with real child processes (test/fixtures/train/run_toy.ts):
 * kill -9 mid-run then resume, and SIGINT (the trainer saves and returns 'interrupted'; this
 * library-level script then exits 0 itself) then resume; both must end with the same parameters
 * and loss log as an uninterrupted run. The `mor train` CLI exits 130 / 143 instead: see
 * test/e2e/signals.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, '../fixtures/train/run_toy.ts');
const root = path.join(here, '../..');
const STEPS = 24;

interface RunOut { step: number; stopped: string; losses: number[]; params: Record<string, number[]> }
interface Child { code: number | null; signal: NodeJS.Signals | null; stdout: string }

/** Run the toy trainer; `onLine` may return a signal to send when a stdout line appears. */
function runChild(args: string[], onLine?: (line: string) => NodeJS.Signals | undefined): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: root,
      env: { ...process.env, MOR_QUIET: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        const sig = !sent ? onLine?.(l) : undefined;
        if (sig) {
          sent = true;
          child.kill(sig);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`child exited ${code}: ${stderr}`));
      else resolve({ code, signal, stdout });
    });
  });
}

const readOut = (f: string): RunOut => JSON.parse(fs.readFileSync(f, 'utf8')) as RunOut;

test('kill -9 mid-run, resume: final params and loss log equal the uninterrupted run; SIGINT saves and returns', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-crash-'));
  try {
    await runChild([path.join(dir, 'ref'), String(STEPS), path.join(dir, 'ref.json')]);
    const ref = readOut(path.join(dir, 'ref.json'));
    assert.equal(ref.losses.length, STEPS);

    // kill -9 after step 10 (checkpoints every 4 steps; 8 is complete, 12 not yet written).
    const killed = await runChild(
      [path.join(dir, 'k'), String(STEPS), path.join(dir, 'k.json'), 'fresh', '40'],
      (l) => (l === 'step 10' ? 'SIGKILL' : undefined),
    );
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(!fs.existsSync(path.join(dir, 'k.json')), 'the killed run must not have finished');
    const latest = fs.readFileSync(path.join(dir, 'k', 'latest'), 'utf8').trim();
    assert.match(latest, /^checkpoint-(8|12)$/);
    await runChild([path.join(dir, 'k'), String(STEPS), path.join(dir, 'k.json'), 'resume']);
    const resumed = readOut(path.join(dir, 'k.json'));
    assert.deepEqual(resumed.losses, ref.losses);
    assert.deepEqual(resumed.params, ref.params);

    // SIGINT: finish the current step, save a checkpoint there, exit cleanly.
    const interrupted = await runChild(
      [path.join(dir, 'i'), String(STEPS), path.join(dir, 'i.json'), 'fresh', '40'],
      (l) => (l === 'step 5' ? 'SIGINT' : undefined),
    );
    assert.equal(interrupted.code, 0);
    const stopped = readOut(path.join(dir, 'i.json'));
    assert.equal(stopped.stopped, 'interrupted');
    assert.ok(stopped.step >= 5 && stopped.step < STEPS);
    assert.equal(fs.readFileSync(path.join(dir, 'i', 'latest'), 'utf8').trim(), `checkpoint-${stopped.step}`);
    await runChild([path.join(dir, 'i'), String(STEPS), path.join(dir, 'i.json'), 'resume']);
    const after = readOut(path.join(dir, 'i.json'));
    assert.deepEqual(after.losses, ref.losses);
    assert.deepEqual(after.params, ref.params);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
