/**
 * `mor merge` in-process on a tiny random LLaMA (trained BPE tokenizer, two tasks): the merged
 * directory loads as a plain model whose logits equal the adapted model's (LoRA, DoRA, full,
 * uniform MoR) or, for MoR with a learned router, the adapter's forward with the router pinned
 * to the mean routing vector, computed here independently (one example per forward, our own
 * observer). Error cases exit 1 with one `error:` line and write nothing.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import { savePretrained as saveAdapter } from '../../src/adapters/save.ts';
import type { AdapterConfigInput } from '../../src/adapters/config.ts';
import type { LlamaForCausalLM } from '../../src/models/llama/model.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { openSafetensors } from '../../src/io/safetensors.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { renderRecord } from '../../src/data/render.ts';
import { readDataRecords } from '../../src/data/mix.ts';
import { Rng } from '../../src/util/rng.ts';
import { makeTinySetup } from '../fixtures/train/tinyLlama.ts';
import { runCli as run } from './runCli.ts';
import { setFixedRouting } from '../../src/routing/fixedRouting.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-cli-merge-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const setup = await makeTinySetup(root);
const TARGETS = ['q_proj', 'v_proj', 'up_proj', 'down_proj'];


/** Save an adapter of `config` with every tensor random (LoRA's B starts at 0: a no-op otherwise). */
async function makeAdapter(name: string, config: AdapterConfigInput, seed: number): Promise<string> {
  const dir = path.join(root, name);
  const model = await loadModel(setup.modelDir);
  const peft = getPeftModel(model, config);
  const rng = new Rng(seed);
  for (const [k, v] of peft.adapterTensors('default')) {
    // DoRA magnitudes / MoR omegas stay near their init (1 or ||W||); the rest is N(0, 0.3).
    const mean = /magnitude|omega/.test(k) ? 1 : 0;
    const init = /magnitude/.test(k) ? v.dataSync() : undefined;
    const noise = rng.normalArray(v.size, mean, 0.3);
    if (init) for (let i = 0; i < noise.length; i++) noise[i] = init[i] * noise[i];
    v.assign(tf.tensor(noise, v.shape));
  }
  saveAdapter(peft, dir);
  peft.dispose();
  return dir;
}

const IDS = [[1, 17, 42, 99, 5, 230, 7, 64], [3, 8, 150, 77, 200, 12, 90, 33]];

function logits(model: LlamaForCausalLM): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(IDS, undefined, 'int32')).dataSync() as Float32Array);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Logits of the base model with the adapter in `dir` (optionally its MoR router pinned to `routing`). */
async function adaptedLogits(dir: string, routing?: Map<string, Float32Array>): Promise<Float32Array> {
  const peft = loadAdapter(await loadModel(setup.modelDir), dir);
  if (routing) setFixedRouting(peft, routing);
  const out = logits(peft.model);
  peft.dispose();
  return out;
}

async function modelLogits(dir: string): Promise<Float32Array> {
  const m = await loadModel(dir);
  const out = logits(m);
  m.dispose();
  return out;
}

/**
 * Mean routing per module over every token of the given files' examples (of `task`, if given):
 * one unpadded example per forward, weights summed by our own observer.
 */
async function referenceRouting(adapterDir: string, files: string[], task?: string): Promise<Map<string, Float32Array>> {
  const tok = Tokenizer.fromDir(setup.modelDir);
  const peft = loadAdapter(await loadModel(setup.modelDir), adapterDir);
  const sums = new Map<string, { n: number; sum: Float64Array }>();
  const observer = {
    record(p: string, w: tf.Tensor2D): void {
      const [t, n] = w.shape;
      const d = w.dataSync();
      let a = sums.get(p);
      if (!a) sums.set(p, (a = { n: 0, sum: new Float64Array(n) }));
      for (let i = 0; i < t; i++) for (let j = 0; j < n; j++) a.sum[j] += d[i * n + j];
      a.n += t;
    },
  };
  for (const f of files) {
    for (const rec of await readDataRecords(f)) {
      const ex = renderRecord(rec, tok);
      if (task !== undefined && ex.task !== task) continue;
      const ctx: ForwardContext = { training: false, auxLosses: [], routing: observer };
      tf.tidy(() => peft.model.forward(tf.tensor2d([ex.inputIds], undefined, 'int32'), { ctx }));
    }
  }
  peft.dispose();
  return new Map([...sums].map(([p, a]) => [p, Float32Array.from(a.sum, (s) => s / a.n)]));
}

for (const [kind, config] of [
  ['lora', { kind: 'lora', r: 4, alpha: 8, targetModules: TARGETS }],
  ['dora', { kind: 'dora', r: 4, alpha: 8, targetModules: TARGETS }],
  ['full', { kind: 'full', targetModules: ['v_proj', 'down_proj'] }],
] as [string, AdapterConfigInput][]) {
  test(`mor merge (${kind}): merged model's logits equal the adapted model's; tokenizer files copied`, async () => {
    const adapter = await makeAdapter(`adapter-${kind}`, config, 11);
    const out = path.join(root, `merged-${kind}`);
    const before = tf.memory().numTensors;
    const r = await run(['merge', '--model', setup.modelDir, '--adapter', adapter, '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.equal(tf.memory().numTensors, before, 'merge leaks no tensor');
    assert.equal(r.out.trim(), out);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(fs.existsSync(path.join(out, f)), f);
    assert.deepEqual(fs.readFileSync(path.join(out, 'tokenizer.json')), fs.readFileSync(path.join(setup.modelDir, 'tokenizer.json')));
    const merged = await modelLogits(out);
    const adapted = await adaptedLogits(adapter);
    const base = await modelLogits(setup.modelDir);
    assert.ok(maxAbsDiff(adapted, base) > 1e-2, 'the adapter changes the output (the check can fail)');
    const d = maxAbsDiff(merged, adapted);
    assert.ok(d <= 1e-4, `merged vs adapted max |diff| ${d}`);
    // Same tensor names as the base model: no adapter leftovers.
    const names = (dir: string): string[] => {
      const f = openSafetensors(path.join(dir, 'model.safetensors'));
      const n = f.tensors.map((t) => t.name).sort();
      f.close();
      return n;
    };
    assert.deepEqual(names(out), names(setup.modelDir));
  });
}

test('mor merge --dtype bf16 stores BF16 weights and records torch_dtype', async () => {
  const adapter = path.join(root, 'adapter-lora');
  const out = path.join(root, 'merged-bf16');
  const r = await run(['merge', '--model', setup.modelDir, '--adapter', adapter, '--out', out, '--dtype', 'bf16']);
  assert.equal(r.code, 0, r.err);
  const f = openSafetensors(path.join(out, 'model.safetensors'));
  assert.ok(f.tensors.every((t) => t.dtype === 'BF16'));
  f.close();
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  // bf16 keeps ~3 significant digits: logits stay close to the f32 merge.
  const d = maxAbsDiff(await modelLogits(out), await modelLogits(path.join(root, 'merged-lora')));
  assert.ok(d < 0.1, `bf16 vs f32 merged logits max |diff| ${d}`);
});

const MOR = { kind: 'mor' as const, r: 4, alpha: 8, numExperts: 3, targetModules: ['up_proj', 'down_proj'] };

test('mor merge (MoR, --routing-from DATA --task NAME) equals the adapter with its router pinned to the task mean', async () => {
  const adapter = await makeAdapter('adapter-mor', MOR, 21);
  const out = path.join(root, 'merged-mor-shout');
  const before = tf.memory().numTensors;
  const r = await run(['merge', '--model', setup.modelDir, '--adapter', adapter, '--out', out,
    '--routing-from', setup.shout, setup.reverse, '--task', 'shout', '--batch-size', '3']);
  assert.equal(r.code, 0, r.err);
  assert.equal(tf.memory().numTensors, before, 'merge leaks no tensor');
  assert.match(r.err, /routing: 10 examples/);
  const expected = await referenceRouting(adapter, [setup.shout, setup.reverse], 'shout');
  const info = JSON.parse(fs.readFileSync(path.join(out, 'merge_info.json'), 'utf8')) as { routing: Record<string, number[]> };
  assert.deepEqual(Object.keys(info.routing).sort(), [...expected.keys()].sort());
  assert.equal(expected.size, 4, '2 layers x (up_proj, down_proj)');
  for (const [p, g] of expected) {
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(info.routing[p][i] - g[i]) < 1e-5, `${p}[${i}]: ${info.routing[p][i]} vs ${g[i]}`);
  }
  // The mean over both tasks is different: the filter mattered.
  const both = await referenceRouting(adapter, [setup.shout, setup.reverse]);
  const anyP = [...expected.keys()][0];
  assert.ok(Math.max(...expected.get(anyP)!.map((v, i) => Math.abs(v - both.get(anyP)![i]))) > 1e-4);

  const merged = await modelLogits(out);
  const pinned = await adaptedLogits(adapter, expected);
  const d = maxAbsDiff(merged, pinned);
  assert.ok(d <= 1e-4, `merged vs pinned-router adapter max |diff| ${d}`);
  assert.ok(maxAbsDiff(pinned, await adaptedLogits(adapter)) > 1e-4, 'pinning changes the output (routing is learned)');
});

test('mor merge (MoR, --task alone) uses the training data recorded in train_config.json', async () => {
  const runDir = path.join(root, 'run');
  fs.mkdirSync(runDir, { recursive: true });
  fs.cpSync(path.join(root, 'adapter-mor'), path.join(runDir, 'adapter'), { recursive: true });
  fs.writeFileSync(path.join(runDir, 'train_config.json'), JSON.stringify({
    model: setup.modelDir, adapter: MOR, data: [{ path: setup.shout, weight: 1 }, { path: setup.reverse, weight: 2 }], maxLength: 64,
  }));
  const out = path.join(root, 'merged-mor-reverse');
  const r = await run(['merge', '--model', setup.modelDir, '--adapter', path.join(runDir, 'adapter'), '--out', out, '--task', 'reverse']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /training data/);
  const expected = await referenceRouting(path.join(runDir, 'adapter'), [setup.shout, setup.reverse], 'reverse');
  const info = JSON.parse(fs.readFileSync(path.join(out, 'merge_info.json'), 'utf8')) as { routing: Record<string, number[]>; task: string };
  assert.equal(info.task, 'reverse');
  for (const [p, g] of expected) for (let i = 0; i < g.length; i++) assert.ok(Math.abs(info.routing[p][i] - g[i]) < 1e-5);
});

test('mor merge (MoR with a uniform router) needs no routing data', async () => {
  const adapter = await makeAdapter('adapter-mor-uniform', { ...MOR, routerMode: 'uniform' as const }, 31);
  const out = path.join(root, 'merged-mor-uniform');
  const r = await run(['merge', '--model', setup.modelDir, '--adapter', adapter, '--out', out]);
  assert.equal(r.code, 0, r.err);
  const d = maxAbsDiff(await modelLogits(out), await adaptedLogits(adapter));
  assert.ok(d <= 1e-4, `merged vs adapted max |diff| ${d}`);
});

test('mor merge errors: one `error:` line, exit 1, nothing written', async () => {
  const moelora = await makeAdapter('adapter-moelora', { kind: 'moelora', r: 2, numExperts: 2, targetModules: ['up_proj'] }, 41);
  const mor = path.join(root, 'adapter-mor');
  const lora = path.join(root, 'adapter-lora');
  const cases: [string[], RegExp][] = [
    [['--adapter', mor], /learned router.*cannot be merged without a fixed routing vector.*--routing-from/],
    [['--adapter', moelora], /MoELoRA.*cannot be merged/],
    [['--adapter', lora, '--routing-from', setup.shout], /MoR.* adapters only/],
    [['--adapter', lora, '--dtype', 'f8'], /--dtype must be one of f32, f16, bf16/],
    [['--adapter', mor, '--routing-from', setup.shout, '--task', 'nope'], /task "nope" has no example.*tasks there: shout/],
    [['--adapter', mor, '--task', 'shout'], /no train_config\.json/],
    [['--adapter', path.join(root, 'missing')], /adapter_config\.json: cannot read/],
  ];
  for (const [args, re] of cases) {
    const out = path.join(root, 'not-written');
    const r = await run(['merge', '--model', setup.modelDir, '--out', out, ...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0], /^error: /);
    assert.match(lines[0], re);
    assert.ok(!fs.existsSync(out), `${args.join(' ')} wrote ${out}`);
  }
  const same = await run(['merge', '--model', setup.modelDir, '--adapter', lora, '--out', setup.modelDir]);
  assert.equal(same.code, 1);
  assert.match(same.err, /^error: --out .* is the base model directory/);
});

/** Every file under `dir`, path -> bytes (for "nothing changed" checks). */
function snapshot(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.set(path.join(e.parentPath, e.name), fs.readFileSync(path.join(e.parentPath, e.name)));
  }
  return out;
}

test('mor merge --out: the base model or adapter folder (by real path, through symlinks), a file, or a foreign folder is refused before any work', async () => {
  const lora = path.join(root, 'adapter-lora');
  const link = path.join(root, 'link-to-model');
  fs.symlinkSync(setup.modelDir, link);
  const notes = path.join(root, 'notes.txt');
  fs.writeFileSync(notes, 'mine');
  const foreign = path.join(root, 'other-model');
  fs.mkdirSync(foreign, { recursive: true });
  fs.writeFileSync(path.join(foreign, 'config.json'), '{}');
  const before = snapshot(root);
  const cases: [string, RegExp][] = [
    [link, /^error: --out .*link-to-model is the base model directory \(.*\); choose a new directory/],
    [path.join(link, '..', 'model'), /is the base model directory/],
    [lora, /^error: --out .*adapter-lora is the adapter directory/],
    [path.join(lora, 'merged'), /lies inside the adapter directory/],
    [path.join(link, 'merged'), /lies inside the base model directory/],
    [notes, /^error: --out .*notes\.txt: is a file, not a directory$/],
    [path.join(notes, 'x'), /notes\.txt is a file, not a directory$/],
    [foreign, /^error: --out .*other-model: the directory is not empty and holds no earlier merge \(merge_info\.json\)/],
  ];
  for (const [out, re] of cases) {
    const r = await run(['merge', '--model', setup.modelDir, '--adapter', lora, '--out', out]);
    assert.equal(r.code, 1, `${out}: ${r.err}`);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0], re);
  }
  const after = snapshot(root);
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
  for (const [f, b] of before) assert.ok(after.get(f)!.equals(b), `${f} changed`);
  // An earlier merge output may be replaced (same command run again).
  const again = path.join(root, 'merged-lora');
  const r = await run(['merge', '--model', setup.modelDir, '--adapter', lora, '--out', again]);
  assert.equal(r.code, 0, r.err);
  fs.rmSync(link);
});
