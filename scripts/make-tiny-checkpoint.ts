/**
 * Write a tiny random checkpoint in the Hugging Face layout (config.json, model.safetensors,
 * and a byte-level BPE tokenizer.json + tokenizer_config.json with a chat template), for
 * tests and examples. Weights come from createRandomModel (seeded).
 *
 *   node --import tsx scripts/make-tiny-checkpoint.ts OUT_DIR [--model-type llama|mistral|qwen2]
 *     [--hidden 64] [--intermediate 128] [--layers 2] [--heads 4] [--kv-heads 2] [--tied]
 *     [--seed 0] [--dtype F32|F16|BF16] [--init-std 0.02] [--no-tokenizer]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/tf.ts';
import { makeConfig, type ModelType } from '../src/models/llama/config.ts';
import { createRandomModel } from '../src/models/random.ts';

/** Ids of the special tokens of {@link byteLevelTokenizer}; bytes follow from id 3. */
export const TINY_SPECIAL = { pad: 0, bos: 1, eos: 2 } as const;
/** Vocabulary size of {@link byteLevelTokenizer}: 3 specials + 256 bytes. */
export const TINY_VOCAB = 259;

/** GPT-2's byte -> printable unicode character table (each byte is one token). */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(keep.includes(b) ? b : 256 + extra++);
  return table;
}

/** tokenizer.json / tokenizer_config.json of a byte-level BPE tokenizer without merges. */
export function byteLevelTokenizer(): { tokenizer: object; config: object } {
  const vocab: Record<string, number> = { '<pad>': 0, '<s>': 1, '</s>': 2 };
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = b + 3));
  const added = ['<pad>', '<s>', '</s>'].map((content, id) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  const config = {
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    add_bos_token: true,
    model_max_length: 2048,
    tokenizer_class: 'PreTrainedTokenizerFast',
    chat_template:
      "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
  };
  return { tokenizer, config };
}

export interface TinyCheckpointOptions {
  modelType?: ModelType;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  tied?: boolean;
  seed?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  initStd?: number;
  tokenizer?: boolean;
}

/** Write a tiny random model (and tokenizer) to `dir`. Call after initBackend(). */
export async function makeTinyCheckpoint(dir: string, o: TinyCheckpointOptions = {}): Promise<void> {
  const config = makeConfig({
    modelType: o.modelType ?? 'llama',
    vocabSize: TINY_VOCAB,
    hiddenSize: o.hidden ?? 64,
    intermediateSize: o.intermediate ?? 128,
    numHiddenLayers: o.layers ?? 2,
    numAttentionHeads: o.heads ?? 4,
    numKeyValueHeads: o.kvHeads ?? 2,
    tieWordEmbeddings: o.tied ?? false,
    initializerRange: o.initStd ?? 0.02,
    bosTokenId: TINY_SPECIAL.bos,
    eosTokenId: TINY_SPECIAL.eos,
    padTokenId: TINY_SPECIAL.pad,
    maxPositionEmbeddings: 2048,
  });
  const model = createRandomModel(config, o.seed ?? 0);
  try {
    await model.savePretrained(dir, { dtype: o.dtype ?? 'F32' });
  } finally {
    model.dispose();
  }
  if (o.tokenizer ?? true) {
    const { tokenizer, config: tc } = byteLevelTokenizer();
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tc, null, 2) + '\n');
  }
}

async function cli(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'model-type': { type: 'string' }, hidden: { type: 'string' }, intermediate: { type: 'string' },
      layers: { type: 'string' }, heads: { type: 'string' }, 'kv-heads': { type: 'string' }, tied: { type: 'boolean' },
      seed: { type: 'string' }, dtype: { type: 'string' }, 'init-std': { type: 'string' }, 'no-tokenizer': { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) {
    process.stderr.write('usage: make-tiny-checkpoint.ts OUT_DIR [options] (see the file header)\n');
    process.exit(1);
  }
  const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  await initBackend();
  await makeTinyCheckpoint(positionals[0], {
    modelType: values['model-type'] as ModelType | undefined,
    hidden: num(values.hidden), intermediate: num(values.intermediate), layers: num(values.layers),
    heads: num(values.heads), kvHeads: num(values['kv-heads']), tied: values.tied, seed: num(values.seed),
    dtype: values.dtype as 'F32' | 'F16' | 'BF16' | undefined, initStd: num(values['init-std']),
    tokenizer: !values['no-tokenizer'],
  });
  process.stdout.write(`wrote ${positionals[0]}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await cli(process.argv.slice(2));
