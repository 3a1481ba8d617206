/**
 * JSONL already in memory (a fetched file in a browser, a `File`'s text): the same lines and
 * `file:line` errors as the streaming reader in jsonl.ts, without Node. Lines end at `\n`,
 * `\r\n` or a lone `\r`; blank lines are skipped; a leading byte-order mark is ignored.
 */
import { parseJsonLine, type JsonlLine } from './jsonl.ts';

/** Every non-blank line of `text` parsed as JSON; `file` names it in errors. */
export function parseJsonlText(text: string, file: string): JsonlLine[] {
  const out: JsonlLine[] = [];
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  body.split(/\r\n|\r|\n/).forEach((line, i) => {
    if (line.trim() !== '') out.push({ file, line: i + 1, value: parseJsonLine(line, file, i + 1) });
  });
  return out;
}
