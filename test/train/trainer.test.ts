import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { train, type ResumableIterator, type TrainOptions } from '../../src/train/trainer.ts';
import { UserError } from '../../src/errors.ts';
import type { TrainRecord } from '../../src/train/metrics.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import { ToyData, ToyMlp, paramsOf, type ToyBatch } from '../fixtures/train/toy.ts';
import { sampleMemory, type MemorySample } from '../fixtures/train/memory.ts';

await initBackend({ announce: false });

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'mor-trainer-'));
const losses = (log: { type: string }[]): number[] => log.filter((r): r is TrainRecord => r.type === 'train').map((r) => r.loss);

function options(model: ToyMlp, data: ResumableIterator<ToyBatch>, extra: Partial<TrainOptions<ToyBatch>> = {}): TrainOptions<ToyBatch> {
  return {
    params: model.trainableParameters(),
    lossFn: (b, ctx) => model.loss(b, ctx),
    data,
    steps: 12,
    schedule: { lr: 0.02, warmupSteps: 2, kind: 'cosine' },
    optimizer: { weightDecay: 0.01 },
    seed: 3,
    ...extra,
  };
}

/** A fixed dataset served in batches of `n` consecutive examples. */
class FixedData implements ResumableIterator<ToyBatch> {
  private pos = 0;
  constructor(private readonly src: ToyBatch[], private readonly n: number) {}
  next(): ToyBatch {
    const rows = this.src.slice(this.pos, this.pos + this.n);
    this.pos += this.n;
    const d = rows[0].d;
    const x = new Float32Array(this.n * d);
    rows.forEach((r, i) => x.set(r.x, i * d));
    return { x, y: Float32Array.from(rows.map((r) => r.y[0])), n: this.n, d };
  }
  getState(): unknown { return this.pos; }
  setState(s: unknown): void { this.pos = s as number; }
}

test('loss decreases on the toy regression', async () => {
  const model = new ToyMlp(4, 16, 1);
  const r = await train(options(model, new ToyData(4, 32, 1), { steps: 60, schedule: { lr: 0.03, kind: 'constant' } }));
  const l = losses(r.log);
  const first = l.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = l.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(last < 0.5 * first, `loss ${first} -> ${last}`);
  assert.equal(r.stopped, 'completed');
  model.dispose();
});

test('gradient accumulation over 2 micro-batches equals one batch twice as large', async () => {
  const gen = new ToyData(5, 1, 9);
  const examples = Array.from({ length: 64 }, () => gen.next());
  const a = new ToyMlp(5, 8, 2);
  const b = new ToyMlp(5, 8, 2);
  const ra = await train(options(a, new FixedData(examples, 8), { steps: 4, gradAccumulation: 1 }));
  const rb = await train(options(b, new FixedData(examples, 4), { steps: 4, gradAccumulation: 2 }));
  const pa = paramsOf(a);
  const pb = paramsOf(b);
  for (const k of Object.keys(pa)) {
    pa[k].forEach((v, i) => assert.ok(Math.abs(v - pb[k][i]) <= 1e-6, `${k}[${i}] ${v} vs ${pb[k][i]}`));
  }
  losses(ra.log).forEach((v, i) => assert.ok(Math.abs(v - losses(rb.log)[i]) < 1e-6));
  a.dispose();
  b.dispose();
});

test('same seed gives the same run; another seed changes the dropout masks', async () => {
  const run = async (seed: number): Promise<number[]> => {
    const m = new ToyMlp(4, 16, 1, 0.3);
    const r = await train(options(m, new ToyData(4, 8, 1), { steps: 6, seed }));
    m.dispose();
    return losses(r.log);
  };
  const a = await run(11);
  assert.deepEqual(await run(11), a);
  assert.notDeepEqual(await run(12), a);
});

test('auxiliary losses pushed to ctx.auxLosses are added to the loss', async () => {
  const m = new ToyMlp(4, 8, 1);
  const plain = await train(options(m, new ToyData(4, 8, 1), { steps: 1 }));
  m.dispose();
  const m2 = new ToyMlp(4, 8, 1);
  const before = tf.memory().numTensors;
  const withAux = await train(options(m2, new ToyData(4, 8, 1), {
    steps: 1,
    lossFn: (b, ctx) => {
      ctx.auxLosses.push(tf.keep(tf.scalar(0.25))); // kept, as adapters do: the trainer frees it
      return m2.loss(b, ctx);
    },
  }));
  assert.equal(tf.memory().numTensors, before);
  m2.dispose();
  assert.ok(Math.abs(losses(withAux.log)[0] - losses(plain.log)[0] - 0.25) < 1e-6);
});

test('resume from a checkpoint reproduces the uninterrupted run exactly', async () => {
  const dir = tmp();
  const full = new ToyMlp(6, 16, 1, 0.1);
  const ref = await train(options(full, new ToyData(6, 8, 2), { steps: 12, gradAccumulation: 2, maxGradNorm: 0.5 }));

  const first = new ToyMlp(6, 16, 1, 0.1);
  const ac = new AbortController();
  const part = await train(options(first, new ToyData(6, 8, 2), {
    steps: 12, gradAccumulation: 2, maxGradNorm: 0.5, checkpointDir: dir, checkpointEvery: 3, signal: ac.signal,
    onStep: (r) => { if (r.step === 7) ac.abort(); },
  }));
  assert.equal(part.stopped, 'interrupted');
  assert.equal(part.step, 7);
  assert.equal(fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim(), 'checkpoint-7');
  first.dispose();

  const second = new ToyMlp(6, 16, 99, 0.1); // different init: everything must come from the checkpoint
  const rest = await train(options(second, new ToyData(6, 8, 55), {
    steps: 12, gradAccumulation: 2, maxGradNorm: 0.5, checkpointDir: dir, checkpointEvery: 3, resume: true,
  }));
  assert.equal(rest.resumedFrom, 7);
  assert.deepEqual(losses(rest.log), losses(ref.log));
  assert.deepEqual(paramsOf(second), paramsOf(full));
  full.dispose();
  second.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('NaN loss stops with the step in the message, keeps the last good checkpoint, skips the update', async () => {
  const dir = tmp();
  const m = new ToyMlp(4, 8, 1);
  let atStep5: Record<string, number[]> | undefined;
  await assert.rejects(
    train(options(m, new ToyData(4, 8, 1, 5), {
      steps: 20, checkpointDir: dir, checkpointEvery: 4,
      onStep: (r) => { if (r.step === 5) atStep5 = paramsOf(m); },
    })),
    (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /diverged at step 6: loss is NaN/);
      assert.match(e.message, /checkpoint-4/);
      return true;
    },
  );
  assert.deepEqual(paramsOf(m), atStep5);
  assert.equal(fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim(), 'checkpoint-4');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['checkpoint-4', 'latest']);
  m.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('metrics JSONL: one record per logged step and per eval; rewritten on resume', async () => {
  const dir = tmp();
  const file = path.join(dir, 'metrics.jsonl');
  const m = new ToyMlp(4, 8, 1);
  const logged: string[] = [];
  const ac = new AbortController();
  await train(options(m, new ToyData(4, 8, 1), {
    steps: 10, logEvery: 2, evalEvery: 5, evalFn: (s) => ({ loss: s / 10 }), metricsFile: file,
    checkpointDir: path.join(dir, 'ck'), signal: ac.signal,
    onLog: (r) => logged.push(`${r.type}${r.step}`),
    onStep: (r) => { if (r.step === 6) ac.abort(); },
  }));
  assert.deepEqual(logged, ['train2', 'train4', 'eval5', 'train6']);
  fs.appendFileSync(file, '{"type":"train","step":7,"loss":1}\n'); // written after the checkpoint, then "crashed"
  await train(options(m, new ToyData(4, 8, 1), {
    steps: 10, logEvery: 2, evalEvery: 5, evalFn: (s) => ({ loss: s / 10 }), metricsFile: file,
    checkpointDir: path.join(dir, 'ck'), resume: true,
  }));
  const recs = readMetrics(file);
  assert.deepEqual(recs.map((r) => `${r.type}${r.step}`), ['train2', 'train4', 'eval5', 'train6', 'train8', 'train10', 'eval10']);
  const ev = recs.find((r) => r.type === 'eval' && r.step === 10);
  assert.deepEqual(ev?.type === 'eval' ? ev.metrics : undefined, { loss: 1 });
  m.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bad options and a resume without a checkpoint are user errors', async () => {
  const m = new ToyMlp(4, 8, 1);
  await assert.rejects(train(options(m, new ToyData(4, 8, 1), { steps: 0 })), /steps must be a positive integer/);
  const dir = tmp();
  await assert.rejects(train(options(m, new ToyData(4, 8, 1), { checkpointDir: dir, resume: true })), /no complete checkpoint to resume from/);
  m.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('tensor count flat and RSS steady over 200 steps (accumulation, clipping, dropout, checkpoints)', async () => {
  const dir = tmp();
  const m = new ToyMlp(8, 32, 1, 0.1);
  const before = tf.memory().numTensors;
  const counts = new Map<number, number>();
  const mem = new Map<number, MemorySample>();
  await train(options(m, new ToyData(8, 16, 1), {
    steps: 200, gradAccumulation: 2, maxGradNorm: 0.1, checkpointDir: dir, checkpointEvery: 50,
    onStep: (r) => {
      if (r.step % 25 === 0) {
        counts.set(r.step, tf.memory().numTensors);
        mem.set(r.step, sampleMemory());
      }
    },
  }));
  assert.equal(tf.memory().numTensors, before);
  assert.equal(counts.get(200), counts.get(25));
  const heapGrow = mem.get(200)!.heapMb - mem.get(50)!.heapMb;
  const rssGrow = mem.get(200)!.rssMb - mem.get(50)!.rssMb;
  assert.ok(heapGrow < 4, `heap after GC grew ${heapGrow.toFixed(2)} MiB between steps 50 and 200`);
  assert.ok(rssGrow < 32, `RSS grew ${rssGrow.toFixed(1)} MiB between steps 50 and 200`);
  m.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('weighted accumulation: micro-batches of 3 and 5 rows weighted by size equal one batch of 8', async () => {
  const gen = new ToyData(5, 1, 4);
  const examples = Array.from({ length: 40 }, () => gen.next());
  class Uneven extends FixedData {
    private k = 0;
    private off = 0;
    constructor(private readonly all: ToyBatch[]) { super(all, 1); }
    override next(): ToyBatch {
      const n = this.k++ % 2 === 0 ? 3 : 5;
      const b = new FixedData(this.all.slice(this.off, this.off + n), n).next();
      this.off += n;
      return b;
    }
  }
  const a = new ToyMlp(5, 8, 2);
  const b = new ToyMlp(5, 8, 2);
  await train(options(a, new FixedData(examples, 8), { steps: 3 }));
  await train(options(b, new Uneven(examples), { steps: 3, gradAccumulation: 2, microBatchWeight: (x) => x.n }));
  const pa = paramsOf(a);
  const pb = paramsOf(b);
  for (const k of Object.keys(pa)) pa[k].forEach((v, i) => assert.ok(Math.abs(v - pb[k][i]) <= 1e-6, `${k}[${i}] ${v} vs ${pb[k][i]}`));
  a.dispose();
  b.dispose();
});

test('divergence advice says only what applies: clipping when it is off, not before the first update, never for runaway weights', async () => {
  const run = async (extra: Partial<TrainOptions<ToyBatch>>, poisonAt: number): Promise<string> => {
    const m = new ToyMlp(4, 8, 1);
    try {
      let msg = '';
      await assert.rejects(train(options(m, new ToyData(4, 8, 1, poisonAt), { steps: 10, ...extra })), (e: unknown) => {
        assert.ok(e instanceof UserError);
        msg = e.message;
        return true;
      });
      return msg;
    } finally {
      m.dispose();
    }
  };
  const clipped = await run({ maxGradNorm: 1 }, 5);
  assert.match(clipped, /^training diverged at step 6: loss is NaN; the update was not applied and no checkpoint was written yet; lower the learning rate \(now 0\.02\); gradients were already clipped to maxGradNorm 1$/);
  const unclipped = await run({ schedule: { lr: 0.02, kind: 'constant' } }, 5);
  assert.match(unclipped, /; lower the learning rate \(now 0\.02\), set maxGradNorm \(e\.g\. 1\) or add warmup steps$/);
  const first = await run({ maxGradNorm: 1 }, 0);
  assert.match(first, /^training diverged at step 1: loss is NaN; .*no update had been applied yet, so it is not the learning rate: check the data and the base model/);
  assert.doesNotMatch(first + clipped, /set maxGradNorm/);
});

test('runaway weights (lr 1000) stop the run with a UserError naming the tensor; nothing bad is saved; weightLimit false lets it run', async () => {
  const dir = tmp();
  const m = new ToyMlp(4, 8, 1);
  const before = tf.memory().numTensors;
  let stepsDone = 0;
  await assert.rejects(
    train(options(m, new ToyData(4, 8, 1), {
      steps: 20, schedule: { lr: 1000, kind: 'constant' }, maxGradNorm: 1, checkpointDir: dir, checkpointEvery: 1,
      onStep: (r) => { stepsDone = r.step; },
    })),
    (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /^training diverged at step [12]: weights of "[^"]+" reached [\d,]+ in magnitude \(limit 1,000\) while the loss is [\d.]+; /);
      assert.match(e.message, /lower the learning rate \(now 1000\): Adam moves every weight by about the learning rate per update, whatever the gradient clipping$/);
      assert.doesNotMatch(e.message, /set maxGradNorm/);
      return true;
    },
  );
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
  // The stopping update was never reported or saved: checkpoints stop at the last good step.
  const saved = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.startsWith('checkpoint-')) : [];
  assert.deepEqual(saved, stepsDone ? [`checkpoint-${stepsDone}`] : []);
  const r = await train(options(m, new ToyData(4, 8, 1), { steps: 3, schedule: { lr: 1000, kind: 'constant' }, weightLimit: false }));
  assert.equal(r.stopped, 'completed');
  m.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});
