#!/usr/bin/env node
// Builds the optional OpenBLAS addon (native/blas) at `npm install` time.
// Never fails the install: it prints one line saying what happened and exits 0.
// Without OpenBLAS (or without a compiler) the library falls back to pure wasm.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addonDir = path.join(root, 'native', 'blas');
const say = (msg) => console.log(`mor-peft: native BLAS: ${msg}`);

/** Header + shared library locations of Debian/Ubuntu's libopenblas-dev (and common others). */
function findOpenBlas() {
  const headers = ['/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h',
    '/usr/include/cblas.h', '/usr/include/openblas/cblas.h', '/usr/local/include/cblas.h'];
  const libs = ['/usr/lib/x86_64-linux-gnu/libopenblas.so', '/usr/lib/aarch64-linux-gnu/libopenblas.so',
    '/usr/lib/libopenblas.so', '/usr/lib64/libopenblas.so', '/usr/local/lib/libopenblas.so'];
  return { header: headers.find(existsSync), lib: libs.find(existsSync) };
}

/** node-gyp: npm's own (set during lifecycle scripts), else the copy shipped with npm. */
function findNodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp;
  }
  const npmBin = spawnSync('which', ['npm'], { encoding: 'utf8' }).stdout?.trim();
  const candidates = [path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm',
    'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  if (npmBin) {
    try {
      const real = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js', {
        paths: [path.join(path.dirname(spawnSync('readlink', ['-f', npmBin], { encoding: 'utf8' }).stdout.trim()), '..')],
      });
      candidates.unshift(real);
    } catch { /* not found there */ }
  }
  return candidates.find(existsSync);
}

function main() {
  if (process.env.MOR_SKIP_NATIVE) return say('skipped (MOR_SKIP_NATIVE set); using pure wasm');
  const { header, lib } = findOpenBlas();
  if (!header || !lib) return say('OpenBLAS not found (apt-get install libopenblas-dev); using pure wasm');
  const gyp = findNodeGyp();
  if (!gyp) return say('node-gyp not found; using pure wasm');
  const args = [gyp, 'rebuild'];
  // Build against the local Node headers so nothing is downloaded.
  const nodedir = process.env.npm_config_nodedir
    ?? (existsSync(path.join(path.dirname(process.execPath), '..', 'include', 'node', 'node_api.h'))
      ? path.resolve(path.dirname(process.execPath), '..') : undefined);
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const res = spawnSync(process.execPath, args, { cwd: addonDir, encoding: 'utf8', timeout: 300_000 });
  if (res.status !== 0) {
    const err = `${res.stderr ?? ''}${res.stdout ?? ''}`.split('\n').find((l) => /error/i.test(l))?.trim();
    return say(`build failed (${err ?? res.error?.message ?? `exit ${res.status}`}); using pure wasm`);
  }
  say(`built native/blas/build/Release/mor_blas.node against ${lib}`);
}

try {
  main();
} catch (e) {
  say(`build skipped (${e instanceof Error ? e.message : String(e)}); using pure wasm`);
}
