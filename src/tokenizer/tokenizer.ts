/**
 * A Hugging Face tokenizer: `tokenizer.json` run by `@huggingface/tokenizers` (pure JS,
 * offline), with the behaviour transformers adds on top from `tokenizer_config.json`
 * (special tokens, LLaMA-style `add_bos_token`/`add_eos_token`, chat templates).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { UserError } from '../errors.ts';
import { readText, type FileSource } from '../io/files.ts';
import {
  chatSegments,
  renderChatTemplate,
  selectChatTemplate,
  type ChatMessage,
  type ChatSegment,
  type ChatTemplateOptions,
  type SpecialTokenStrings,
} from './chatTemplate.ts';
import {
  parseChatTemplateFile,
  parseGenerationConfig,
  parseTokenizerConfig,
  type GenerationTokenIds,
  type TokenizerSettings,
} from './config.ts';
import { StreamDecoder, type StreamDecoderOptions } from './streamDecoder.ts';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the model's special tokens (BOS for LLaMA). Default true, as in transformers. */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/PAD, chat markers) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

/** Side files for {@link Tokenizer.fromJson}, already parsed. */
export interface TokenizerSideFiles {
  /** `generation_config.json`: its eos ids join `eosTokenIds`. */
  generationConfig?: object;
  /** `special_tokens_map.json`: overrides the config's special tokens, as in transformers. */
  specialTokensMap?: object;
  /** Chat templates from `chat_template.jinja` / `chat_template.json`, overriding the config. */
  chatTemplate?: string | Record<string, string>;
  /** Name used in error messages (a directory). */
  source?: string;
}

/** Token ids of a conversation with a per-token loss mask (see {@link Tokenizer.encodeChat}). */
export interface EncodedChat {
  ids: number[];
  /** `trainable[t]`: token t belongs to an assistant turn (a loss target). */
  trainable: boolean[];
}

/** The files {@link Tokenizer.fromDir} and {@link Tokenizer.fromSource} read; only `tokenizer.json` is required. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'chat_template.jinja',
  'chat_template.json',
] as const;

type TokenizerFileName = (typeof TOKENIZER_FILES)[number];

/** `name` parsed as JSON (`undefined` when the text is), with errors naming `source/name`. */
function parseJsonFile(text: string | undefined, source: string, name: TokenizerFileName, required: boolean): unknown {
  const file = `${source.replace(/\/+$/, '')}/${name}`;
  if (text === undefined) {
    if (required) throw new UserError(`${file}: file not found`);
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: malformed JSON: ${(e as Error).message}`);
  }
}

/**
 * A tokenizer loaded from a Hugging Face model directory (or the same files through a
 * {@link FileSource}).
 *
 * Encoding with special tokens follows transformers: when `tokenizer_config.json` sets
 * `add_bos_token` or `add_eos_token` (LLaMA, Mistral, the tokenizers `trainBpe` writes) those
 * flags decide; otherwise the `post_processor` of `tokenizer.json` does (e.g. GPT-2/Qwen2 add
 * nothing, LLaMA-3 adds `<|begin_of_text|>`). Decoding skips ids that are not in the
 * vocabulary (models often pad the embedding beyond it) and, unless the config says
 * otherwise, does not apply transformers' `clean_up_tokenization_spaces`, so decode inverts
 * encode.
 */
export class Tokenizer {
  /** Vocabulary size including added tokens (max id + 1), transformers' `len(tokenizer)`. */
  readonly vocabSize: number;
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly padToken?: string;
  readonly unkToken?: string;
  readonly bosTokenId?: number;
  /** Ids that end generation: the config's EOS token, then generation_config's eos ids. */
  readonly eosTokenIds: number[];
  readonly padTokenId?: number;
  readonly unkTokenId?: number;
  /** `model_max_length`, when the config sets a real one. */
  readonly modelMaxLength?: number;

  private readonly inner: HfTokenizer;
  private readonly settings: TokenizerSettings;
  private readonly specialIds: Set<number>;
  private readonly source: string;
  private readonly explicitSpecials: boolean;

  private constructor(inner: HfTokenizer, settings: TokenizerSettings, gen: GenerationTokenIds, source: string) {
    this.inner = inner;
    this.settings = settings;
    this.source = source;
    let maxId = -1;
    for (const id of inner.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    const idOf = (role: 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token') => {
      const tok = settings.specialTokens[role];
      if (tok === undefined) return undefined;
      const id = inner.token_to_id(tok);
      if (id === undefined) throw new UserError(`${source}: ${role} '${tok}' is not in the vocabulary`);
      return id;
    };
    this.bosToken = settings.specialTokens.bos_token;
    this.eosToken = settings.specialTokens.eos_token;
    this.padToken = settings.specialTokens.pad_token;
    this.unkToken = settings.specialTokens.unk_token;
    this.bosTokenId = idOf('bos_token') ?? gen.bosTokenId;
    this.padTokenId = idOf('pad_token') ?? gen.padTokenId;
    this.unkTokenId = idOf('unk_token');
    const eos = idOf('eos_token');
    this.eosTokenIds = [...new Set([...(eos === undefined ? [] : [eos]), ...gen.eosTokenIds])];
    this.modelMaxLength = settings.modelMaxLength;

    this.specialIds = new Set<number>();
    for (const [id, tok] of inner.get_added_tokens_decoder()) if (tok.special) this.specialIds.add(id);
    for (const s of [...Object.values(settings.specialTokens), ...settings.additionalSpecialTokens]) {
      const id = inner.token_to_id(s);
      if (id !== undefined) this.specialIds.add(id);
    }

    this.explicitSpecials = settings.addBosToken !== undefined || settings.addEosToken !== undefined;
    if (settings.addBosToken === true && this.bosTokenId === undefined) {
      throw new UserError(`${source}: add_bos_token is true but there is no bos_token`);
    }
    if (settings.addEosToken === true && eos === undefined) {
      throw new UserError(`${source}: add_eos_token is true but there is no eos_token`);
    }
  }

  /**
   * Load `tokenizer.json` (required), `tokenizer_config.json`, `special_tokens_map.json`,
   * `generation_config.json`, `chat_template.jinja`/`chat_template.json` (optional) from `dir`.
   */
  static fromDir(dir: string): Tokenizer {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir}: not a directory`);
    return Tokenizer.fromFileTexts((name) => {
      const file = path.join(dir, name);
      return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    }, dir);
  }

  /**
   * {@link Tokenizer.fromDir} through a {@link FileSource} (URLs, browser `File`s, memory):
   * the same files, the same errors naming `<source label>/<file>`.
   */
  static async fromSource(src: FileSource): Promise<Tokenizer> {
    const texts = new Map<string, string | undefined>();
    for (const name of TOKENIZER_FILES) texts.set(name, await readText(src, name));
    return Tokenizer.fromFileTexts((name) => texts.get(name), src.label);
  }

  /** The loading both {@link Tokenizer.fromDir} and {@link Tokenizer.fromSource} do, given each file's text. */
  private static fromFileTexts(text: (name: TokenizerFileName) => string | undefined, source: string): Tokenizer {
    const json = (name: TokenizerFileName, required = false) => parseJsonFile(text(name), source, name, required) as object | undefined;
    const tokenizerJson = json('tokenizer.json', true)!;
    const config = json('tokenizer_config.json');
    const specialTokensMap = json('special_tokens_map.json');
    const generationConfig = json('generation_config.json');
    let chatTemplate: string | Record<string, string> | undefined;
    for (const [name, isJinja] of [
      ['chat_template.jinja', true],
      ['chat_template.json', false],
    ] as const) {
      const t = text(name);
      if (chatTemplate === undefined && t !== undefined) {
        chatTemplate = parseChatTemplateFile(t, isJinja, `${source.replace(/\/+$/, '')}/${name}`);
      }
    }
    return Tokenizer.fromJson(tokenizerJson, config, {
      generationConfig,
      specialTokensMap,
      chatTemplate,
      source,
    });
  }

  /** Build from parsed `tokenizer.json` and `tokenizer_config.json` objects (neither is modified). */
  static fromJson(tokenizerJson: object, tokenizerConfig?: object, side: TokenizerSideFiles = {}): Tokenizer {
    const source = side.source ?? 'tokenizer';
    if (tokenizerJson === null || typeof tokenizerJson !== 'object' || Array.isArray(tokenizerJson)) {
      throw new UserError(`${source}: tokenizer.json must be a JSON object`);
    }
    const tj = tokenizerJson as Record<string, unknown>;
    if (tj.model === null || typeof tj.model !== 'object') {
      throw new UserError(`${source}: tokenizer.json has no 'model' object`);
    }
    const settings = parseTokenizerConfig(
      tokenizerConfig ?? {},
      `${source}/tokenizer_config.json`,
      side.specialTokensMap,
      `${source}/special_tokens_map.json`,
    );
    if (side.chatTemplate !== undefined) settings.chatTemplates = side.chatTemplate;
    const gen: GenerationTokenIds =
      side.generationConfig === undefined
        ? { eosTokenIds: [] }
        : parseGenerationConfig(side.generationConfig, `${source}/generation_config.json`);
    const normalized = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...tj,
    };
    let inner: HfTokenizer;
    try {
      inner = new HfTokenizer(normalized, { ...settings.flatConfig });
    } catch (e) {
      throw new UserError(`${source}/tokenizer.json: cannot build the tokenizer: ${(e as Error).message}`);
    }
    return new Tokenizer(inner, settings, gen, source);
  }

  /** The first EOS id (the one the model was trained to emit), if any. */
  get eosTokenId(): number | undefined {
    return this.eosTokenIds[0];
  }

  /** Whether the model ships a chat template (otherwise the documented default is used). */
  get hasChatTemplate(): boolean {
    return this.settings.chatTemplates !== undefined;
  }

  /** The model's chat template(s), if any. */
  get chatTemplates(): string | Record<string, string> | undefined {
    return this.settings.chatTemplates;
  }

  /** Text -> ids. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new UserError(`${this.source}: encode expects a string, got ${typeof text}`);
    const add = opts.addSpecialTokens ?? true;
    if (!this.explicitSpecials) return this.inner.encode(text, { add_special_tokens: add }).ids;
    const ids = this.inner.encode(text, { add_special_tokens: false }).ids;
    if (!add) return ids;
    const out = this.settings.addBosToken === true ? [this.bosTokenId as number, ...ids] : ids;
    if (this.settings.addEosToken === true) out.push(this.eosTokenIds[0]);
    return out;
  }

  /** Encode several texts (no padding; see the data pipeline for batching). */
  encodeBatch(texts: readonly string[], opts: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  /** Ids -> text. Ids outside the vocabulary are skipped. */
  decode(ids: readonly number[] | Int32Array, opts: DecodeOptions = {}): string {
    const known: number[] = [];
    for (const id of ids) if (this.inner.id_to_token(id) !== undefined) known.push(id);
    if (known.length === 0) return '';
    return this.inner.decode(known, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.settings.cleanUpTokenizationSpaces,
    });
  }

  /** A {@link StreamDecoder} over this tokenizer, for printing tokens as they are generated. */
  decodeStream(opts: StreamDecoderOptions = {}): StreamDecoder {
    return new StreamDecoder(this, opts);
  }

  /** The id of a token string (including added tokens), if it is in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  /** The token string of an id, if any. */
  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  /** Is `id` a special token (BOS/EOS/PAD/UNK, added special tokens)? */
  isSpecialId(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The special-token strings a chat template sees. */
  get specialTokenStrings(): SpecialTokenStrings {
    return { ...this.settings.specialTokens, additional_special_tokens: [...this.settings.additionalSpecialTokens] };
  }

  /**
   * Render a conversation with the model's chat template (or {@link DEFAULT_CHAT_TEMPLATE}
   * when it has none), as transformers' `apply_chat_template(..., tokenize=False)`.
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const { template, isDefault } = selectChatTemplate(this.settings.chatTemplates, opts, this.source);
    const specials = this.specialTokenStrings;
    if (isDefault) specials.eos_token ??= '';
    return renderChatTemplate(template, messages, specials, opts, `${this.source}: chat template`);
  }

  /**
   * The rendered conversation split into segments, assistant turns marked trainable (see
   * {@link chatSegments}); the texts concatenate to `applyChatTemplate(messages, opts)`.
   */
  chatSegments(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): ChatSegment[] {
    const render = (msgs: readonly ChatMessage[], gen: boolean) =>
      this.applyChatTemplate(msgs, { ...opts, addGenerationPrompt: gen });
    return chatSegments(render, messages, opts.addGenerationPrompt ?? false, `${this.source}: chat template`);
  }

  /**
   * Tokenise a conversation and mark the tokens of assistant turns (for loss masking).
   * The ids equal `encode(applyChatTemplate(messages, opts), {addSpecialTokens: false})`
   * (templates write BOS themselves, as transformers assumes). Each segment boundary is
   * mapped to a token index by the longest common prefix of the ids of the text before the
   * boundary and the ids of the whole text; a token straddling a boundary goes to the later
   * segment.
   */
  encodeChat(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): EncodedChat {
    const segments = this.chatSegments(messages, opts);
    const full = segments.map((s) => s.text).join('');
    const ids = this.encode(full, { addSpecialTokens: false });
    const trainable = new Array<boolean>(ids.length).fill(false);
    let charPos = 0;
    let tokStart = 0;
    segments.forEach((seg, k) => {
      charPos += seg.text.length;
      let tokEnd = ids.length;
      if (k < segments.length - 1) {
        const prefixIds = this.encode(full.slice(0, charPos), { addSpecialTokens: false });
        tokEnd = 0;
        while (tokEnd < prefixIds.length && tokEnd < ids.length && prefixIds[tokEnd] === ids[tokEnd]) tokEnd++;
        tokEnd = Math.max(tokEnd, tokStart);
      }
      if (seg.trainable) for (let t = tokStart; t < tokEnd; t++) trainable[t] = true;
      tokStart = tokEnd;
    });
    return { ids, trainable };
  }
}
