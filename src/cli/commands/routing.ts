/**
 * `mor routing --model DIR --adapter DIR --data FILE... [--out DIR]`: mean routing weight per
 * expert of a MoR / MoELoRA adapter, per adapted module and per task, as a Markdown table on
 * stdout; with `--out`, also routing.json, routing.svg (heatmap) and routing.md.
 * Parse -> validate -> call `routingTable` (src/routing/routingTable.ts).
 */
import type { Command } from 'commander';
import { routingTable } from '../../routing/routingTable.ts';
import { positiveInt } from '../flags.ts';
import type { CliIO } from '../main.ts';

interface RoutingCliOptions {
  model: string;
  adapter: string;
  data: string[];
  out?: string;
  maxExamples: string;
  batchSize: string;
  maxLength?: string;
  json?: boolean;
}

/** Register `mor routing`. */
export function registerRoutingCommand(program: Command, io: CliIO): void {
  program
    .command('routing')
    .description(
      'routing table of a routed adapter (MoR, MoELoRA, HydraLoRA) over data: mean routing weight per expert, per adapted module and per task ' +
        '(the task is the record\'s "task" field, else the file name); with --out also routing.json and a heatmap routing.svg',
    )
    .requiredOption('--model <dir>', 'base model directory (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--adapter <dir>', 'routed adapter directory (MoR, MoELoRA, HydraLoRA)')
    .requiredOption('--data <files...>', 'JSONL file(s): chat, prompt/completion or text records')
    .option('--out <dir>', 'write routing.json, routing.svg and routing.md here')
    .option('--max-examples <n>', 'at most N examples per task', '256')
    .option('--batch-size <n>', 'sequences per forward', '8')
    .option('--max-length <n>', "longest sequence (default: the model's max positions)")
    .option('--json', 'print routing.json instead of the Markdown table')
    .action(async (o: RoutingCliOptions) => {
      const result = await routingTable({
        model: o.model,
        adapter: o.adapter,
        data: o.data,
        outDir: o.out,
        maxExamples: positiveInt(o.maxExamples, '--max-examples'),
        batchSize: positiveInt(o.batchSize, '--batch-size'),
        maxLength: positiveInt(o.maxLength, '--max-length'),
        warn: (l) => io.stderr(l + '\n'),
      });
      io.stdout(o.json ? JSON.stringify(result.json, null, 1) + '\n' : result.markdown);
      if (result.files.length > 0) io.stderr(`wrote ${result.files.join(', ')}\n`);
    });
}
