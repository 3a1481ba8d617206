/**
 * `mor merge --model DIR --adapter DIR --out DIR [--dtype f32|f16|bf16]`: fold an adapter into
 * its base model and write a plain model directory (config.json, model.safetensors, tokenizer
 * files). MoR with a learned router needs a fixed routing vector: `--routing-from DATA.jsonl`
 * and/or `--task NAME`. Parse -> validate -> call `mergeAdapter` (src/merge/mergeAdapter.ts).
 */
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { mergeAdapter } from '../../merge/mergeAdapter.ts';
import { positiveInt } from '../flags.ts';
import type { CliIO } from '../main.ts';

interface MergeCliOptions {
  model: string;
  adapter: string;
  out: string;
  dtype: string;
  routingFrom?: string[];
  task?: string;
  batchSize: string;
  maxExamples?: string;
  maxLength?: string;
}

const DTYPES = { f32: 'F32', f16: 'F16', bf16: 'BF16' } as const;

/** Register `mor merge`. */
export function registerMergeCommand(program: Command, io: CliIO): void {
  program
    .command('merge')
    .description(
      'merge an adapter into its base model and write a plain model directory (config.json, model.safetensors, tokenizer files): ' +
        'LoRA, DoRA, full and uniform-router MoR always; MoR with a learned router under the mean routing of ' +
        '--routing-from DATA (optionally only --task NAME), or of its recorded training data with --task alone; MoELoRA cannot be merged',
    )
    .requiredOption('--model <dir>', 'base model directory (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--adapter <dir>', 'adapter directory (adapter_config.json, adapter_model.safetensors)')
    .requiredOption('--out <dir>', 'new (or empty, or earlier merge) directory for the merged model; never the base model or adapter folder (compared by real path)')
    .option('--dtype <dtype>', `stored weight dtype: ${Object.keys(DTYPES).join(' | ')}`, 'f32')
    .option('--routing-from <files...>', 'MoR: JSONL data whose mean routing per layer (over real tokens) is folded into the weights')
    .option('--task <name>', 'MoR: use only the examples of this task (of --routing-from, else of the training data in train_config.json)')
    .option('--batch-size <n>', 'MoR: sequences per forward while measuring the routing', '8')
    .option('--max-examples <n>', 'MoR: at most N examples per task for the routing')
    .option('--max-length <n>', "MoR: longest sequence (default: the training config's, else the model's max positions)")
    .action(async (o: MergeCliOptions) => {
      const dtype = DTYPES[o.dtype.toLowerCase() as keyof typeof DTYPES];
      if (!dtype) throw new UserError(`--dtype must be one of ${Object.keys(DTYPES).join(', ')} (got "${o.dtype}")`);
      const result = await mergeAdapter({
        model: o.model,
        adapter: o.adapter,
        out: o.out,
        dtype,
        routingFrom: o.routingFrom,
        task: o.task,
        batchSize: positiveInt(o.batchSize, '--batch-size'),
        maxExamples: positiveInt(o.maxExamples, '--max-examples'),
        maxLength: positiveInt(o.maxLength, '--max-length'),
        log: (line) => io.stderr(line + '\n'),
      });
      io.stdout(`${result.outDir}\n`);
    });
}
