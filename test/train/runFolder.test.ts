/**
 * The run-folder policy (src/train/runFolder.ts) through runTraining: a non-empty folder is
 * refused unless --resume / --overwrite, resume compares the stored config, refusals change no
 * byte, and a randomized sequence of train / kill / resume-with-changes / train-again on one folder
 * only ever ends in a bit-exact continuation or a refusal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { UserError } from '../../src/errors.ts';
import { makeTinySetup } from '../fixtures/train/tinyLlama.ts';
import { parseTrainConfig, type TrainConfig, type TrainConfigInput } from '../../src/train/config.ts';
import { runTraining, type RunTrainingResult } from '../../src/train/run.ts';
import { ProgressReporter } from '../../src/train/progress.ts';
import { diffConfigs } from '../../src/train/runFolder.ts';
import type { TrainRecord } from '../../src/train/metrics.ts';
import { Rng } from '../../src/util/rng.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-runfolder-'));
test.after(() => fs.rmSync(root, { recursive: true, force: true }));
const setup = await makeTinySetup(root);

/** A small LoRA run; a constant schedule so that "more steps" continues bit-exactly. */
function cfg(outDir: string, over: Partial<TrainConfigInput> = {}): TrainConfig {
  return parseTrainConfig({
    model: setup.modelDir,
    adapter: { kind: 'lora', r: 2, targetModules: ['q_proj', 'v_proj'] },
    data: [{ path: setup.shout }, { path: setup.reverse }],
    maxLength: 24, batchSize: 2, steps: 6, lr: 0.02, schedule: 'constant', seed: 1,
    outDir, checkpointEvery: 2, logEvery: 1,
    ...over,
  });
}

class Killed extends Error {}

/** Progress that stays quiet and, with `killAt`, throws after that update (a crash before its checkpoint). */
const quiet = (killAt?: number) => (total: number): ProgressReporter =>
  new (class extends ProgressReporter {
    override step(r: TrainRecord): void {
      super.step(r);
      if (r.step === killAt) throw new Killed(`killed after step ${r.step}`);
    }
  })({ total, stream: new Writable({ write: (_c, _e, cb) => cb() }), tty: false });

type Outcome = { kind: 'ok'; result: RunTrainingResult; lines: string[] } | { kind: 'refused'; message: string } | { kind: 'killed' };

async function attempt(config: TrainConfig, o: { resume?: boolean; overwrite?: boolean; killAt?: number } = {}): Promise<Outcome> {
  const lines: string[] = [];
  try {
    const result = await runTraining(config, { resume: o.resume, overwrite: o.overwrite, progress: quiet(o.killAt), log: (l) => lines.push(l) });
    return { kind: 'ok', result, lines };
  } catch (e) {
    if (e instanceof Killed) return { kind: 'killed' };
    if (e instanceof UserError) return { kind: 'refused', message: e.message };
    throw e;
  }
}

/** Every file under `dir`: relative path -> bytes. */
function snapshot(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.set(path.relative(dir, path.join(e.parentPath, e.name)), fs.readFileSync(path.join(e.parentPath, e.name)));
  }
  return out;
}

function assertUnchanged(before: Map<string, Buffer>, dir: string, what: string): void {
  const after = snapshot(dir);
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), `${what}: files added or removed`);
  for (const [f, b] of before) assert.ok(after.get(f)!.equals(b), `${what}: ${f} changed`);
}

const losses = (r: RunTrainingResult): number[] => r.log.filter((x): x is TrainRecord => x.type === 'train').map((x) => x.loss);
const adapterBytes = (dir: string): Buffer => fs.readFileSync(path.join(dir, 'adapter', 'adapter_model.safetensors'));

test('a non-empty run folder is refused without --resume / --overwrite; --overwrite replaces the run without leftovers', async () => {
  const dir = path.join(root, 'policy');
  const first = await attempt(cfg(dir));
  assert.equal(first.kind, 'ok');
  const before = snapshot(dir);
  const again = await attempt(cfg(dir, { lr: 0.01 }));
  assert.equal(again.kind, 'refused');
  assert.match((again as { message: string }).message, /policy: the run folder is not empty \(adapter\/, checkpoints\/, loss\.svg, metrics\.jsonl, \.\.\. \(\d+ entries\)\); continue that run with --resume, replace it with --overwrite/);
  assertUnchanged(before, dir, 'refused fresh run');

  const both = await attempt(cfg(dir), { resume: true, overwrite: true });
  assert.equal(both.kind, 'refused');
  assertUnchanged(before, dir, 'refused --resume --overwrite');

  // --overwrite with a shorter run and rarer checkpoints: none of the old ones remain beside the new.
  const over = await attempt(cfg(dir, { steps: 3, checkpointEvery: 3, lr: 0.01 }), { overwrite: true });
  assert.equal(over.kind, 'ok');
  assert.deepEqual(fs.readdirSync(path.join(dir, 'checkpoints')).sort(), ['checkpoint-3', 'latest']);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'train_config.json'), 'utf8')).lr, 0.01);

  // --overwrite never deletes what mor train did not write.
  fs.writeFileSync(path.join(dir, 'my-notes.md'), 'mine');
  const snap = snapshot(dir);
  const foreign = await attempt(cfg(dir), { overwrite: true });
  assert.equal(foreign.kind, 'refused');
  assert.match((foreign as { message: string }).message, /^--overwrite: .* also holds my-notes\.md, which mor train did not write/);
  assertUnchanged(snap, dir, 'refused --overwrite');
});

test('--resume refuses config changes that alter training (naming them) before writing; allows more steps and says where it resumed', async () => {
  const dir = path.join(root, 'resume');
  assert.equal((await attempt(cfg(dir), { killAt: 5 })).kind, 'killed'); // checkpoints 2 and 4
  const before = snapshot(dir);
  for (const [over, re] of [
    [{ lr: 0.03 }, /lr 0\.02 -> 0\.03/],
    [{ seed: 2, maxLength: 20 }, /maxLength 24 -> 20; seed 1 -> 2/],
    [{ adapter: { kind: 'mor', r: 2, numExperts: 2, targetModules: ['q_proj', 'v_proj'] } }, /adapter\.kind "lora" -> "mor"; .*adapter\.numExperts unset -> 2/],
    [{ adapter: { kind: 'lora', r: 3, targetModules: ['q_proj', 'v_proj'] } }, /\(adapter\.r 2 -> 3\)/],
    [{ data: [{ path: setup.shout }] }, /data \[/],
  ] as [Partial<TrainConfigInput>, RegExp][]) {
    const r = await attempt(cfg(dir, over), { resume: true });
    assert.equal(r.kind, 'refused', JSON.stringify(over));
    const msg = (r as { message: string }).message;
    assert.match(msg, /^--resume: .*resume was trained with another config \(/);
    assert.match(msg, re);
    assert.match(msg, /these change the training/);
    assertUnchanged(before, dir, `refused resume ${JSON.stringify(over)}`);
  }
  // Fewer steps than the checkpoint already made: refused, nothing written.
  const short = await attempt(cfg(dir, { steps: 3 }), { resume: true });
  assert.equal(short.kind, 'refused');
  assert.match((short as { message: string }).message, /checkpoint-4 is at step 4, beyond the 3 updates of this config/);
  assertUnchanged(before, dir, 'refused short resume');

  // Declared safe: more steps and other logging. Resumes from step 4, says so.
  const ok = await attempt(cfg(dir, { steps: 8, logEvery: 2 }), { resume: true });
  assert.equal(ok.kind, 'ok');
  const { result, lines } = ok as { result: RunTrainingResult; lines: string[] };
  assert.equal(result.resumedFrom, 4);
  assert.equal(result.step, 8);
  assert.ok(lines.some((l) => new RegExp(`^resuming from .*checkpoint-4 \\(step 4 of 8\\); changed: steps 6 -> 8; logEvery 1 -> 2$`).test(l)), lines.join('\n'));
  const ref = await attempt(cfg(path.join(root, 'resume-ref'), { steps: 8 }));
  assert.equal(ref.kind, 'ok');
  assert.deepEqual(losses(result), losses((ref as { result: RunTrainingResult }).result));
  assert.ok(adapterBytes(dir).equals(adapterBytes(path.join(root, 'resume-ref'))));
});

test('--resume after the training data changed on disk (same path): refused before anything is written', async () => {
  const dir = path.join(root, 'data-changed');
  const data = path.join(root, 'shout-copy.jsonl');
  fs.copyFileSync(setup.shout, data);
  const c = cfg(dir, { data: [{ path: data }] });
  assert.equal((await attempt(c, { killAt: 3 })).kind, 'killed');
  fs.appendFileSync(data, fs.readFileSync(setup.reverse));
  const before = snapshot(dir);
  const r = await attempt(c, { resume: true });
  assert.equal(r.kind, 'refused');
  assert.match((r as { message: string }).message, /other training data or data options \(data fingerprint differs\)/);
  assertUnchanged(before, dir, 'refused resume after a data change');
});

test('--resume skips a damaged newest checkpoint with a warning naming it', async () => {
  const dir = path.join(root, 'damaged');
  assert.equal((await attempt(cfg(dir), { killAt: 5 })).kind, 'killed');
  const p = path.join(dir, 'checkpoints', 'checkpoint-4', 'params.safetensors');
  const bytes = fs.readFileSync(p);
  fs.writeFileSync(p, bytes.subarray(0, bytes.length - 5)); // truncated
  const ok = await attempt(cfg(dir), { resume: true });
  assert.equal(ok.kind, 'ok');
  const { result, lines } = ok as { result: RunTrainingResult; lines: string[] };
  assert.equal(result.resumedFrom, 2);
  assert.ok(lines.some((l) => /^warning: skipped damaged checkpoint .*checkpoint-4 \(.*params\.safetensors/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^resuming from .*checkpoint-2 \(step 2 of 6\)$/.test(l)), lines.join('\n'));
});

test('the audit case: a finished run, a new run killed before its first checkpoint, then --resume: refused, not the old run continued', async () => {
  const dir = path.join(root, 'audit');
  assert.equal((await attempt(cfg(dir))).kind, 'ok');
  assert.equal((await attempt(cfg(dir, { lr: 0.05 }), { overwrite: true, killAt: 1 })).kind, 'killed');
  const before = snapshot(dir);
  const r = await attempt(cfg(dir, { lr: 0.05 }), { resume: true });
  assert.equal(r.kind, 'refused');
  assert.match((r as { message: string }).message, /no complete checkpoint to resume from/);
  assertUnchanged(before, dir, 'refused resume');
});

test('diffConfigs: key order does not matter; safe keys are marked', () => {
  const a = { lr: 1, adapter: { kind: 'lora', r: 2 }, steps: 5 };
  const b = { adapter: { r: 2, kind: 'lora' }, lr: 1, steps: 9 };
  assert.deepEqual(diffConfigs(a, b), [{ key: 'steps', from: 5, to: 9, safe: true }]);
  assert.deepEqual(diffConfigs({ adapter: { r: 2 }, evalData: [{ path: 'a' }] }, { adapter: { r: 3 }, evalData: [{ path: 'b' }] }), [
    { key: 'adapter.r', from: 2, to: 3, safe: false },
    { key: 'evalData', from: [{ path: 'a' }], to: [{ path: 'b' }], safe: true },
  ]);
});

test('randomized run-folder sequences: every outcome is a bit-exact continuation or a refusal that changes nothing', async () => {
  const refs = new Map<string, { losses: number[]; adapter: Buffer }>();
  const reference = async (c: TrainConfig): Promise<{ losses: number[]; adapter: Buffer }> => {
    const key = JSON.stringify({ ...c, outDir: '', logEvery: 0, checkpointEvery: 0 });
    if (!refs.has(key)) {
      const d = path.join(root, `ref-${refs.size}`);
      const r = await attempt({ ...c, outDir: d });
      assert.equal(r.kind, 'ok');
      refs.set(key, { losses: losses((r as { result: RunTrainingResult }).result), adapter: adapterBytes(d) });
    }
    return refs.get(key)!;
  };
  const tensorsBefore = tf.memory().numTensors;
  let continued = 0;
  let refused = 0;
  for (const seed of [1, 2]) {
    const rng = new Rng(seed);
    const pick = <T>(xs: T[]): T => xs[rng.nextU32() % xs.length];
    const dir = path.join(root, `random-${seed}`);
    for (let i = 0; i < 14; i++) {
      const action = pick(['train', 'overwrite', 'resume', 'resume', 'resume']);
      const change = pick<Partial<TrainConfigInput>>([{}, {}, {}, { steps: 8 }, { logEvery: 3 }, { lr: 0.03 }, { seed: 2 }, { adapter: { kind: 'lora', r: 3, targetModules: ['q_proj', 'v_proj'] } }]);
      const killAt = pick([undefined, 1, 3, 5, 7]);
      const config = cfg(dir, change);
      const before = snapshot(dir);
      const what = `seed ${seed} step ${i}: ${action} ${JSON.stringify(change)} kill ${killAt}`;
      const r = await attempt(config, { resume: action === 'resume', overwrite: action === 'overwrite', killAt });
      if (process.env.MOR_TEST_VERBOSE) console.log(what, '->', r.kind, r.kind === 'refused' ? r.message : r.kind === 'ok' ? r.result.resumedFrom : '');
      if (r.kind === 'refused') {
        refused++;
        assertUnchanged(before, dir, what);
      } else if (r.kind === 'ok') {
        const ref = await reference(config);
        assert.deepEqual(losses(r.result), ref.losses, `${what}: losses differ from an uninterrupted run of this config`);
        assert.ok(adapterBytes(dir).equals(ref.adapter), `${what}: adapter differs from an uninterrupted run`);
        if (r.result.resumedFrom > 0) continued++;
      }
    }
  }
  assert.ok(refused > 0 && continued > 0, `both kinds of outcome occur (refused ${refused}, continued ${continued})`);
  assert.equal(tf.memory().numTensors, tensorsBefore);
});
