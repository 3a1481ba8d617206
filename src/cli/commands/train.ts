/**
 * `mor train --config FILE [flags]`: fine-tune an adapter. Every config key is also a flag
 * (`--grad-accumulation 4` for `gradAccumulation: 4`); flags win over the file. Without
 * `--config`, the flags alone must form a complete config. Ctrl-C (SIGINT) or SIGTERM finishes
 * the current update, saves a checkpoint, says so in one line and exits 130 / 143 (never 0: no
 * adapter was written); `--resume` continues from the latest checkpoint in `<outDir>/checkpoints`
 * when the stored config allows it; `--overwrite` replaces an existing run (a non-empty
 * `<outDir>` is refused otherwise). See src/train/runFolder.ts.
 */
import { Command, Option } from 'commander';
import { Writable } from 'node:stream';
import { Interrupted, UserError } from '../../errors.ts';
import { jsonArg } from '../flags.ts';
import { adapterKinds } from '../../adapters/registry.ts';
import type { CliIO } from '../main.ts';
import { loadTrainConfig, parseTrainConfig } from '../../train/config.ts';
import { runTraining } from '../../train/run.ts';
import { handleInterrupts, signalExitCode } from '../../train/interrupt.ts';
import { ProgressReporter } from '../../train/progress.ts';

const num = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UserError(`${flag}: expected a number, got "${v}"`);
  return n;
};

/** `path` or `path:weight` or `path:weight:task`, repeatable. */
function dataFile(flag: string) {
  return (v: string, prev: object[] | undefined): object[] => {
    const [p, w, task] = v.split(':');
    const entry: Record<string, unknown> = { path: p };
    if (w !== undefined && w !== '') entry.weight = num(`${flag} ${v}`)(w);
    if (task) entry.task = task;
    return [...(prev ?? []), entry];
  };
}

/** Flags that map one-to-one onto config keys (camelCase of the flag). */
const NUMERIC_FLAGS: [flag: string, key: string, help: string][] = [
  ['--max-length <n>', 'maxLength', 'truncate examples to this many tokens'],
  ['--batch-size <n>', 'batchSize', 'sequences per micro-batch'],
  ['--grad-accumulation <n>', 'gradAccumulation', 'micro-batches per update'],
  ['--steps <n>', 'steps', 'optimizer updates (or --epochs)'],
  ['--epochs <n>', 'epochs', 'passes over the training data (or --steps)'],
  ['--lr <x>', 'lr', 'peak learning rate'],
  ['--warmup <n>', 'warmup', 'linear warmup updates'],
  ['--min-lr <x>', 'minLr', 'final learning rate of the decay'],
  ['--weight-decay <x>', 'weightDecay', 'AdamW decoupled weight decay'],
  ['--beta1 <x>', 'beta1', 'AdamW beta1'],
  ['--beta2 <x>', 'beta2', 'AdamW beta2'],
  ['--eps <x>', 'eps', 'AdamW epsilon'],
  ['--max-grad-norm <x>', 'maxGradNorm', 'clip the global gradient norm (0: off)'],
  ['--seed <n>', 'seed', 'run seed'],
  ['--checkpoint-every <n>', 'checkpointEvery', 'save a checkpoint every N updates'],
  ['--keep-checkpoints <n>', 'keepCheckpoints', 'checkpoints kept'],
  ['--eval-every <n>', 'evalEvery', 'evaluate every N updates'],
  ['--log-every <n>', 'logEvery', 'log every N updates'],
  ['--loss-chunk-size <n>', 'lossChunkSize', 'rows of the output head per loss chunk (0: full logits)'],
];

/** `--gradient-checkpointing on|off|auto|N` -> the config's true / false / 'auto' / N (the last N layers). */
const CHECKPOINTING: Record<string, boolean | 'auto'> = { on: true, off: false, auto: 'auto' };

function checkpointingArg(v: string): boolean | 'auto' | number {
  if (v in CHECKPOINTING) return CHECKPOINTING[v];
  if (/^\d+$/.test(v)) return Number(v);
  throw new UserError(`--gradient-checkpointing must be on, off, auto or a number of layers (got "${v}")`);
}

export function registerTrainCommand(program: Command, io: CliIO): void {
  const cmd = program
    .command('train')
    .description(`fine-tune an adapter (${adapterKinds().map((k) => k.label).join(', ')}) on JSONL data`)
    .option('-c, --config <file>', 'training config (JSON or YAML, camelCase keys); flags override it')
    .option('--model <dir>', 'base model directory (config.json, *.safetensors, tokenizer.json)')
    .option('--adapter <json>', 'adapter config as JSON, e.g. \'{"kind":"mor","r":8,"numExperts":8}\'', jsonArg('--adapter'))
    .option('--data <file[:weight[:task]]>', 'training JSONL file (repeatable)', dataFile('--data'))
    .option('--eval-data <file[:weight[:task]]>', 'evaluation JSONL file for the eval loss (repeatable)', dataFile('--eval-data'))
    .option('--final-eval <file>', 'benchmark JSONL scored on the adapter at the end, as `mor eval` (repeatable)',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--out-dir <dir>', 'output directory (adapter, checkpoints, metrics.jsonl, loss.svg)')
    .addOption(new Option('--schedule <kind>', 'learning-rate decay after warmup').choices(['cosine', 'linear', 'constant']))
    .addOption(
      new Option('--gradient-checkpointing <mode>', 'recompute each layer in the backward: on, off, N (the last N layers) or auto (as many as the activations need)')
        .argParser(checkpointingArg),
    );
  for (const [flag, , help] of NUMERIC_FLAGS) cmd.option(flag, help, num(flag.split(' ')[0]));
  cmd
    .option('--resume', 'continue the run in <outDir> from its latest complete checkpoint (a damaged one is skipped with a warning); ' +
      'refused when the stored config differs in a field that changes the training (lr, seed, data, adapter, ...); ' +
      'steps/epochs, eval, logging and checkpoint settings may change')
    .option('--overwrite', 'replace the run already in <outDir> (its checkpoints, adapter, metrics and plots are removed once every input is validated); ' +
      'without --resume or --overwrite a non-empty <outDir> is refused')
    .action(async (o: Record<string, unknown>) => {
      const overrides: Record<string, unknown> = {
        model: o.model,
        adapter: o.adapter,
        data: o.data,
        evalData: o.evalData,
        finalEval: o.finalEval,
        outDir: o.outDir,
        schedule: o.schedule,
        gradientCheckpointing: o.gradientCheckpointing,
      };
      for (const [, key] of NUMERIC_FLAGS) overrides[key] = o[key];
      const config = typeof o.config === 'string'
        ? loadTrainConfig(o.config, overrides)
        : parseTrainConfig(Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)), 'command line');
      const interrupts = handleInterrupts({
        onFirst: () => io.stderr('\ninterrupted: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)\n'),
      });
      try {
        // A live bar needs the real terminal; otherwise plain lines go through io.stderr.
        const stream = process.stderr.isTTY
          ? process.stderr
          : new Writable({ write: (c, _e, cb) => { io.stderr(String(c)); cb(); } });
        const result = await runTraining(config, {
          resume: Boolean(o.resume),
          overwrite: Boolean(o.overwrite),
          signal: interrupts.signal,
          log: (l) => io.stderr(l + '\n'),
          progress: (total) => new ProgressReporter({ total, stream }),
        });
        if (result.stopped === 'interrupted') {
          // Not a success: the adapter is not written, so `mor train && mor eval` must stop here.
          const sig = interrupts.received ?? 'SIGINT';
          throw new Interrupted(
            `interrupted by ${sig} at step ${result.step}/${result.totalSteps}: saved checkpoint ${result.lastCheckpoint} ` +
              `and ${result.metricsFile} (no adapter yet); to continue, run the same command with --resume`,
            signalExitCode(sig),
          );
        }
        const last = [...result.log].reverse().find((r) => r.type === 'train');
        io.stdout(
          `done: step ${result.step}/${result.totalSteps}` +
            (last && last.type === 'train' ? `, loss ${last.loss.toFixed(4)}` : '') +
            `\n  metrics: ${result.metricsFile}\n  plot: ${result.lossPlot}\n` +
            (result.routingPlot ? `  routing: ${result.routingPlot}\n` : '') +
            `  adapter: ${result.adapterDir}\n`,
        );
        if (result.finalEval) io.stdout(`\n${result.finalEval.markdown.trimEnd()}\n`);
      } finally {
        interrupts.dispose();
      }
    });
}
