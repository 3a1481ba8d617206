/**
 * Streaming JSONL reading with `file:line` errors.
 *
 * Lines are read with `readline` over a file stream, so files larger than memory can be
 * scanned. Blank lines (only whitespace) are skipped; every other line must hold one JSON
 * value. A line that is not valid JSON fails with a {@link UserError}
 * `path:line: invalid JSON (reason)`.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { UserError } from '../errors.ts';

/** One parsed JSONL line with its place in the file (1-based line number). */
export interface JsonlLine {
  file: string;
  line: number;
  value: unknown;
}

/** A place in an input file, for error messages: `file:line`. */
export function where(file: string, line: number): string {
  return `${file}:${line}`;
}

/**
 * Read `file` line by line and yield each non-blank line parsed as JSON.
 * @throws UserError when the file cannot be opened (`path: cannot read (ENOENT)`) or a line is
 *   not valid JSON (`path:line: invalid JSON (...)`).
 */
export async function* readJsonl(file: string): AsyncGenerator<JsonlLine> {
  let stream: fs.ReadStream;
  try {
    // Open synchronously first so a missing file is a clean UserError, not a stream event.
    const fd = fs.openSync(file, 'r');
    if (fs.fstatSync(fd).isDirectory()) {
      fs.closeSync(fd);
      throw new UserError(`${file}: is a directory, expected a JSONL file`);
    }
    stream = fs.createReadStream('', { fd, encoding: 'utf8' });
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const raw of rl) {
      lineNo++;
      // A UTF-8 byte-order mark on the first line is not part of the JSON.
      const text = lineNo === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
      if (text.trim() === '') continue;
      yield { file, line: lineNo, value: parseJsonLine(text, file, lineNo) };
    }
  } finally {
    rl.close();
    stream.destroy();
  }
}

/** Read a whole JSONL file into memory (see {@link readJsonl}). */
export async function readJsonlAll(file: string): Promise<JsonlLine[]> {
  const out: JsonlLine[] = [];
  for await (const l of readJsonl(file)) out.push(l);
  return out;
}

/** Parse one line, turning a syntax error into `file:line: invalid JSON (...)`. */
export function parseJsonLine(text: string, file: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    throw new UserError(`${where(file, line)}: invalid JSON (${msg})`);
  }
}
