/**
 * `mor inspect FILE`, run in-process through `main(argv, io)`: the table, totals and metadata
 * of a PyTorch-written file; JSON output; --filter; --stats; bad files give one line
 * `error: ...` on stderr and exit code 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { tempDir } from '../io/helpers.ts';
import { runCli as run } from './runCli.ts';


const fixture = new URL('../fixtures/safetensors/torch_all_dtypes.safetensors', import.meta.url).pathname;
const expected = JSON.parse(
  readFileSync(new URL('../fixtures/safetensors/torch_all_dtypes.expected.json', import.meta.url), 'utf8'),
) as { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[] }> };
const WIDTH: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1, BOOL: 1 };
const numel = (shape: number[]): number => shape.reduce((a, d) => a * d, 1);

test('inspect lists every tensor (name, stored dtype, shape, elements), the metadata and the totals', async () => {
  const { code, out, err } = await run(['inspect', fixture]);
  assert.equal(code, 0, err);
  assert.equal(err, '');
  const lines = out.split('\n');
  for (const [name, e] of Object.entries(expected.tensors)) {
    const row = lines.find((l) => l.startsWith(`${name} `));
    assert.ok(row, `row for ${name}`);
    assert.deepEqual(row.slice(name.length).trim().split(/\s{2,}/), [e.dtype, `[${e.shape.join(', ')}]`, numel(e.shape).toLocaleString('en-US')], name);
  }
  for (const [k, v] of Object.entries(expected.metadata)) assert.ok(lines.includes(`  ${k}: ${v}`), `metadata ${k}`);
  const tensors = Object.values(expected.tensors);
  const params = tensors.reduce((a, e) => a + numel(e.shape), 0);
  const bytes = tensors.reduce((a, e) => a + numel(e.shape) * WIDTH[e.dtype], 0);
  const total = lines.find((l) => l.startsWith('total: '))!;
  assert.match(total, new RegExp(`^total: ${tensors.length} tensors, ${params} parameters \\(.*\\), ${bytes} bytes`));
  assert.match(total, /\(I64 5, F32 40, I32 7, BF16 22, F16 26, U8 5, BOOL 6\)/);
});

test('inspect --json gives the same facts as data; --filter narrows the list', async () => {
  const { code, out } = await run(['inspect', fixture, '--json']);
  assert.equal(code, 0);
  const j = JSON.parse(out) as {
    metadata: Record<string, string>;
    tensors: { name: string; dtype: string; shape: number[]; elements: number }[];
    totals: { tensors: number; parameters: number; bytes: number };
  };
  assert.deepEqual(j.metadata, expected.metadata);
  assert.deepEqual(
    Object.fromEntries(j.tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape }])),
    Object.fromEntries(Object.entries(expected.tensors).map(([n, e]) => [n, { dtype: e.dtype, shape: e.shape }])),
  );
  for (const t of j.tensors) assert.equal(t.elements, numel(t.shape));
  assert.equal(j.totals.tensors, 16);
  const f = await run(['inspect', fixture, '--filter', 'special', '--json']);
  assert.deepEqual(
    (JSON.parse(f.out) as typeof j).tensors.map((t) => t.name).sort(),
    ['bf16.special', 'f16.special', 'f32.special'],
  );
});

test('inspect --stats reads the values: min, max, mean, std, NaN and Inf counts', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'w.safetensors');
    writeSafetensors(path, {
      w: { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 6, NaN, -Infinity]) },
      ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([-4n, 10n]) },
    });
    const { code, out } = await run(['inspect', path, '--stats']);
    assert.equal(code, 0);
    const row = out.split('\n').find((l) => l.startsWith('w '))!.trim().split(/\s+/);
    // finite values 1, 2, 3, 6: mean 3, population std sqrt(3.5)
    assert.deepEqual(row, ['w', 'F32', '[2,', '3]', '6', '1', '6', '3', String(Number(Math.sqrt(3.5).toPrecision(4))), '1', '1']);
    const ids = out.split('\n').find((l) => l.startsWith('ids '))!.trim().split(/\s+/);
    assert.deepEqual(ids, ['ids', 'I64', '[2]', '2', '-4', '10', '3', '7', '0', '0']);
  } finally {
    cleanup();
  }
});

test('a bad file prints one line "error: ..." naming the file and the problem, and exits 1', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'bad.safetensors');
    const json = '{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}';
    const buf = Buffer.alloc(8 + json.length + 16);
    buf.writeBigUInt64LE(BigInt(json.length), 0);
    buf.write(json, 8);
    writeFileSync(path, buf);
    mkdirSync(join(dir, 'empty'));
    for (const [file, msg] of [
      [path, /tensor "w": shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 16\] span 16 bytes/],
      [join(dir, 'missing.safetensors'), /missing\.safetensors: cannot open: no such file/],
      [join(dir, 'empty'), /empty: directory holds no \.safetensors files/],
    ] as const) {
      const { code, out, err } = await run(['inspect', file]);
      assert.equal(code, 1, err);
      assert.equal(out, '');
      assert.match(err, /^error: [^\n]*\n$/, 'exactly one line');
      assert.ok(err.includes(file), err);
      assert.match(err, msg);
    }
  } finally {
    cleanup();
  }
});

test('inspect DIR lists every .safetensors file in it (shards) and a grand total', async () => {
  const { dir, cleanup } = tempDir();
  try {
    writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { a: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } });
    writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), { b: { dtype: 'I32', shape: [4], data: new Int32Array(4) } }, { metadata: { format: 'pt' } });
    writeFileSync(join(dir, 'config.json'), '{}');
    const { code, out, err } = await run(['inspect', dir]);
    assert.equal(code, 0, err);
    assert.ok(out.indexOf('model-00001') < out.indexOf('model-00002'));
    assert.match(out, /^a +F32 +\[2, 3\] +6$/m);
    assert.match(out, /^b +I32 +\[4\] +4$/m);
    assert.match(out, /^all 2 files: 2 tensors, 10 parameters, 40 bytes \(40 B\)$/m);
    const j = await run(['inspect', dir, '--json']);
    assert.deepEqual((JSON.parse(j.out) as { totals: unknown }[]).map((f) => f.totals), [
      { tensors: 1, parameters: 6, bytes: 24 },
      { tensors: 1, parameters: 4, bytes: 16 },
    ]);
  } finally {
    cleanup();
  }
});

test('inspect of a file with 200,000 tensors: the whole table, --json and --filter (no stack overflow)', async () => {
  // Issue 14, group 7: widths were computed as Math.max(...column), which overflows the stack.
  const { dir, cleanup } = tempDir();
  try {
    const n = 200_000;
    const path = join(dir, 'many.safetensors');
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
    for (let i = 0; i < n; i++) tensors.set(`t.${i}`, { dtype: 'F32', shape: [1], data: new Float32Array([i]) });
    writeSafetensors(path, tensors);
    const { code, out, err } = await run(['inspect', path]);
    assert.equal(code, 0, err);
    assert.equal(err, '');
    const lines = out.split('\n');
    // The name column is as wide as the longest name, "t.199999".
    assert.ok(lines.includes('t.199999  F32    [1]           1'), 'a row padded to the widest cell');
    assert.equal(lines.filter((l) => l.startsWith('t.')).length, n);
    assert.match(out, /^total: 200,000 tensors, 200,000 parameters \(F32 200,000\), 800,000 bytes/m);
    const j = await run(['inspect', path, '--json']);
    assert.equal(j.code, 0, j.err);
    const parsed = JSON.parse(j.out) as { tensors: unknown[]; totals: { tensors: number } };
    assert.equal(parsed.tensors.length, n);
    assert.equal(parsed.totals.tensors, n);
    const f = await run(['inspect', path, '--filter', 't.19999']);
    assert.equal(f.code, 0, f.err);
    assert.match(f.out, /^total: 11 tensors \(matching "t\.19999", of 200000\)/m);
  } finally {
    cleanup();
  }
});
