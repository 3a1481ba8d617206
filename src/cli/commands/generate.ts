/**
 * `mor generate --model DIR --prompt TEXT`: load a Hugging Face model directory (weights and
 * tokenizer) and stream the continuation to stdout. `--chat` wraps the prompt as a user
 * message with the tokenizer's chat template.
 */
import type { Command } from 'commander';
import { initBackend } from '../../backend/tf.ts';
import { UserError } from '../../errors.ts';
import { generate } from '../../generate/generate.ts';
import { loadConfig, loadModel } from '../../models/load.ts';
import { loadAdapter } from '../../adapters/load.ts';
import { Tokenizer } from '../../tokenizer/tokenizer.ts';
import { PositionLimit } from '../../models/positions.ts';
import type { CliIO } from '../main.ts';

interface GenerateCliOptions {
  model: string;
  prompt: string;
  maxNewTokens: string;
  temperature: string;
  topK?: string;
  topP?: string;
  seed: string;
  chat?: boolean;
  system?: string;
  adapter?: string;
}

function num(value: string | undefined, flag: string, check: (n: number) => boolean, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new UserError(`${flag} must be ${what} (got "${value}")`);
  return n;
}

export function registerGenerateCommand(program: Command, io: CliIO): void {
  program
    .command('generate')
    .description('generate text from a Hugging Face model directory, streaming to stdout')
    .requiredOption('--model <dir>', 'model directory (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--max-new-tokens <n>', 'tokens to generate at most', '128')
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', '0')
    .option('--top-k <k>', 'sample among the k most likely tokens')
    .option('--top-p <p>', 'nucleus sampling: smallest set with probability mass >= p')
    .option('--seed <s>', 'sampling seed', '0')
    .option('--chat', "wrap the prompt as a user message with the tokenizer's chat template")
    .option('--system <text>', 'system message (with --chat)')
    .option('--adapter <dir>', 'apply a trained adapter directory (adapter_config.json + adapter_model.safetensors)')
    .action(async (o: GenerateCliOptions) => {
      const maxNewTokens = num(o.maxNewTokens, '--max-new-tokens', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
      const temperature = num(o.temperature, '--temperature', (n) => n >= 0, 'a number >= 0');
      const topK = num(o.topK, '--top-k', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
      const topP = num(o.topP, '--top-p', (n) => n > 0 && n <= 1, 'in (0, 1]');
      const seed = num(o.seed, '--seed', Number.isInteger, 'an integer');
      if (o.system !== undefined && !o.chat) throw new UserError('--system needs --chat');
      await initBackend();
      loadConfig(o.model); // cheap: a bad directory or config.json is reported before anything else
      const tokenizer = Tokenizer.fromDir(o.model);
      const model = await loadModel(o.model);
      try {
        // The adapter layers are injected into `model` in place (PEFT layout, any adapter kind).
        if (o.adapter !== undefined) loadAdapter(model, o.adapter);
        let prompt = o.prompt;
        let addSpecialTokens = true;
        if (o.chat) {
          if (!tokenizer.hasChatTemplate) throw new UserError(`${o.model}: the tokenizer has no chat template (drop --chat)`);
          const messages = [...(o.system ? [{ role: 'system', content: o.system }] : []), { role: 'user', content: o.prompt }];
          prompt = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
          addSpecialTokens = false; // the template writes BOS itself
        }
        await generate(model, tokenizer, prompt, {
          maxNewTokens, temperature, topK, topP, seed, addSpecialTokens,
          onToken: (text) => io.stdout(text),
          positions: new PositionLimit(model.config.maxPositionEmbeddings, (l) => io.stderr(l + '\n')),
        });
        io.stdout('\n');
      } finally {
        model.dispose();
      }
    });
}
