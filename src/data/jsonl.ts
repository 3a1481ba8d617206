/**
 * Streaming JSONL reading with `file:line` errors.
 *
 * Lines are split from the file's bytes as they stream in, so files larger than memory can be
 * scanned, and each line is decoded as strict UTF-8 (invalid bytes are a `path:line: invalid
 * UTF-8` error, never silently replaced). Blank lines (only whitespace) are skipped; every other
 * line must hold one JSON value. A line that is not valid JSON fails with a {@link UserError}
 * `path:line: invalid JSON (reason)`.
 */
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import { decodeUtf8Line } from '../io/text.ts';

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
    stream = fs.createReadStream('', { fd });
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let lineNo = 0;
  try {
    for await (const bytes of byteLines(stream)) {
      lineNo++;
      // Strict decoding: invalid UTF-8 is an error naming the line, never U+FFFD.
      const raw = decodeUtf8Line(bytes, file, lineNo);
      // A UTF-8 byte-order mark on the first line is not part of the JSON.
      const text = lineNo === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
      if (text.trim() === '') continue;
      yield { file, line: lineNo, value: parseJsonLine(text, file, lineNo) };
    }
  } finally {
    stream.destroy();
  }
}

/**
 * The lines of a byte stream, without their terminators: `\n`, `\r\n` or a lone `\r` (as
 * `readline` counts them), so line numbers match what editors show. A final line without a
 * terminator is yielded too; a terminator at the very end adds no empty line.
 */
async function* byteLines(stream: AsyncIterable<Buffer>): AsyncGenerator<Uint8Array> {
  let pending: Buffer[] = [];
  let afterCr = false; // the previous chunk ended with \r: a leading \n belongs to it
  for await (const chunk of stream) {
    let start = 0;
    if (afterCr && chunk.length > 0 && chunk[0] === 0x0a) start = 1;
    afterCr = false;
    for (let i = start; i < chunk.length; i++) {
      const b = chunk[i];
      if (b !== 0x0a && b !== 0x0d) continue;
      pending.push(chunk.subarray(start, i));
      yield pending.length === 1 ? pending[0] : Buffer.concat(pending);
      pending = [];
      if (b === 0x0d) {
        if (i + 1 < chunk.length) {
          if (chunk[i + 1] === 0x0a) i++;
        } else {
          afterCr = true;
        }
      }
      start = i + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) yield Buffer.concat(pending);
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
