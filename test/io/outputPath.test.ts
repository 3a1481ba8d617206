/** Output locations: unusable ones are one-line UserErrors and nothing is created; real paths see through symlinks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { checkOutputDir, isSameOrInside, realPath } from '../../src/io/outputPath.ts';
import { UserError } from '../../src/errors.ts';
import { tempDir } from './helpers.ts';

const userError = (re: RegExp) => (e: unknown): boolean => e instanceof UserError && re.test(e.message);

test('checkOutputDir accepts an existing folder and a new path under one, and creates nothing', () => {
  const { dir, cleanup } = tempDir();
  try {
    checkOutputDir(dir, '--out');
    checkOutputDir(join(dir, 'a', 'b', 'c'), '--out');
    assert.deepEqual(fs.readdirSync(dir), [], 'no probe or folder left behind');
  } finally {
    cleanup();
  }
});

test('checkOutputDir refuses an existing file and a path under a file, naming the file', () => {
  const { dir, cleanup } = tempDir();
  try {
    const f = join(dir, 'notes.txt');
    fs.writeFileSync(f, 'keep me');
    assert.throws(() => checkOutputDir(f, '--out-dir'), userError(/^--out-dir .*notes\.txt: is a file, not a directory$/));
    assert.throws(() => checkOutputDir(join(f, 'sub', 'deeper'), '--out'), userError(new RegExp(`^--out .*deeper: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is a file, not a directory$`)));
    assert.equal(fs.readFileSync(f, 'utf8'), 'keep me');
  } finally {
    cleanup();
  }
});

test('checkOutputDir refuses a folder it cannot write in (probed by writing, as root too)', (t) => {
  // /proc and /sys refuse new entries even to root, where access(W_OK) says yes.
  const target = ['/proc', '/sys'].map((p) => join(p, 'mor-out-check')).find((p) => {
    try {
      fs.mkdirSync(p);
      fs.rmdirSync(p);
      return false;
    } catch {
      return fs.existsSync(join(p, '..'));
    }
  });
  if (!target) {
    t.skip('no unwritable folder on this machine');
    return;
  }
  assert.throws(() => checkOutputDir(target, '--out'), userError(/^--out \/(proc|sys)\/mor-out-check: cannot write in \/(proc|sys) \(.+\)$/));
});

test('realPath resolves symlinks, also for paths that do not exist yet', () => {
  const { dir, cleanup } = tempDir();
  try {
    const real = fs.realpathSync(dir);
    fs.mkdirSync(join(dir, 'model'));
    fs.symlinkSync(join(dir, 'model'), join(dir, 'link'));
    assert.equal(realPath(join(dir, 'link')), join(real, 'model'));
    assert.equal(realPath(join(dir, 'link', 'new', '..', 'x')), join(real, 'model', 'x'));
    assert.equal(realPath(join(dir, 'model') + '/'), join(real, 'model'));
    assert.ok(isSameOrInside(join(real, 'model', 'x'), join(real, 'model')));
    assert.ok(isSameOrInside(join(real, 'model'), join(real, 'model')));
    assert.ok(!isSameOrInside(join(real, 'model2'), join(real, 'model')));
    assert.ok(!isSameOrInside(real, join(real, 'model')));
  } finally {
    cleanup();
  }
});
