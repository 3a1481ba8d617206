/**
 * The Hugging Face tokenizer side files, parsed once at the boundary (snake_case in,
 * camelCase out): `tokenizer_config.json`, `special_tokens_map.json` and the EOS/BOS/PAD ids
 * of `generation_config.json`.
 */
import { z } from 'zod';
import { UserError } from '../errors.ts';
import type { ChatTemplates } from './chatTemplate.ts';

/** A special token as written in the files: a string, or an AddedToken object `{content, ...}`. */
const tokenSchema = z.union([z.string(), z.looseObject({ content: z.string() })]).nullable().optional();

const templateListSchema = z.array(z.object({ name: z.string(), template: z.string() }));

const tokenizerConfigSchema = z.looseObject({
  bos_token: tokenSchema,
  eos_token: tokenSchema,
  unk_token: tokenSchema,
  pad_token: tokenSchema,
  sep_token: tokenSchema,
  cls_token: tokenSchema,
  mask_token: tokenSchema,
  additional_special_tokens: z.array(z.union([z.string(), z.looseObject({ content: z.string() })])).optional(),
  add_bos_token: z.boolean().nullable().optional(),
  add_eos_token: z.boolean().nullable().optional(),
  chat_template: z.union([z.string(), templateListSchema]).nullable().optional(),
  model_max_length: z.number().nullable().optional(),
  clean_up_tokenization_spaces: z.boolean().nullable().optional(),
});

const idsSchema = z.union([z.number().int(), z.array(z.number().int())]).nullable().optional();
const generationConfigSchema = z.looseObject({
  bos_token_id: idsSchema,
  eos_token_id: idsSchema,
  pad_token_id: idsSchema,
});

/** The special-token roles transformers knows, by their file names. */
export const SPECIAL_TOKEN_KEYS = [
  'bos_token',
  'eos_token',
  'unk_token',
  'pad_token',
  'sep_token',
  'cls_token',
  'mask_token',
] as const;
/** One of {@link SPECIAL_TOKEN_KEYS}. */
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

/** What the tokenizer needs from `tokenizer_config.json` (+ `special_tokens_map.json`). */
export interface TokenizerSettings {
  /** Special token strings by role (`bos_token` -> `<s>`); absent roles are missing. */
  specialTokens: Partial<Record<SpecialTokenKey, string>>;
  additionalSpecialTokens: string[];
  /**
   * LLaMA-style explicit BOS/EOS insertion (`add_bos_token` / `add_eos_token`). When either is
   * set, it replaces the tokenizer.json post-processor, as transformers' fast tokenizers do.
   */
  addBosToken?: boolean;
  addEosToken?: boolean;
  chatTemplates?: ChatTemplates;
  /** Undefined when the file leaves it unset (transformers' 1e30 sentinel). */
  modelMaxLength?: number;
  /** transformers' `clean_up_tokenization_spaces`; default false here (lossless decode). */
  cleanUpTokenizationSpaces: boolean;
  /** The raw config with AddedToken objects flattened to strings (for @huggingface/tokenizers). */
  flatConfig: Record<string, unknown>;
}

/** Ids from `generation_config.json`. */
export interface GenerationTokenIds {
  bosTokenId?: number;
  eosTokenIds: number[];
  padTokenId?: number;
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

function formatIssue(source: string, error: z.ZodError): string {
  const issue = error.issues[0];
  const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return `${source}: field '${where}': ${issue.message}`;
}

/**
 * Parse `tokenizer_config.json` (and, overriding it as transformers does,
 * `special_tokens_map.json`). `source` names the file in error messages.
 */
export function parseTokenizerConfig(
  raw: unknown,
  source = 'tokenizer_config.json',
  specialTokensMap?: unknown,
  mapSource = 'special_tokens_map.json',
): TokenizerSettings {
  const parsed = tokenizerConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new UserError(formatIssue(source, parsed.error));
  const cfg: Record<string, unknown> = { ...parsed.data };
  if (specialTokensMap !== undefined) {
    const map = tokenizerConfigSchema.safeParse(specialTokensMap);
    if (!map.success) throw new UserError(formatIssue(mapSource, map.error));
    for (const key of [...SPECIAL_TOKEN_KEYS, 'additional_special_tokens'] as const) {
      const v = map.data[key];
      if (v !== undefined && v !== null) cfg[key] = v;
    }
  }
  const specialTokens: Partial<Record<SpecialTokenKey, string>> = {};
  const flatConfig: Record<string, unknown> = { ...cfg };
  for (const key of SPECIAL_TOKEN_KEYS) {
    const s = tokenString(cfg[key]);
    if (s !== undefined) specialTokens[key] = s;
    flatConfig[key] = s ?? null;
  }
  const additional = ((cfg.additional_special_tokens as unknown[] | undefined) ?? [])
    .map(tokenString)
    .filter((s): s is string => s !== undefined);
  flatConfig.additional_special_tokens = additional;

  let chatTemplates: ChatTemplates | undefined;
  const ct = cfg.chat_template as string | { name: string; template: string }[] | null | undefined;
  if (typeof ct === 'string') chatTemplates = ct;
  else if (Array.isArray(ct)) chatTemplates = Object.fromEntries(ct.map((t) => [t.name, t.template]));

  const mml = cfg.model_max_length as number | null | undefined;
  return {
    specialTokens,
    additionalSpecialTokens: additional,
    addBosToken: (cfg.add_bos_token as boolean | null | undefined) ?? undefined,
    addEosToken: (cfg.add_eos_token as boolean | null | undefined) ?? undefined,
    chatTemplates,
    modelMaxLength: typeof mml === 'number' && mml > 0 && mml < 1e15 ? mml : undefined,
    cleanUpTokenizationSpaces: (cfg.clean_up_tokenization_spaces as boolean | null | undefined) ?? false,
    flatConfig,
  };
}

/** Parse the token ids of `generation_config.json`. */
export function parseGenerationConfig(raw: unknown, source = 'generation_config.json'): GenerationTokenIds {
  const parsed = generationConfigSchema.safeParse(raw);
  if (!parsed.success) throw new UserError(formatIssue(source, parsed.error));
  const one = (v: number | number[] | null | undefined) => (Array.isArray(v) ? v[0] : (v ?? undefined));
  const eos = parsed.data.eos_token_id;
  return {
    bosTokenId: one(parsed.data.bos_token_id),
    eosTokenIds: eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos],
    padTokenId: one(parsed.data.pad_token_id),
  };
}

/**
 * Read a `chat_template.json` (`{"chat_template": ...}`) or `chat_template.jinja` (the raw
 * template) side file, which newer checkpoints use instead of the config field.
 */
export function parseChatTemplateFile(text: string, isJinja: boolean, source: string): ChatTemplates {
  if (isJinja) return text;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${source}: malformed JSON: ${(e as Error).message}`);
  }
  const parsed = z
    .object({ chat_template: z.union([z.string(), templateListSchema]) })
    .safeParse(raw);
  if (!parsed.success) throw new UserError(formatIssue(source, parsed.error));
  const ct = parsed.data.chat_template;
  return typeof ct === 'string' ? ct : Object.fromEntries(ct.map((t) => [t.name, t.template]));
}
