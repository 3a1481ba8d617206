/**
 * Atomic file writes: the data goes to a temporary file in the destination's directory,
 * is flushed to disk (fsync), then renamed over the destination, and the directory entry is
 * flushed too. A crash or a full disk therefore leaves either the old file or the new one,
 * never a truncated mix — checkpoints and adapters are written this way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserError } from '../errors.ts';

/** A unique temporary name next to `target` (same directory, so the rename stays atomic). */
function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** fsync a directory (or file) so a rename is durable; some platforms refuse, which is harmless. */
export function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Directories cannot be opened/fsynced on some platforms (Windows): best effort.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Write all of `data` to `fd`, looping over short writes. */
function writeAllSync(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.byteLength) {
    off += fs.writeSync(fd, data, off, data.byteLength - off);
  }
}

/**
 * Write `chunks` one after another to a temporary file, fsync, and rename it over `target`.
 * Used by writers that assemble a file from several buffers (e.g. safetensors header + tensors)
 * without concatenating them in memory first.
 */
export function writeChunksAtomicSync(target: string, chunks: Iterable<Uint8Array>): void {
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    for (const c of chunks) writeAllSync(fd, c);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* already failing */
    }
    throw asUserError(e, target);
  }
  fsyncDirSync(path.dirname(target));
}

const ENV_ERRORS: Record<string, string> = {
  ENOENT: 'no such directory',
  ENOTDIR: 'a parent is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'is a directory',
};

/** A short reason for a file-system error of the user's environment (`read-only file system`), or undefined for others. */
export function envErrorReason(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code && code in ENV_ERRORS ? ENV_ERRORS[code] : undefined;
}

/** Errors of the user's environment (missing directory, full disk) become one-line UserErrors. */
function asUserError(e: unknown, target: string): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && code in ENV_ERRORS) {
    return new UserError(`cannot write ${target}: ${ENV_ERRORS[code]} (nothing was changed)`, { cause: e });
  }
  return e;
}

/** Synchronous {@link writeFileAtomic}. Strings are written as UTF-8. */
export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeChunksAtomicSync(target, [bytes]);
}

/**
 * Atomically replace `target` with `data` (UTF-8 for strings): temp file in the same
 * directory, fsync, rename, fsync of the directory. On failure the temp file is removed and
 * `target` is untouched.
 *
 * The write is done synchronously, before this function returns, so the file is complete
 * whether or not the caller awaits; the returned promise rejects with the write's error.
 */
export function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  try {
    writeFileAtomicSync(target, data);
    return Promise.resolve();
  } catch (e) {
    return Promise.reject(e);
  }
}
