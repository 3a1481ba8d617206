/**
 * The record formats accepted in JSONL files, validated with zod at the file boundary.
 *
 * Training data (one of, detected by its fields):
 * - chat: `{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}` (Tulu-v2
 *   SFT format; at least one assistant turn, since loss is taken on assistant turns only);
 * - prompt/completion: `{"prompt": "...", "completion": "..."}` (loss on the completion);
 * - text: `{"text": "..."}` (loss on every token).
 * Every record may carry `"task": "name"`; without it the task is the file's base name
 * (`data/arith.train.jsonl` -> `arith.train`). Unknown extra fields (Tulu's `dataset`, `id`) are
 * ignored.
 *
 * Multiple-choice evaluation data:
 * `{"task"?, "question": "...", "choices": ["...", ...], "answer": <index>, "context"?: "..."}`
 * with at least two non-empty choices and `answer` an index into them.
 */
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors.ts';
import { where } from './jsonl.ts';

/** Chat roles understood by the renderer. */
export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

/** One chat message (a type alias, so it fits src/tokenizer's index-signature message type). */
export type ChatMessage = {
  role: ChatRole;
  content: string;
};

const taskField = z.string().min(1).optional();
const messageSchema = z.object({ role: z.enum(CHAT_ROLES), content: z.string() });

const chatSchema = z
  .object({ messages: z.array(messageSchema).min(1), task: taskField })
  .refine((r) => r.messages.some((m) => m.role === 'assistant'), {
    message: 'has no assistant message (nothing to learn from)',
    path: ['messages'],
  });
const promptCompletionSchema = z.object({
  prompt: z.string(),
  completion: z.string().min(1),
  task: taskField,
});
const textSchema = z.object({ text: z.string().min(1), task: taskField });

const multipleChoiceSchema = z
  .object({
    task: taskField,
    question: z.string().min(1),
    // One choice would always be "right" (100 % accuracy for any model): at least two.
    choices: z.array(z.string().min(1)).min(2),
    answer: z.number().int(),
    context: z.string().optional(),
  })
  .refine((r) => r.answer >= 0 && r.answer < r.choices.length, {
    message: 'is out of range',
    path: ['answer'],
  });

/** A validated training record, tagged by format, with its task and origin. */
export type DataRecord =
  | { format: 'chat'; messages: ChatMessage[]; task: string; file: string; line: number }
  | { format: 'prompt_completion'; prompt: string; completion: string; task: string; file: string; line: number }
  | { format: 'text'; text: string; task: string; file: string; line: number };

/** A validated multiple-choice item with its origin. */
export interface MultipleChoiceItem {
  task: string;
  question: string;
  choices: string[];
  /** Index of the correct choice. */
  answer: number;
  context?: string;
  file: string;
  line: number;
}

/** A validated `{prompt, completion}` item for generation-based exact match. */
export interface ExactMatchItem {
  task: string;
  prompt: string;
  completion: string;
  file: string;
  line: number;
}

/** Default task name of a file: its base name without `.jsonl`/`.json` (`a/b/qa.test.jsonl` -> `qa.test`). */
export function taskNameOf(file: string): string {
  return path.basename(file).replace(/\.(jsonl|json|ndjson)$/i, '');
}

/**
 * Validate one training record. `value` is the parsed JSON of `file:line`.
 * @throws UserError `file:line: <reason>`.
 */
export function parseDataRecord(value: unknown, file: string, line: number, defaultTask = taskNameOf(file)): DataRecord {
  const obj = expectObject(value, file, line);
  if ('messages' in obj) {
    const r = check(chatSchema, obj, file, line);
    return { format: 'chat', messages: r.messages, task: r.task ?? defaultTask, file, line };
  }
  if ('prompt' in obj || 'completion' in obj) {
    const r = check(promptCompletionSchema, obj, file, line);
    return { format: 'prompt_completion', prompt: r.prompt, completion: r.completion, task: r.task ?? defaultTask, file, line };
  }
  if ('text' in obj) {
    const r = check(textSchema, obj, file, line);
    return { format: 'text', text: r.text, task: r.task ?? defaultTask, file, line };
  }
  throw new UserError(
    `${where(file, line)}: unrecognised record: expected a "messages", "prompt"/"completion" or "text" field`,
  );
}

/** Validate one multiple-choice item. @throws UserError `file:line: <reason>`. */
export function parseMultipleChoiceItem(
  value: unknown,
  file: string,
  line: number,
  defaultTask = taskNameOf(file),
): MultipleChoiceItem {
  const r = check(multipleChoiceSchema, expectObject(value, file, line), file, line);
  const item: MultipleChoiceItem = { task: r.task ?? defaultTask, question: r.question, choices: r.choices, answer: r.answer, file, line };
  if (r.context !== undefined) item.context = r.context;
  return item;
}

/** Validate one exact-match item (`{prompt, completion, task?}`). @throws UserError `file:line: <reason>`. */
export function parseExactMatchItem(value: unknown, file: string, line: number, defaultTask = taskNameOf(file)): ExactMatchItem {
  const r = check(promptCompletionSchema, expectObject(value, file, line), file, line);
  return { task: r.task ?? defaultTask, prompt: r.prompt, completion: r.completion, file, line };
}

function expectObject(value: unknown, file: string, line: number): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UserError(`${where(file, line)}: expected a JSON object, got ${typeName(value)}`);
  }
  return value as Record<string, unknown>;
}

function check<T>(schema: z.ZodType<T>, value: Record<string, unknown>, file: string, line: number): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new UserError(`${where(file, line)}: ${describeIssue(r.error.issues[0], value)}`);
}

/** One readable line for a zod issue: `field "messages[0].role": unknown value "bot" (...)`. */
function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const field = formatPath(issue.path);
  const got = valueAt(root, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      if (got === undefined) return `missing field "${field}"`;
      if (issue.expected === 'int' && typeof got === 'number') return `field "${field}" must be an integer, got ${got}`;
      return `field "${field}": expected ${issue.expected}, got ${typeName(got)}`;
    case 'invalid_value':
      return `field "${field}": unknown value ${JSON.stringify(got)} (expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')})`;
    case 'too_small':
      if (Array.isArray(got)) {
        if (got.length === 0) return `field "${field}" is empty`;
        const min = Number((issue as { minimum?: number | bigint }).minimum);
        return `field "${field}" has ${got.length} item${got.length === 1 ? '' : 's'}, needs at least ${min}`;
      }
      if (typeof got === 'string') return `field "${field}" is an empty string`;
      return `field "${field}": ${issue.message}`;
    case 'custom':
      if (field === 'answer') return `field "answer" = ${JSON.stringify(got)} is out of range (${rangeHint(root)})`;
      return `field "${field}" ${issue.message}`;
    default:
      return `field "${field}": ${issue.message}`;
  }
}

function rangeHint(root: unknown): string {
  const n = Array.isArray((root as { choices?: unknown }).choices) ? (root as { choices: unknown[] }).choices.length : 0;
  return `expected an integer index in 0..${n - 1} for ${n} choices`;
}

function formatPath(p: readonly PropertyKey[]): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s === '' ? String(k) : `.${String(k)}`;
  return s;
}

function valueAt(root: unknown, p: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const k of p) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}
