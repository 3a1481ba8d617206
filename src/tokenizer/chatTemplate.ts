/**
 * Chat templates: the Jinja templates Hugging Face models ship in `tokenizer_config.json`
 * (`chat_template`), rendered with `@huggingface/jinja` and the variables transformers'
 * `apply_chat_template` passes (`messages`, `add_generation_prompt`, `tools`, the special
 * token strings; `raise_exception` is a jinja global), plus the assistant-span bookkeeping
 * that loss masking needs (render the prefix up to each assistant turn, as TRL does).
 */
import { Template } from '@huggingface/jinja';
import { UserError } from '../errors.ts';

/** One chat message. Extra fields (`tool_calls`, `name`, ...) are passed to the template as-is. */
export interface ChatMessage {
  role: string;
  content: string;
  [field: string]: unknown;
}

/** Options of {@link renderChatTemplate} and `Tokenizer.applyChatTemplate`. */
export interface ChatTemplateOptions {
  /** Append the header that opens an assistant turn (for generation). Default false. */
  addGenerationPrompt?: boolean;
  /** Tool (function) schemas, passed to the template as `tools` (as transformers does). */
  tools?: unknown[];
  /** Pick a named template when `chat_template` is a list of `{name, template}`. */
  templateName?: string;
  /** Extra template variables (transformers' `**kwargs`), e.g. `{ date_string: '...' }`. */
  extra?: Record<string, unknown>;
}

/** A piece of a rendered conversation; `trainable` marks assistant output (loss targets). */
export interface ChatSegment {
  text: string;
  trainable: boolean;
}

/**
 * The template used when a model ships none (and the one `trainBpe` writes). Zephyr style:
 * every message renders as `<|{role}|>\n{content}{eos_token}\n`, and the generation prompt is
 * `<|assistant|>\n`. Ending each turn with the EOS token teaches a fine-tuned model to stop.
 * Example with eos `</s>`:
 * ```
 * <|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n
 * ```
 * `eos_token` renders as the empty string when the tokenizer has no EOS token.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{%- for message in messages %}\n" +
  "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}\n" +
  '{%- endfor %}\n' +
  '{%- if add_generation_prompt %}\n' +
  "{{- '<|assistant|>\\n' }}\n" +
  '{%- endif %}\n';

/** The special-token strings a template sees (transformers' `special_tokens_map`). */
export type SpecialTokenStrings = Partial<
  Record<'bos_token' | 'eos_token' | 'unk_token' | 'pad_token' | 'sep_token' | 'cls_token' | 'mask_token', string>
> & { additional_special_tokens?: string[] };

/** The chat templates of one tokenizer: a single string, or named ones (`default`, `tool_use`, ...). */
export type ChatTemplates = string | Record<string, string>;

const compiled = new Map<string, Template>();

function compile(template: string, source: string): Template {
  let t = compiled.get(template);
  if (t === undefined) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new UserError(`${source}: cannot parse the chat template: ${(e as Error).message}`);
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(template, t);
  }
  return t;
}

/**
 * Choose the template to use, as transformers does: an explicit `templateName`; else
 * `tool_use` when tools are given and it exists; else `default`.
 */
export function selectChatTemplate(
  templates: ChatTemplates | undefined,
  opts: Pick<ChatTemplateOptions, 'templateName' | 'tools'>,
  source: string,
): { template: string; isDefault: boolean } {
  if (templates === undefined) {
    if (opts.templateName !== undefined) {
      throw new UserError(
        `${source}: no chat template named '${opts.templateName}' (the tokenizer has no chat_template)`,
      );
    }
    return { template: DEFAULT_CHAT_TEMPLATE, isDefault: true };
  }
  if (typeof templates === 'string') {
    if (opts.templateName !== undefined && opts.templateName !== 'default') {
      throw new UserError(`${source}: no chat template named '${opts.templateName}' (only a single unnamed template)`);
    }
    return { template: templates, isDefault: false };
  }
  const names = Object.keys(templates);
  let name = opts.templateName;
  if (name === undefined) name = opts.tools !== undefined && 'tool_use' in templates ? 'tool_use' : 'default';
  const template = templates[name];
  if (template === undefined) {
    throw new UserError(`${source}: no chat template named '${name}' (available: ${names.join(', ')})`);
  }
  return { template, isDefault: false };
}

/**
 * Render `messages` with a Jinja chat template, with the variables transformers passes.
 * Errors from the template (a `raise_exception(...)` call, a bad expression) become a
 * {@link UserError} naming `source`.
 */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  specialTokens: SpecialTokenStrings,
  opts: ChatTemplateOptions = {},
  source = 'chat template',
): string {
  validateMessages(messages, source);
  const t = compile(template, source);
  const vars: Record<string, unknown> = {
    ...(opts.extra ?? {}),
    ...specialTokens,
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    // raise_exception(message) and strftime_now(format) are @huggingface/jinja globals
  };
  if (opts.tools !== undefined) vars.tools = opts.tools;
  try {
    return t.render(vars);
  } catch (e) {
    throw new UserError(`${source}: ${(e as Error).message}`);
  }
}

function validateMessages(messages: readonly ChatMessage[], source: string): void {
  if (!Array.isArray(messages)) throw new UserError(`${source}: messages must be an array`);
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object' || typeof m.role !== 'string') {
      throw new UserError(`${source}: messages[${i}] must be an object with a string 'role'`);
    }
    if (typeof m.content !== 'string' && !Array.isArray(m.content) && m.content !== null) {
      throw new UserError(`${source}: messages[${i}].content must be a string`);
    }
  });
}

/**
 * Split a rendered conversation into segments, marking the text each assistant message
 * contributes (its content plus whatever the template appends, e.g. the EOS token) as
 * trainable. For assistant message i: `prefix` = render(messages[0..i), generation prompt on)
 * and `upTo` = render(messages[0..i]); the assistant span is upTo minus prefix. Requires
 * the template to be prefix-stable (the render of a shorter conversation is a prefix of the
 * render of a longer one), which holds for common templates (ChatML, LLaMA-2, Zephyr,
 * LLaMA-3); a UserError names the message where it does not.
 *
 * The concatenated segment texts equal `render(messages, {addGenerationPrompt})`.
 */
export function chatSegments(
  render: (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => string,
  messages: readonly ChatMessage[],
  addGenerationPrompt = false,
  source = 'chat template',
): ChatSegment[] {
  const full = render(messages, false);
  const segments: ChatSegment[] = [];
  let cursor = 0;
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    let prefix: string;
    try {
      prefix = render(messages.slice(0, i), true);
    } catch (e) {
      const msg = (e as Error).message;
      throw new UserError(`${source}: cannot render the conversation before assistant message ${i}: ${msg}`);
    }
    const upTo = render(messages.slice(0, i + 1), false);
    if (!upTo.startsWith(prefix) || !full.startsWith(upTo) || prefix.length < cursor) {
      throw new UserError(
        `${source}: the template is not prefix-stable at message ${i} (the render of the earlier messages ` +
          'with the generation prompt is not a prefix of the full render), so the assistant span cannot be located',
      );
    }
    if (prefix.length > cursor) segments.push({ text: full.slice(cursor, prefix.length), trainable: false });
    if (upTo.length > prefix.length) segments.push({ text: full.slice(prefix.length, upTo.length), trainable: true });
    cursor = upTo.length;
  });
  if (full.length > cursor) segments.push({ text: full.slice(cursor), trainable: false });
  if (addGenerationPrompt) {
    const withPrompt = render(messages, true);
    if (!withPrompt.startsWith(full)) {
      throw new UserError(`${source}: the render with the generation prompt does not extend the render without it`);
    }
    if (withPrompt.length > full.length) segments.push({ text: withPrompt.slice(full.length), trainable: false });
  }
  return segments;
}
