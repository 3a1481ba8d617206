/**
 * `mor experiment --config FILE [--out DIR] [--seeds 0,1,2] [--time-budget MIN] [--max-runs N]
 * [--main-only] [--model DIR]`: run (or resume) the comparison of full fine-tuning, LoRA, DoRA,
 * MoELoRA and MoR described by an experiment config (experiments/*.yaml) and write the report.
 * Finished runs are cached under `<out>/runs/`, so the same command continues an interrupted
 * experiment. Parse -> validate -> call `runExperiment` (src/experiment/runner.ts).
 */
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { loadExperimentConfig } from '../../experiment/config.ts';
import { runExperiment } from '../../experiment/runner.ts';
import type { CliIO } from '../main.ts';

interface ExperimentCliOptions {
  config: string;
  out?: string;
  seeds?: string;
  timeBudget?: string;
  maxRuns?: string;
  mainOnly?: boolean;
  model?: string;
  latencyPass?: boolean;
}

function parseSeeds(v: string): number[] {
  const seeds = v.split(',').map((s) => Number(s.trim()));
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new UserError(`--seeds must be a comma-separated list of non-negative integers (got "${v}")`);
  }
  return seeds;
}

function positive(v: string | undefined, flag: string, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UserError(`${flag} must be a positive ${integer ? 'integer' : 'number'} (got "${v}")`);
  }
  return n;
}

export function registerExperimentCommand(program: Command, io: CliIO): void {
  program
    .command('experiment')
    .description('run (or resume) a comparison of adapters from an experiment config and write report.md, results.json and plots')
    .requiredOption('-c, --config <file>', 'experiment config (YAML or JSON), e.g. experiments/paper.yaml')
    .option('--out <dir>', 'output folder (default: reports/<name>)')
    .option('--seeds <list>', 'seeds of the main comparison, e.g. 0,1,2 (overrides the config; ablations and held-out runs use the first)')
    .option('--time-budget <minutes>', 'start no new run after this many minutes (rerun to continue)')
    .option('--max-runs <n>', 'run at most this many new runs')
    .option('--main-only', 'skip the ablations and held-out runs (learning-rate grids of the main methods still run)')
    .option('--model <dir>', 'base model directory (overrides the config)')
    .option('--latency-pass', 'after the runs, re-measure generation latency of the base model and every main method back to back (latency.json)')
    .action(async (o: ExperimentCliOptions) => {
      const file = loadExperimentConfig(o.config);
      const config = o.model ? { ...file, model: o.model } : file;
      const args = process.argv.slice(2).join(' ');
      const r = await runExperiment(config, {
        outDir: o.out,
        seeds: o.seeds === undefined ? undefined : parseSeeds(o.seeds),
        timeBudgetMinutes: positive(o.timeBudget, '--time-budget', false),
        maxRuns: positive(o.maxRuns, '--max-runs', true),
        mainOnly: o.mainOnly,
        latencyPass: o.latencyPass,
        command: args.startsWith('experiment') ? `mor ${args}` : `mor experiment --config ${o.config}${o.out ? ` --out ${o.out}` : ''}`,
        log: (l) => io.stderr(l + '\n'),
      });
      io.stdout(`${r.done.length} of ${r.planned.length} runs finished (${r.executed} in this call)\n`);
      io.stdout(`wrote ${r.reportFile} and ${r.resultsFile}\n`);
    });
}
