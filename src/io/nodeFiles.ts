/**
 * Node's side of src/io/files.ts: a directory as a {@link FileSource} / {@link FileSink}.
 * Kept apart so that a browser build of files.ts pulls in no `node:` module.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { writeFileAtomic } from './atomic.ts';
import { checkFileName, type FileSink, type FileSource } from './files.ts';

/** The files of directory `dir` (read lazily; a missing file reads as `undefined`). */
export function dirSource(dir: string): FileSource {
  return {
    label: dir,
    async read(name) {
      const file = path.join(dir, checkFileName(name));
      try {
        const buf = await fsp.readFile(file);
        return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
        throw new UserError(`${file}: ${code === 'EISDIR' ? 'a directory, not a file' : (e as Error).message}`);
      }
    },
  };
}

/** Writes into directory `dir` (created when missing), each file atomically. */
export function dirSink(dir: string): FileSink {
  return {
    label: dir,
    async write(name, data) {
      const file = path.join(dir, checkFileName(name));
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await writeFileAtomic(file, data);
    },
  };
}
