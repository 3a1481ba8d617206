/**
 * Strict UTF-8 text input. Node's `'utf8'` decoding silently turns invalid bytes into U+FFFD, so
 * a Latin-1 or truncated file would train on replacement characters without a word. Every text
 * file mor-peft reads as data or config goes through here instead: invalid UTF-8 is a
 * {@link UserError} naming `file:line` and the byte's column.
 */
import * as fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { UserError } from '../errors.ts';

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Offset of the first byte of `bytes` that does not start or continue a valid UTF-8 sequence
 * (overlong forms, surrogates and code points above U+10FFFF are invalid, as for TextDecoder);
 * -1 when all of it is valid.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0; // no overlong
      if (b === 0xed) hi = 0x9f; // no surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f; // <= U+10FFFF
    } else return i;
    if (i + len > n) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return i;
    i += len;
  }
  return -1;
}

/** The error for invalid bytes at `offset` of line `line` (1-based) of `file`. */
function invalidUtf8(file: string, line: number, bytes: Uint8Array, offset: number): UserError {
  const hex = bytes[offset].toString(16).padStart(2, '0');
  return new UserError(`${file}:${line}: invalid UTF-8 (byte 0x${hex} at column ${offset + 1}); save the file as UTF-8`);
}

/** Decode one line's bytes strictly; `line` is 1-based, for the message. */
export function decodeUtf8Line(bytes: Uint8Array, file: string, line: number): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw invalidUtf8(file, line, bytes, Math.max(0, firstInvalidUtf8(bytes)));
  }
}

/** Decode a whole file's bytes strictly (a leading byte-order mark is dropped). */
export function decodeUtf8Strict(bytes: Uint8Array, file: string): string {
  if (!isUtf8(bytes)) {
    const bad = firstInvalidUtf8(bytes);
    let line = 1;
    let start = 0;
    for (let i = 0; i < bad; i++) {
      if (bytes[i] === 0x0a) {
        line++;
        start = i + 1;
      }
    }
    throw invalidUtf8(file, line, bytes.subarray(start), bad - start);
  }
  const text = decoder.decode(bytes);
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Read a UTF-8 text file strictly.
 * @throws UserError `file: cannot read (ENOENT)` or `file:line: invalid UTF-8 (...)`.
 */
export function readTextFileStrict(file: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeUtf8Strict(bytes, file);
}
