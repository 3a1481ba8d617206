/**
 * `mor demo [--out DIR] [--steps N] [--seed N] [--model DIR] [--data FILE] ...`: the README's
 * first command. Fine-tunes the bundled base model with MoR on the task suite, scores it before
 * and after, prints the per-task table and writes adapter, metrics, evals and plots to `--out`.
 * Parse -> validate -> call `runDemo` (src/experiment/demo.ts).
 */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import { UserError } from '../../errors.ts';
import { adapterLabel, DEMO_DEFAULTS, runDemo } from '../../experiment/demo.ts';
import type { AdapterConfigInput } from '../../adapters/config.ts';
import { jsonArg } from '../flags.ts';
import type { CliIO } from '../main.ts';

interface DemoCliOptions {
  out: string;
  steps: string;
  seed: string;
  model: string;
  data: string;
  evalData: string;
  evalLimit: string;
  lr: string;
  batchSize: string;
  maxLength: string;
  adapter?: unknown;
}

function int(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min) throw new UserError(`${flag} must be an integer >= ${min} (got "${value}")`);
  return n;
}

function positive(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UserError(`${flag} must be a positive number (got "${value}")`);
  return n;
}

export function registerDemoCommand(program: Command, io: CliIO): void {
  const d = DEMO_DEFAULTS;
  program
    .command('demo')
    .description(
      'fine-tune the bundled base model with MoR on the task suite, score 0-shot accuracy per task before and after, ' +
        'and write the adapter, metrics, evals and plots (about 10 minutes on 2 cores)',
    )
    .option('--out <dir>', 'output folder', d.out)
    .option('--steps <n>', 'optimizer updates', String(d.steps))
    .option('--seed <n>', 'run seed (adapter init, data order)', String(d.seed))
    .option('--model <dir>', 'base model directory', d.model)
    .option('--data <file>', 'training JSONL (chat records with a task field)', d.data)
    .option('--eval-data <file>', 'multiple-choice JSONL scored before and after', d.evalData)
    .option('--eval-limit <n>', 'items scored per task (0: all)', String(d.evalLimitPerTask))
    .option('--lr <x>', 'peak learning rate', String(d.lr))
    .option('--batch-size <n>', 'sequences per update', String(d.batchSize))
    .option('--max-length <n>', 'truncate training sequences to this many tokens', String(d.maxLength))
    .option(
      '--adapter <json>',
      `adapter fields over the default ${JSON.stringify(d.adapter)}, e.g. '{"targetModules":"all-linear"}'; ` +
        'another "kind" replaces it',
      jsonArg('--adapter'),
    )
    .action(async (o: DemoCliOptions) => {
      for (const [flag, p] of [['--model', o.model], ['--data', o.data], ['--eval-data', o.evalData]] as const) {
        if (!fs.existsSync(p)) throw new UserError(`${flag} ${p}: not found${flag === '--model' ? ' (the bundled base model lives in models/base)' : ''}`);
      }
      if (o.adapter !== undefined && (typeof o.adapter !== 'object' || o.adapter === null || Array.isArray(o.adapter))) {
        throw new UserError('--adapter must be a JSON object, e.g. \'{"r":16}\'');
      }
      const r = await runDemo({
        adapter: o.adapter as Partial<AdapterConfigInput> | undefined,
        out: o.out,
        steps: int(o.steps, '--steps', 1),
        seed: int(o.seed, '--seed', 0),
        model: o.model,
        data: o.data,
        evalData: o.evalData,
        evalLimitPerTask: int(o.evalLimit, '--eval-limit', 0),
        lr: positive(o.lr, '--lr'),
        batchSize: int(o.batchSize, '--batch-size', 1),
        maxLength: int(o.maxLength, '--max-length', 2),
        log: (l) => io.stderr(l + '\n'),
      });
      io.stdout(`\n${r.table}\n`);
      io.stdout(
        `${adapterLabel(r.result.adapter.kind)}: ${r.result.trainableParams.toLocaleString('en-US')} trainable parameters (${r.result.trainablePercent.toFixed(3)}% of the model), ` +
          `${r.result.steps} steps in ${r.result.trainSeconds.toFixed(0)} s; total ${r.wallSeconds.toFixed(0)} s\n`,
      );
      io.stdout(`wrote ${r.outDir}/ (adapter/, metrics.jsonl, loss.svg, routing.svg, eval_before.json, eval_after.json, eval.md, demo.json)\n`);
    });
}
