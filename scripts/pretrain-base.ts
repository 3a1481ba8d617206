/**
 * Pretrain the bundled base model (`models/base`) by the project's recipe
 * (src/pretrain/config.ts holds the defaults; see models/base/README.md for the run).
 *
 *   npm run pretrain:base -- --out models/base --minutes 40
 *   npm run pretrain:base -- --resume                 # continue a killed run
 *   npm run pretrain:base -- --dry-run-steps 3 --out /tmp/m --run-dir /tmp/r   # smoke test
 *   npm run pretrain:base -- --readme-only            # rewrite README.md from the run summary
 *   npm run pretrain:base -- --check                  # reload the saved model: valid loss, samples, README
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { backendInfo, describeBackend } from '../src/backend/tf.ts';
import { UserError } from '../src/errors.ts';
import { writeFileAtomicSync } from '../src/io/atomic.ts';
import { parsePretrainConfig, type PretrainConfigInput } from '../src/pretrain/config.ts';
import { renderModelCard, type PretrainSummary } from '../src/pretrain/readme.ts';
import { runPretrain } from '../src/pretrain/run.ts';
import { checkSavedModel } from '../src/pretrain/check.ts';
import { handleInterrupts } from '../src/train/interrupt.ts';

const USAGE = `usage: npm run pretrain:base -- [--out DIR] [--run-dir DIR] [--steps N] [--minutes M] [--seed N]
       [--resume] [--dry-run-steps N] [--lr X] [--batch-size N] [--seq-len N]
       [--train-file F] [--valid-file F] [--vocab N] [--hidden N] [--layers N] [--heads N]
       [--kv-heads N] [--intermediate N] [--readme-only] [--check]`;

function num(name: string, v: string | undefined, int = true): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UserError(`--${name} must be ${int ? 'an integer' : 'a number'} (got '${v}')`);
  return n;
}

function summaryFile(runDir: string): string {
  return path.join(runDir, 'summary.json');
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      'run-dir': { type: 'string' },
      steps: { type: 'string' },
      minutes: { type: 'string' },
      seed: { type: 'string' },
      resume: { type: 'boolean', default: false },
      'dry-run-steps': { type: 'string' },
      lr: { type: 'string' },
      'batch-size': { type: 'string' },
      'seq-len': { type: 'string' },
      'train-file': { type: 'string' },
      'valid-file': { type: 'string' },
      vocab: { type: 'string' },
      hidden: { type: 'string' },
      layers: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      intermediate: { type: 'string' },
      'readme-only': { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const dry = num('dry-run-steps', values['dry-run-steps']);
  const arch = Object.fromEntries(
    Object.entries({
      vocabSize: num('vocab', values.vocab),
      hiddenSize: num('hidden', values.hidden),
      numHiddenLayers: num('layers', values.layers),
      numAttentionHeads: num('heads', values.heads),
      numKeyValueHeads: num('kv-heads', values['kv-heads']),
      intermediateSize: num('intermediate', values.intermediate),
    }).filter(([, v]) => v !== undefined),
  );
  const input: PretrainConfigInput = {
    outDir: values.out,
    runDir: values['run-dir'],
    steps: dry ?? num('steps', values.steps),
    minutes: num('minutes', values.minutes, false),
    seed: num('seed', values.seed),
    resume: values.resume,
    lr: num('lr', values.lr, false),
    batchSize: num('batch-size', values['batch-size']),
    seqLen: num('seq-len', values['seq-len']),
    trainFile: values['train-file'],
    validFile: values['valid-file'],
    architecture: arch,
    ...(dry !== undefined ? { checkpointEvery: dry, evalEvery: dry, logEvery: 1, sampleTokens: 4, samplePrompts: ['The'] } : {}),
  };
  const cfg = parsePretrainConfig(
    Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
    'pretrain-base flags',
  );

  if (values['readme-only'] || values.check) {
    const f = summaryFile(cfg.runDir);
    if (!fs.existsSync(f)) throw new UserError(`${f} not found: run the pretraining first`);
    const summary = JSON.parse(fs.readFileSync(f, 'utf8')) as PretrainSummary;
    if (values.check) {
      // The run's own settings (files, sequence length), with this version's sample prompts.
      summary.config = { ...summary.config, samplePrompts: cfg.samplePrompts, sampleTokens: cfg.sampleTokens };
      const c = await checkSavedModel(summary.config);
      summary.savedValidLoss = c.validLoss;
      summary.samples = c.samples;
      writeFileAtomicSync(f, JSON.stringify(summary, null, 2) + '\n');
      console.error(`saved model: valid loss ${c.validLoss.toFixed(4)} (ppl ${Math.exp(c.validLoss).toFixed(2)})`);
      for (const s of c.samples) console.error(`sample: ${JSON.stringify(s.prompt)} -> ${JSON.stringify(s.completion)}`);
    }
    writeFileAtomicSync(path.join(summary.config.outDir, 'README.md'), renderModelCard(summary));
    console.error(`wrote ${path.join(summary.config.outDir, 'README.md')}`);
    return;
  }

  const interrupts = handleInterrupts({ onFirst: () => console.error('interrupt: finishing the update and saving a checkpoint (again to quit)') });
  const passed = argv.filter((a) => a !== '--resume');
  const command = `npm run pretrain:base -- ${passed.join(' ')}`.trim();
  try {
    const r = await runPretrain(cfg, { signal: interrupts.signal });
    if (!r.outDir) return;
    const trainRecs = r.train.log.filter((x) => x.type === 'train');
    // Training seconds over all sessions: elapsedSec restarts at each resume.
    let trainingSec = 0;
    for (let i = 0; i < trainRecs.length; i++) {
      const next = trainRecs[i + 1];
      if (!next || next.elapsedSec < trainRecs[i].elapsedSec) trainingSec += trainRecs[i].elapsedSec;
    }
    const cpus = os.cpus();
    const summary: PretrainSummary = {
      command,
      machine: `${cpus.length} x ${cpus[0]?.model ?? 'CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${describeBackend(backendInfo())} (shared with other jobs: timings are noisy)`,
      config: cfg,
      stopReason: r.stopReason,
      steps: r.train.step,
      numParameters: r.numParameters,
      trainTokens: r.trainTokens,
      validTokens: r.validTokens,
      charsPerToken: r.charsPerToken,
      tokensSeen: r.tokensSeen,
      finalTrainLoss: r.finalTrainLoss,
      finalValidLoss: r.finalValidLoss,
      wallSec: trainingSec + r.wallSec - (trainRecs.at(-1)?.elapsedSec ?? 0),
      tokensPerSec: trainingSec > 0 ? r.tokensSeen / trainingSec : 0,
      validCurve: r.train.log.flatMap((x) => (x.type === 'eval' ? [{ step: x.step, loss: x.metrics.loss }] : [])),
      samples: r.samples,
      date: new Date().toISOString().slice(0, 10),
    };
    writeFileAtomicSync(summaryFile(cfg.runDir), JSON.stringify(summary, null, 2) + '\n');
    writeFileAtomicSync(path.join(r.outDir, 'README.md'), renderModelCard(summary));
    for (const s of r.samples) console.error(`sample: ${JSON.stringify(s.prompt)} -> ${JSON.stringify(s.completion)}`);
  } finally {
    interrupts.dispose();
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UserError) {
    console.error(`error: ${e.message}`);
    process.exit(1);
  }
  console.error(e);
  process.exit(2);
});
