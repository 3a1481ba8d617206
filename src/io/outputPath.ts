/**
 * Output locations, checked before any work: every command that writes (`mor train --out-dir`,
 * `mor eval --out`, `mor merge --out`, `mor routing --out`, `mor demo --out`,
 * `mor experiment --out`) calls {@link checkOutputDir} first, so a location that cannot be used
 * (an existing file, a path under a file, a read-only or forbidden folder) is one `error:` line
 * and exit 1 before a model is loaded or a step is trained, and nothing is created.
 *
 * {@link realPath} compares locations by what they are, not how they are spelled (symlinks,
 * `..`, trailing slashes), for checks such as "the merge output is not the base model folder".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.ts';
import { envErrorReason } from './atomic.ts';

/** The nearest existing ancestor of `abs` (itself included) and whether it is a directory. */
function nearestExisting(abs: string): { at: string; isDir: boolean } {
  let p = abs;
  for (;;) {
    try {
      return { at: p, isDir: fs.statSync(p).isDirectory() };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOTDIR: some ancestor is a file; ENOENT: not created yet. Either way look further up.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      const up = path.dirname(p);
      if (up === p) return { at: p, isDir: false };
      p = up;
    }
  }
}

/**
 * Check that `dir` can hold a command's outputs: it is a directory, or it does not exist yet
 * and its nearest existing ancestor is a directory in which this process can create entries
 * (probed by creating and removing an empty temporary directory, which catches read-only file
 * systems and permissions that `access()` misses). Creates nothing.
 * @param flag how the user gave the location (`--out-dir`), for the message.
 * @throws UserError `--out /x/file: is a file, not a directory`,
 *   `--out /x/file/sub: /x/file is a file, not a directory`,
 *   `--out /ro/x: cannot write in /ro (read-only file system)`.
 */
export function checkOutputDir(dir: string, flag: string): void {
  const abs = path.resolve(dir);
  let found: { at: string; isDir: boolean };
  try {
    found = nearestExisting(abs);
  } catch (e) {
    throw new UserError(`${flag} ${dir}: cannot use it (${envErrorReason(e) ?? (e as Error).message})`);
  }
  if (!found.isDir) {
    if (found.at === abs) throw new UserError(`${flag} ${dir}: is a file, not a directory`);
    throw new UserError(`${flag} ${dir}: ${found.at} is a file, not a directory`);
  }
  try {
    fs.rmdirSync(fs.mkdtempSync(path.join(found.at, '.mor-write-check-')));
  } catch (e) {
    throw new UserError(`${flag} ${dir}: cannot write in ${found.at} (${envErrorReason(e) ?? (e as Error).message})`);
  }
}

/**
 * The real path of `p` (symlinks resolved), also when `p` does not exist yet: the real path of
 * its nearest existing ancestor joined with the rest.
 */
export function realPath(p: string): string {
  const abs = path.resolve(p);
  const { at } = nearestExisting(abs);
  let real: string;
  try {
    real = fs.realpathSync(at);
  } catch {
    real = at;
  }
  return path.join(real, path.relative(at, abs));
}

/** Is `inner` (a real path) `outer` itself or inside it? */
export function isSameOrInside(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
