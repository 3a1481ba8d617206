/**
 * safetensors read/write: bit-exact round trips for every dtype, F16/BF16 storage against
 * PyTorch's casts, a PyTorch-written fixture read bit for bit and re-written byte for byte,
 * conformance of written files to the format (checked by an independent parser), header-only
 * opening, atomic writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  openSafetensors,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type HostTensor,
} from '../../src/io/safetensors.ts';
import { UserError } from '../../src/errors.ts';
import { bf16Value, bytesOf, f16Value, f32FromBitsArray, sampleTensors, specParse, tempDir } from './helpers.ts';

const FIX = new URL('../fixtures/safetensors/', import.meta.url);
const fixturePath = (name: string): string => new URL(name, FIX).pathname;

function assertSameTensor(got: HostTensor | undefined, want: HostTensor, name: string): void {
  assert.ok(got, `missing ${name}`);
  assert.equal(got.dtype, want.dtype, name);
  assert.deepEqual(got.shape, want.shape, name);
  assert.equal(got.data.constructor, want.data.constructor, name);
  assert.deepEqual(bytesOf(got.data), bytesOf(want.data), `${name}: bytes differ`);
}

test('write -> read is bit-exact for every dtype (NaN payloads, -0, subnormals, extremes)', () => {
  const { dir, cleanup } = tempDir();
  try {
    const input = sampleTensors();
    const path = join(dir, 'all.safetensors');
    writeSafetensors(path, input, { metadata: { format: 'pt', 'ключ': 'значение "q"' } });
    const { metadata, tensors } = readSafetensors(path);
    assert.deepEqual(metadata, { format: 'pt', 'ключ': 'значение "q"' });
    assert.deepEqual([...tensors.keys()].sort(), Object.keys(input).sort());
    for (const [name, t] of Object.entries(input)) assertSameTensor(tensors.get(name), t, name);
    // The in-memory serializer writes the same bytes, and the in-memory parser reads them back.
    const bytes = serializeSafetensors(new Map(Object.entries(input)), { metadata: { format: 'pt', 'ключ': 'значение "q"' } });
    assert.deepEqual(bytes, new Uint8Array(readFileSync(path)));
    const again = parseSafetensors(bytes);
    for (const [name, t] of Object.entries(input)) assertSameTensor(again.tensors.get(name), t, name);
  } finally {
    cleanup();
  }
});

test('a file without tensors or without metadata round-trips', () => {
  const empty = parseSafetensors(serializeSafetensors({}));
  assert.equal(empty.tensors.size, 0);
  assert.deepEqual(empty.metadata, {});
  const onlyMeta = parseSafetensors(serializeSafetensors({}, { metadata: { a: 'b' } }));
  assert.deepEqual(onlyMeta.metadata, { a: 'b' });
  // Without `metadata` the header has no "__metadata__" key at all (like the reference).
  assert.ok(!specParse(serializeSafetensors(sampleTensors())).text.includes('__metadata__'));
});

test("floatDtype F16/BF16 stores F32 tensors as PyTorch's casts would, and reads them back as F32", () => {
  const fx = JSON.parse(readFileSync(fixturePath('half_conversions.json'), 'utf8')) as Record<string, string[]>;
  const x = f32FromBitsArray(fx.f32.map((h) => parseInt(h, 16)));
  const ids = new Int32Array([1, 2, 3]);
  for (const [floatDtype, key, valueOf] of [
    ['F16', 'f16', f16Value],
    ['BF16', 'bf16', bf16Value],
  ] as const) {
    const bytes = serializeSafetensors(
      { x: { dtype: 'F32', shape: [x.length], data: x }, ids: { dtype: 'I32', shape: [3], data: ids } },
      { floatDtype },
    );
    const spec = specParse(bytes);
    const ex = spec.entries.find((e) => e.name === 'x')!;
    assert.equal(ex.dtype, floatDtype);
    assert.equal(spec.entries.find((e) => e.name === 'ids')!.dtype, 'I32'); // integers untouched
    const raw = spec.data.subarray(ex.dataOffsets[0], ex.dataOffsets[1]);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const want = fx[key].map((h) => parseInt(h, 16));
    for (let i = 0; i < want.length; i++) assert.equal(dv.getUint16(2 * i, true), want[i], `${floatDtype}[${i}]`);
    const back = parseSafetensors(bytes).tensors.get('x')!;
    assert.equal(back.dtype, 'F32');
    const vals = back.data as Float32Array;
    for (let i = 0; i < want.length; i++) assert.ok(Object.is(vals[i], valueOf(want[i])), `${floatDtype} value ${i}`);
  }
  // NaN (with payloads) and +-Inf survive half storage as NaN / +-Inf.
  const special = f32FromBitsArray([0x7fc00001, 0xff800001, 0x7f800000, 0xff800000, 0x80000000]);
  for (const floatDtype of ['F16', 'BF16'] as const) {
    const got = parseSafetensors(serializeSafetensors({ s: { dtype: 'F32', shape: [5], data: special } }, { floatDtype }))
      .tensors.get('s')!.data as Float32Array;
    assert.ok(Number.isNaN(got[0]) && Number.isNaN(got[1]));
    assert.deepEqual([...got.subarray(2)], [Infinity, -Infinity, -0]);
    assert.ok(Object.is(got[4], -0));
  }
});

test('reads a PyTorch-written file bit for bit; the info list keeps the stored dtype', () => {
  const expected = JSON.parse(readFileSync(fixturePath('torch_all_dtypes.expected.json'), 'utf8')) as {
    metadata: Record<string, string>;
    tensors: Record<string, { dtype: string; shape: number[]; values: (string | number)[] }>;
  };
  const path = fixturePath('torch_all_dtypes.safetensors');
  const { metadata, tensors } = readSafetensors(path);
  assert.deepEqual(metadata, expected.metadata);
  assert.equal(tensors.size, Object.keys(expected.tensors).length);
  const f = openSafetensors(path);
  try {
    for (const [name, e] of Object.entries(expected.tensors)) {
      const t = tensors.get(name)!;
      assert.ok(t, name);
      assert.deepEqual(t.shape, e.shape, name);
      assert.equal(f.info(name)!.dtype, e.dtype, `${name}: stored dtype`);
      if (['F32', 'F16', 'BF16'].includes(e.dtype)) {
        assert.equal(t.dtype, 'F32', name);
        const bits = [...new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length)].map((b) =>
          b.toString(16).padStart(8, '0'),
        );
        assert.deepEqual(bits, e.values, name);
      } else if (e.dtype === 'I64') {
        assert.deepEqual([...(t.data as BigInt64Array)].map(String), e.values, name);
      } else if (e.dtype === 'I32' || e.dtype === 'U8') {
        assert.equal(t.dtype, e.dtype);
        assert.deepEqual([...(t.data as Int32Array)].map(String), e.values, name);
      } else {
        assert.equal(t.dtype, 'BOOL');
        assert.deepEqual([...(t.data as Uint8Array)], e.values, name);
      }
    }
  } finally {
    f.close();
  }
});

test('re-writing the PyTorch file in its stored dtypes reproduces it byte for byte', () => {
  const path = fixturePath('torch_all_dtypes.safetensors');
  const f = openSafetensors(path);
  const tensors = new Map<string, HostTensor>();
  try {
    // A tensor given as dtype F16/BF16 with Float32Array data is stored in that dtype.
    for (const info of f.tensors) tensors.set(info.name, { ...f.read(info.name), dtype: info.dtype as HostTensor['dtype'] });
  } finally {
    f.close();
  }
  // Insertion order must not matter: the writer orders like the reference.
  const shuffled = new Map([...tensors].reverse());
  const bytes = serializeSafetensors(shuffled, { metadata: readSafetensors(path).metadata });
  assert.deepEqual(bytes, new Uint8Array(readFileSync(path)));
});

test('written files follow the format: padded header, entry keys, dtype names, reference order, contiguous offsets', () => {
  const input = sampleTensors();
  input['10'] = { dtype: 'F32', shape: [1], data: new Float32Array([1]) };
  input['9'] = { dtype: 'F32', shape: [1], data: new Float32Array([2]) };
  input['Zeta'] = { dtype: 'F32', shape: [2], data: new Float32Array([3, 4]) };
  input['half'] = { dtype: 'BF16', shape: [2], data: new Float32Array([5, 6]) };
  // UTF-16 order puts the emoji (surrogate D83D) first; UTF-8 byte order (the reference's) does not.
  input['\u{1F600}'] = { dtype: 'U8', shape: [1], data: new Uint8Array([1]) };
  input['\uFF61'] = { dtype: 'U8', shape: [1], data: new Uint8Array([2]) };
  const bytes = serializeSafetensors(input, { metadata: { format: 'pt' } });
  const p = specParse(bytes);
  assert.equal(p.n % 8, 0, 'header length is a multiple of 8');
  const json = p.text.trimEnd();
  assert.match(p.text.slice(json.length), /^ *$/, 'padding is spaces');
  assert.ok(p.text.length - json.length < 8);
  assert.ok(json.startsWith('{"__metadata__":{"format":"pt"},'), 'metadata first');
  // Order in the header text = data order = dtype alignment descending, then name bytes.
  const rank = ['BOOL', 'U8', 'F16', 'BF16', 'I32', 'F32', 'I64'];
  const textOrder = [...json.matchAll(/"((?:[^"\\]|\\.)*)":\{"dtype"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
  const byName = new Map(p.entries.map((e) => [e.name, e]));
  const expectedOrder = [...byName.values()]
    .sort((a, b) => rank.indexOf(b.dtype) - rank.indexOf(a.dtype) || Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))
    .map((e) => e.name);
  assert.deepEqual(textOrder, expectedOrder);
  assert.deepEqual(expectedOrder.slice(0, 8), ['i64', '10', '9', 'Zeta', 'f32.edge', 'f32.empty', 'f32.scalar', 'i32']);
  assert.deepEqual(expectedOrder.slice(-4), ['u8', '\uFF61', '\u{1F600}', 'mask']);
  let pos = 0;
  const width: Record<string, number> = { BOOL: 1, U8: 1, F16: 2, BF16: 2, I32: 4, F32: 4, I64: 8 };
  for (const name of textOrder) {
    const e = byName.get(name)!;
    assert.deepEqual(e.keys, ['dtype', 'shape', 'data_offsets'], name);
    assert.ok(e.dtype in width, `${name}: dtype name ${e.dtype}`);
    assert.equal(e.dataOffsets[0], pos, `${name}: contiguous`);
    assert.equal(e.dataOffsets[1] - e.dataOffsets[0], e.shape.reduce((a, d) => a * d, 1) * width[e.dtype]);
    pos = e.dataOffsets[1];
  }
  assert.equal(bytes.byteLength, 8 + p.n + pos, 'no trailing bytes');
  // Little-endian data: the I32 tensor's bytes.
  const i32 = byName.get('i32')!;
  assert.deepEqual([...p.data.subarray(i32.dataOffsets[0], i32.dataOffsets[0] + 8)], [0, 0, 0, 0, 255, 255, 255, 255]);
});

/** Input of test/fixtures/safetensors/mor_written.safetensors (checked by the Python spec reader). */
function morWrittenInput(): Map<string, HostTensor> {
  const m = new Map(Object.entries(sampleTensors()));
  m.set('lora_A.weight', { dtype: 'F16', shape: [2, 3], data: new Float32Array([0.5, -1, 65504, 1e-7, -0, 3.14159]) });
  m.set('lora_B.weight', { dtype: 'BF16', shape: [3, 2], data: new Float32Array([0.5, -1, 3e38, 1e-40, -0, 3.14159]) });
  return m;
}

test('our writer output matches the committed file that a strict PyTorch reader accepted', () => {
  const path = fixturePath('mor_written.safetensors');
  const bytes = serializeSafetensors(morWrittenInput(), { metadata: { format: 'pt', writer: 'mor-peft' } });
  if (process.env.UPDATE_FIXTURES === '1') writeFileSync(path, bytes);
  assert.ok(existsSync(path), 'run once with UPDATE_FIXTURES=1, then scripts/fixtures/make_safetensors_fixtures.py --check-only');
  assert.deepEqual(bytes, new Uint8Array(readFileSync(path)));
});

test('openSafetensors reads the header only; each tensor into a buffer of exactly its size', () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'big.safetensors');
    const n = 1 << 20;
    const big = new Float32Array(n).map((_, i) => i * 0.5);
    const ids = new BigInt64Array([1n, 2n, 3n]);
    writeSafetensors(path, { big: { dtype: 'F32', shape: [1024, 1024], data: big }, ids: { dtype: 'I64', shape: [3], data: ids } });
    const f = openSafetensors(path);
    try {
      assert.deepEqual(f.names, ['ids', 'big']);
      assert.deepEqual(f.info('big'), { name: 'big', dtype: 'F32', shape: [1024, 1024], numel: n, dataOffsets: [24, 24 + 4 * n], byteLength: 4 * n });
      const t = f.read('big');
      // Zero-copy: the typed array owns a buffer of exactly this tensor's bytes (no file-sized buffer).
      assert.equal(t.data.buffer.byteLength, 4 * n);
      assert.deepEqual(bytesOf(t.data), bytesOf(big));
      assert.equal(f.read('ids').data.buffer.byteLength, 24);
      assert.throws(() => f.read('nope'), (e: unknown) => e instanceof UserError && /big\.safetensors: no tensor named "nope"/.test(e.message));
    } finally {
      f.close();
    }
    assert.throws(() => f.read('big'), /read after close/);
    f.close(); // idempotent
  } finally {
    cleanup();
  }
});

test('writes are atomic: a failed write leaves the old file and no temporary files', () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'ckpt.safetensors');
    writeSafetensors(path, { a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const before = readFileSync(path);
    writeSafetensors(path, { a: { dtype: 'F32', shape: [2], data: new Float32Array([3, 4]) } });
    assert.deepEqual([...(readSafetensors(path).tensors.get('a')!.data as Float32Array)], [3, 4]);
    const good = readFileSync(path);
    assert.notDeepEqual(good, before);
    // Invalid input: nothing written.
    assert.throws(() => writeSafetensors(path, { a: { dtype: 'F32', shape: [3], data: new Float32Array([1, 2]) } }), /tensor "a": shape \[3\] has 3 elements but data has 2/);
    assert.throws(() => writeSafetensors(path, { a: { dtype: 'I32', shape: [2], data: new Float32Array([1, 2]) } }), /dtype I32 needs a Int32Array, got Float32Array/);
    assert.throws(() => writeSafetensors(path, { __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } }), UserError);
    assert.throws(() => writeSafetensors(path, {}, { metadata: { epoch: 3 as unknown as string } }), /metadata value of "epoch" must be a string, got number/);
    assert.deepEqual(readFileSync(path), good);
    assert.deepEqual(readdirSync(dir), ['ckpt.safetensors']);
    // A missing directory is the user's error, one line.
    assert.throws(
      () => writeSafetensors(join(dir, 'missing', 'x.safetensors'), {}),
      (e: unknown) => e instanceof UserError && /cannot write .*missing\/x\.safetensors: no such directory/.test(e.message),
    );
  } finally {
    cleanup();
  }
});

test('BOOL tensors: truthy bytes are written as 1; other dtypes outside the supported set are listed but not loaded', () => {
  const back = parseSafetensors(serializeSafetensors({ m: { dtype: 'BOOL', shape: [3], data: new Uint8Array([0, 7, 1]) } }));
  assert.deepEqual([...(back.tensors.get('m')!.data as Uint8Array)], [0, 1, 1]);
  // A valid F64 file (written by hand from the spec): openable, readable header, clear error on load.
  const json = '{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}';
  const buf = new Uint8Array(8 + json.length + 16);
  new DataView(buf.buffer).setBigUint64(0, BigInt(json.length), true);
  buf.set(Buffer.from(json), 8);
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'f64.safetensors');
    writeFileSync(path, buf);
    const f = openSafetensors(path);
    assert.equal(f.info('d')!.dtype, 'F64');
    assert.throws(() => f.read('d'), /f64\.safetensors: tensor "d" has dtype F64, which mor-peft cannot load/);
    f.close();
  } finally {
    cleanup();
  }
});
