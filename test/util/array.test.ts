/**
 * Issue 14, group 7 (sizes): the loop helpers take any length, and no code in src/, bench/ or
 * scripts/ spreads an array into a call's arguments (`Math.max(...xs)`, `out.push(...xs)`,
 * `String.fromCharCode(...xs)`), which throws "Maximum call stack size exceeded" past roughly
 * 100,000 elements. The scan walks the TypeScript syntax tree, so formatting cannot hide a case.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { maxOf, minOf, pushAll } from '../../src/util/array.ts';

const N = 1_000_000;

test('maxOf / minOf / pushAll: a million elements, empty inputs and NaN as Math.max / Math.min / push', () => {
  const xs = Float64Array.from({ length: N }, (_, i) => (i * 7919) % N - N / 2);
  assert.throws(() => Math.max(...xs), RangeError, 'the spread form does overflow at this size');
  assert.equal(maxOf(xs), N / 2 - 1);
  assert.equal(minOf(xs), -N / 2);
  assert.equal(maxOf([]), Math.max());
  assert.equal(minOf([]), Math.min());
  assert.ok(Number.isNaN(maxOf([1, NaN, 3])) && Number.isNaN(minOf([1, NaN, 3])));
  assert.equal(maxOf(new Set([3, -1, 2])), 3);
  const out = ['a'];
  assert.equal(pushAll(out, Array.from({ length: N }, (_, i) => String(i))), out);
  assert.equal(out.length, N + 1);
  assert.equal(out[N], String(N - 1));
});

/**
 * Spreads into calls that stay, each with why it is bounded: tf.customGrad nodes take their
 * tensors as arguments, and these pass one layer's (or the LM head's) own variables: a handful;
 * the browser build's `setImmediate` shim forwards its caller's own few arguments.
 */
const ALLOWED = new Set([
  'src/nn/checkpoint.ts: layerNode(x, ...vars)',
  'src/nn/checkpoint.ts: auxNode(x, ...vars)',
  'src/models/llama/chunkedLoss.ts: node(x, ...vars)',
  'scripts/browser-shims.mjs: setTimeout(fn, 0, ...args)',
]);

function sourceFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(ts|mts|mjs|js)$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

test('no call in src/, bench/ or scripts/ spreads an array into its arguments (beyond the bounded, listed ones)', () => {
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const found: string[] = [];
  for (const f of ['src', 'bench', 'scripts'].flatMap((d) => sourceFiles(path.join(root, d)))) {
    const rel = path.relative(root, f);
    const sf = ts.createSourceFile(f, fs.readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      const p = n.parent;
      const spreadArg = ts.isSpreadElement(n) && p !== undefined && (ts.isCallExpression(p) || ts.isNewExpression(p));
      const applyCall = ts.isPropertyAccessExpression(n) && n.name.text === 'apply' && p !== undefined && ts.isCallExpression(p) && p.expression === n;
      if (spreadArg || applyCall) found.push(`${rel}: ${p!.getText(sf).replace(/\s+/g, ' ')}`);
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  for (const a of ALLOWED) assert.ok(found.includes(a), `the scan sees the listed case ${a} (or the list is stale)`);
  assert.deepEqual(found.filter((c) => !ALLOWED.has(c)), [], 'use maxOf / minOf / pushAll (src/util/array.ts) instead');
});
