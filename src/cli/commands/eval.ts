/**
 * `mor eval --model DIR [--adapter DIR] --data FILE... [--out DIR] [--batch-size N]`: score a
 * model (optionally with an adapter) on evaluation JSONL files and print the per-task table.
 * Parse -> validate -> call `evaluate` (src/eval/evaluate.ts); no logic of its own.
 */
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { evaluate } from '../../eval/evaluate.ts';
import type { PromptStyle } from '../../eval/multipleChoice.ts';
import type { ExactMatchPromptStyle } from '../../eval/exactMatch.ts';
import { positiveInt } from '../flags.ts';
import type { CliIO } from '../main.ts';

interface EvalCliOptions {
  model: string;
  adapter?: string;
  data: string[];
  out?: string;
  batchSize: string;
  promptStyle: string;
  generationPromptStyle: string;
  maxLength?: string;
  maxNewTokens: string;
  limit?: string;
  json?: boolean;
}

const PROMPT_STYLES = ['auto', 'chat', 'plain-chat', 'qa'];
const GEN_STYLES = ['raw', 'chat', 'plain-chat'];

function oneOf<T extends string>(value: string, flag: string, allowed: string[]): T {
  if (!allowed.includes(value)) throw new UserError(`${flag} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

export function registerEvalCommand(program: Command, io: CliIO): void {
  program
    .command('eval')
    .description(
      'evaluate a model (and adapter) on JSONL files: multiple choice ({question, choices, answer}) -> acc / acc_norm; ' +
        '{prompt, completion} -> exact match by greedy generation',
    )
    .requiredOption('--model <dir>', 'model directory (config.json, model.safetensors, tokenizer.json)')
    .option('--adapter <dir>', 'adapter directory (adapter_config.json, adapter_model.safetensors)')
    .requiredOption('--data <files...>', 'evaluation JSONL file(s)')
    .option('--out <dir>', 'write eval.json, eval.md and predictions.jsonl here')
    .option('--batch-size <n>', 'sequences per forward (prompts per generate call)', '16')
    .option('--prompt-style <style>', `multiple-choice prompt: ${PROMPT_STYLES.join(' | ')} (auto: chat template if any, else qa)`, 'auto')
    .option('--generation-prompt-style <style>', `exact-match prompt: ${GEN_STYLES.join(' | ')}`, 'raw')
    .option('--max-length <n>', "longest scored sequence (default: the model's max positions)")
    .option('--max-new-tokens <n>', 'tokens generated per exact-match prompt', '32')
    .option('--limit <n>', 'only the first N items of each file')
    .option('--json', 'print the JSON report instead of the Markdown table')
    .action(async (o: EvalCliOptions) => {
      // Progress on stderr, at most every 2 s, so stdout stays the table.
      const t0 = Date.now();
      let last = t0;
      const onProgress = (phase: string, done: number, total: number): void => {
        const now = Date.now();
        if (now - last < 2000 && done < total) return;
        last = now;
        const what = phase === 'multiple_choice' ? 'choices scored' : 'prompts generated';
        io.stderr(`${phase}: ${done}/${total} ${what} (${((now - t0) / 1000).toFixed(1)} s)\n`);
      };
      const result = await evaluate({
        model: o.model,
        adapter: o.adapter,
        data: o.data,
        outDir: o.out,
        batchSize: positiveInt(o.batchSize, '--batch-size'),
        promptStyle: oneOf<PromptStyle>(o.promptStyle, '--prompt-style', PROMPT_STYLES),
        generationPromptStyle: oneOf<ExactMatchPromptStyle>(o.generationPromptStyle, '--generation-prompt-style', GEN_STYLES),
        maxLength: positiveInt(o.maxLength, '--max-length'),
        maxNewTokens: positiveInt(o.maxNewTokens, '--max-new-tokens'),
        limit: positiveInt(o.limit, '--limit'),
        onProgress,
        warn: (l) => io.stderr(l + '\n'),
      });
      io.stdout(o.json ? JSON.stringify(result.json, null, 2) + '\n' : result.markdown);
      if (result.files.length > 0) io.stderr(`wrote ${result.files.join(', ')}\n`);
    });
}
