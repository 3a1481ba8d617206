/**
 * Malformed input through the CLI, as a user meets it: every case exits 1 with exactly one
 * stderr line `error: ...` that names the place (file:line, field, config key, module, tensor),
 * and prints nothing on stdout. The issue-14 rows (unusable output locations, run folders,
 * merge targets, non-finite weights, validation order, data) also check that every file that
 * existed before is byte-identical after and nothing was created. The rows of groups 7 and 8
 * (sizes; signals and warnings) have other outcomes too: each states its exit code (0, 1, 130,
 * 143), its one `error:` line or none, its `warning:` lines, and the one new run folder it may
 * create; every other file stays byte-identical. A bug (a plain Error escaping a command) exits 2 with a stack.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../../src/backend/tf.ts';
import { main } from '../../src/cli/main.ts';
import { makeE2eSetup } from '../fixtures/e2e/setup.ts';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-e2e-err-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const setup = await makeE2eSetup(root);
const out = path.join(root, 'out');

async function run(argv: string[], stdout?: (s: string) => void): Promise<{ code: number; out: string; err: string }> {
  let o = '';
  let err = '';
  const code = await main(argv, { stdout: stdout ?? ((s) => { o += s; }), stderr: (s) => { err += s; } });
  return { code, out: o, err };
}

/** Write `name` under root with `lines` (strings written as-is, objects as JSON); returns its path. */
function file(name: string, lines: (string | object)[]): string {
  const p = path.join(root, name);
  fs.writeFileSync(p, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return p;
}

const chat = (u: string, a: string): object => ({ task: 'shout', messages: [{ role: 'user', content: u }, { role: 'assistant', content: a }] });
const MOR = '{"kind":"mor","r":2,"numExperts":2}';
const train = (data: string, ...more: string[]): string[] =>
  ['train', '--model', setup.modelDir, '--adapter', MOR, '--data', data, '--steps', '1', '--batch-size', '2', '--out-dir', out, ...more];
const evalMc = (data: string): string[] => ['eval', '--model', setup.modelDir, '--data', data];
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function config(name: string, extra: string[]): string {
  return file(name, [
    `model: ${setup.modelDir}`,
    'adapter:',
    '  kind: mor',
    '  r: 2',
    `data:`,
    `  - path: ${setup.train}`,
    'steps: 1',
    `outDir: ${out}`,
    ...extra,
  ]);
}

const badJson = file('bad-json.jsonl', [chat('Shout a', 'A!'), '{"task": "shout", "messages": [', chat('Shout b', 'B!')]);
const missing = file('missing.jsonl', [chat('Shout a', 'A!'), chat('Shout b', 'B!'), { task: 'shout', messages: [{ role: 'user' }, { role: 'assistant', content: 'X' }] }]);
const wrongType = file('wrong-type.jsonl', [{ prompt: 'Shout a', completion: 42 }]);
const badRole = file('bad-role.jsonl', [chat('Shout a', 'A!'), { messages: [{ role: 'bot', content: 'hi' }, { role: 'assistant', content: 'X' }] }]);
const emptyData = file('empty.jsonl', ['', '  ']);
const mcEmpty = file('mc-empty.jsonl', [{ task: 't', question: 'Q?', choices: ['a', 'b'], answer: 0 }, { task: 't', question: 'Q?', choices: [], answer: 0 }]);
const mcRange = file('mc-range.jsonl', [{ task: 't', question: 'Q?', choices: ['a', 'b'], answer: 2 }]);
const mcType = file('mc-type.jsonl', [{ task: 't', question: 'Q?', choices: ['a', 'b'], answer: '1' }]);
const mcMissing = file('mc-missing.jsonl', [{ task: 't', choices: ['a', 'b'], answer: 0 }]);
const unknownKey = config('unknown-key.yaml', ['learning_rate: 0.1']);
const unknownAdapterKey = config('unknown-adapter-key.yaml', ['']).replace(/$/, '');
fs.writeFileSync(unknownAdapterKey, fs.readFileSync(unknownAdapterKey, 'utf8').replace('  r: 2', '  r: 2\n  numExpert: 4'));
const wrongTypeKey = config('wrong-type-key.yaml', ['batchSize: four']);
const badYaml = file('bad.yaml', ['model: x', 'adapter: [unclosed', 'steps: 1']);
const corrupt = path.join(root, 'corrupt.safetensors');
{
  // A valid header that promises 64 bytes of data; only 8 follow (a truncated download).
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 64] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(corrupt, Buffer.concat([len, header, Buffer.alloc(8)]));
}
const garbage = file('garbage.safetensors', ['this is not a safetensors file at all']);

// --- Fixtures of issue 14 (nothing lost, nothing silent) --------------------------------------
/** A finished run (MoR) and a finished LoRA run, trained here; their folders must survive every refusal. */
const finished = path.join(root, 'finished');
const loraRun = path.join(root, 'lora-run');
const LORA = '{"kind":"lora","r":2,"targetModules":["q_proj","v_proj"]}';
for (const [dir, adapter] of [[finished, MOR], [loraRun, LORA]]) {
  const r = await run(['train', '--model', setup.modelDir, '--adapter', adapter, '--data', setup.train, '--steps', '2', '--batch-size', '2',
    '--checkpoint-every', '1', '--out-dir', dir]);
  if (r.code !== 0) throw new Error(`fixture run failed: ${r.err}`);
}
const notes = file('notes.txt', ['a file the user keeps']);
const modelLink = path.join(root, 'model-link');
fs.symlinkSync(setup.modelDir, modelLink);
const foreignRun = path.join(root, 'foreign-run');
fs.mkdirSync(foreignRun);
fs.copyFileSync(path.join(finished, 'train_config.json'), path.join(foreignRun, 'train_config.json'));
fs.writeFileSync(path.join(foreignRun, 'thesis.tex'), 'mine');
/** Copies of the LoRA and MoR adapters with NaN / Inf in one tensor. */
async function poisoned(name: string, from: string, value: number): Promise<{ dir: string; key: string }> {
  const dir = path.join(root, name);
  fs.cpSync(from, dir, { recursive: true });
  const f = path.join(dir, 'adapter_model.safetensors');
  const { tensors, metadata } = readSafetensors(f);
  const key = [...tensors.keys()].sort()[0];
  const data = tensors.get(key)!.data as Float32Array;
  data[0] = value;
  data[data.length - 1] = value;
  data[1] = NaN;
  await writeSafetensors(f, tensors, { metadata });
  return { dir, key };
}
const nanLora = await poisoned('nan-lora', path.join(loraRun, 'adapter'), NaN);
const infMor = await poisoned('inf-mor', path.join(finished, 'adapter'), Infinity);
/** Invalid UTF-8 (a Latin-1 "é") on line 2. */
const latin1 = path.join(root, 'latin1.jsonl');
fs.writeFileSync(latin1, Buffer.concat([Buffer.from(JSON.stringify(chat('Shout a', 'A!')) + '\n'), Buffer.from('{"task": "shout", "messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "X"}]}\n', 'latin1')]));
const latin1Mc = path.join(root, 'latin1-mc.jsonl');
fs.writeFileSync(latin1Mc, Buffer.from('{"question": "Q\xe9?", "choices": ["a", "b"], "answer": 0}\n', 'latin1'));
const latin1Yaml = path.join(root, 'latin1.yaml');
fs.writeFileSync(latin1Yaml, Buffer.from(`model: ${setup.modelDir}\nsteps: 1 # r\xe9glage\n`, 'latin1'));
const mcOne = file('mc-one.jsonl', [{ task: 't', question: 'Q?', choices: ['a', 'b'], answer: 0 }, { task: 't', question: 'Q?', choices: ['only'], answer: 0 }]);
const longChoice = 'red green blue cat dog bird one two three four sun moon '.repeat(30);
const mcLong = file('mc-long.jsonl', [{ task: 't', question: 'Shout red', choices: ['RED!', 'red'], answer: 0 }, { task: 't', question: 'Q?', choices: ['a', longChoice], answer: 0 }]);
const unwritable = ['/proc', '/sys'].map((p) => path.join(p, 'mor-out')).find((p) => {
  try {
    fs.mkdirSync(p);
    fs.rmdirSync(p);
    return false;
  } catch {
    return true;
  }
});
const trainTo = (dir: string, ...more: string[]): string[] => train(setup.train, ...more).map((a) => (a === out ? dir : a));
const merge = (adapter: string, to: string): string[] => ['merge', '--model', setup.modelDir, '--adapter', adapter, '--out', to];

/** [what, argv, the error line must match] */
const CASES: [string, string[], RegExp][] = [
  ['bad JSON line in training data', train(badJson), new RegExp(`^error: ${esc(badJson)}:2: invalid JSON`)],
  ['missing field in a chat message', train(missing), new RegExp(`^error: ${esc(missing)}:3: missing field "messages\\[0\\]\\.content"`)],
  ['wrong type (completion is a number)', train(wrongType), new RegExp(`^error: ${esc(wrongType)}:1: field "completion": expected string, got number`)],
  ['unknown chat role', train(badRole), new RegExp(`^error: ${esc(badRole)}:2: field "messages\\[0\\]\\.role": unknown value "bot"`)],
  ['empty training data', train(emptyData), new RegExp(`^error: .*${esc(path.basename(emptyData))}.*empty`)],
  ['missing training file', train(path.join(root, 'nope.jsonl')), /^error: .*nope\.jsonl: cannot read \(ENOENT\)/],
  ['MC item with empty choices', evalMc(mcEmpty), new RegExp(`^error: ${esc(mcEmpty)}:2: field "choices" is empty`)],
  ['MC answer out of range', evalMc(mcRange), new RegExp(`^error: ${esc(mcRange)}:1: field "answer" = 2 is out of range \\(expected an integer index in 0\\.\\.1 for 2 choices\\)`)],
  ['MC answer of the wrong type', evalMc(mcType), new RegExp(`^error: ${esc(mcType)}:1: field "answer": expected number, got string`)],
  ['MC item without a question', evalMc(mcMissing), new RegExp(`^error: ${esc(mcMissing)}:1: missing field "question"`)],
  ['unknown key in the train config', ['train', '--config', unknownKey], new RegExp(`^error: ${esc(unknownKey)}: learning_rate: unknown key`)],
  ['unknown adapter key in the train config', ['train', '--config', unknownAdapterKey], new RegExp(`^error: ${esc(unknownAdapterKey)}: adapter\\.numExpert: unknown key`)],
  ['wrong type in the train config', ['train', '--config', wrongTypeKey], new RegExp(`^error: ${esc(wrongTypeKey)}: batchSize: `)],
  ['invalid YAML', ['train', '--config', badYaml], new RegExp(`^error: ${esc(badYaml)}:\\d+: invalid YAML`)],
  ['target module that matches nothing', train(setup.train).map((a) => (a === MOR ? '{"kind":"mor","r":2,"targetModules":["qq_proj"]}' : a)),
    /^error: .*qq_proj.*matched no linear layer/],
  ['missing model directory (train)', train(setup.train).map((a) => (a === setup.modelDir ? path.join(root, 'no-model') : a)), /^error: .*no-model/],
  ['missing model directory (eval)', ['eval', '--model', path.join(root, 'no-model'), '--data', setup.mc], /^error: .*no-model/],
  ['missing model directory (generate)', ['generate', '--model', path.join(root, 'no-model'), '--prompt', 'hi'], /^error: .*no-model/],
  ['missing adapter directory (eval)', ['eval', '--model', setup.modelDir, '--adapter', path.join(root, 'no-adapter'), '--data', setup.mc], /^error: .*no-adapter/],
  ['truncated safetensors (inspect)', ['inspect', corrupt], new RegExp(`^error: ${esc(corrupt)}: .*`)],
  ['not a safetensors file (inspect)', ['inspect', garbage], new RegExp(`^error: ${esc(garbage)}: `)],
];

/** Issue 14, one group per block: [what, argv, the error line must match]. */
const ISSUE14: [string, string[], RegExp][] = [
  // 1. Output locations that cannot be used: refused before any work.
  ['train --out-dir is an existing file', trainTo(notes), new RegExp(`^error: outDir ${esc(notes)}: is a file, not a directory$`)],
  ['train --out-dir lies under a file', trainTo(path.join(notes, 'run')), new RegExp(`^error: outDir .*: ${esc(notes)} is a file, not a directory$`)],
  ['eval --out is an existing file', [...evalMc(setup.mc), '--out', notes], new RegExp(`^error: --out ${esc(notes)}: is a file, not a directory$`)],
  ['routing --out lies under a file', ['routing', '--model', setup.modelDir, '--adapter', path.join(finished, 'adapter'), '--data', setup.train, '--out', path.join(notes, 'r')],
    /^error: --out .*notes\.txt is a file, not a directory$/],
  ['merge --out is an existing file', merge(path.join(loraRun, 'adapter'), notes), /^error: --out .*notes\.txt: is a file, not a directory$/],
  ['demo --out is an existing file', ['demo', '--model', setup.modelDir, '--data', setup.train, '--eval-data', setup.mc, '--out', notes], /^error: --out .*notes\.txt: is a file/],
  ...(unwritable ? [
    ['train --out-dir on a read-only / forbidden file system', trainTo(unwritable), /^error: outDir .*: cannot write in \/(proc|sys) \(/],
    ['eval --out on a read-only / forbidden file system', [...evalMc(setup.mc), '--out', unwritable], /^error: --out .*: cannot write in/],
  ] as [string, string[], RegExp][] : []),
  // 2. Existing run folders are never mixed or emptied.
  ['train into a finished run folder', trainTo(finished), new RegExp(`^error: ${esc(finished)}: the run folder is not empty \\(adapter/, checkpoints/, .*continue that run with --resume, replace it with --overwrite`)],
  ['train --resume with another adapter kind', trainTo(finished, '--resume').map((a) => (a === MOR ? LORA : a)), /^error: --resume: .*adapter\.kind "mor" -> "lora".*these change the training/],
  ['train --resume with another learning rate', trainTo(finished, '--resume', '--lr', '0.5'), /^error: --resume: .*\(lr 0\.0002 -> 0\.5\)/],
  ['train --resume with fewer steps than the checkpoint', trainTo(finished, '--resume'), /^error: --resume: .*checkpoint-2 is at step 2, beyond the 1 updates/],
  ['train --resume --overwrite', trainTo(finished, '--resume', '--overwrite'), /^error: --resume continues the run .* give one of them$/],
  ['train --overwrite of a folder holding other files', trainTo(foreignRun, '--overwrite'), /^error: --overwrite: .* also holds thesis\.tex, which mor train did not write/],
  ['train --resume without a checkpoint', trainTo(path.join(root, 'never-ran'), '--resume'), /^error: --resume: .*no complete checkpoint to resume from/],
  // 3. Merge never overwrites what it reads (real paths).
  ['merge --out reaching the base model through a symlink', merge(path.join(loraRun, 'adapter'), modelLink), /^error: --out .*model-link is the base model directory/],
  ['merge --out equal to the adapter folder', merge(path.join(loraRun, 'adapter'), path.join(loraRun, 'adapter', '.')), /^error: --out .* is the adapter directory/],
  ['merge --out inside the base model folder', merge(path.join(loraRun, 'adapter'), path.join(modelLink, 'merged')), /lies inside the base model directory/],
  // 4. Non-finite values are refused at load, naming the tensor and the count.
  ['eval with a NaN LoRA adapter', [...evalMc(setup.mc), '--adapter', nanLora.dir], new RegExp(`^error: .*nan-lora/adapter_model\\.safetensors: tensor "${esc(nanLora.key)}" has 3 non-finite values \\(NaN/Inf\\)`)],
  ['generate with an Inf MoR adapter', ['generate', '--model', setup.modelDir, '--adapter', infMor.dir, '--prompt', 'hi'], new RegExp(`^error: .*inf-mor/adapter_model\\.safetensors: tensor "${esc(infMor.key)}" has 3 non-finite values`)],
  ['merge of a NaN LoRA adapter', merge(nanLora.dir, path.join(root, 'merged-nan')), /tensor ".*" has 3 non-finite values \(NaN\/Inf\)/],
  ['routing with an Inf MoR adapter', ['routing', '--model', setup.modelDir, '--adapter', infMor.dir, '--data', setup.train], /has 3 non-finite values/],
  // 5. Everything a run needs is validated before its first step.
  ['train --final-eval with a bad item', trainTo(path.join(root, 'fe1'), '--final-eval', mcOne), new RegExp(`^error: ${esc(mcOne)}:2: field "choices" has 1 item, needs at least 2$`)],
  ['train --final-eval missing file', trainTo(path.join(root, 'fe2'), '--final-eval', path.join(root, 'no-bench.jsonl')), /^error: .*no-bench\.jsonl: cannot read \(ENOENT\)$/],
  ['train --final-eval with a choice longer than the model', trainTo(path.join(root, 'fe3'), '--final-eval', mcLong), new RegExp(`^error: ${esc(mcLong)}:2: choice 1 is \\d+ tokens long, more than the maximum length 128`)],
  ['train --final-eval into an unusable eval folder', trainTo(path.join(root, 'fe4'), '--final-eval', setup.mc).map((a) => (a === path.join(root, 'fe4') ? notes : a)), /^error: outDir .*notes\.txt: is a file/],
  ['train --eval-data with invalid UTF-8', trainTo(path.join(root, 'fe5'), '--eval-data', latin1), new RegExp(`^error: ${esc(latin1)}:2: invalid UTF-8`)],
  // 6. Data: strict UTF-8, multiple-choice items, choice lengths.
  ['invalid UTF-8 in training data', trainTo(path.join(root, 'd1')).map((a) => (a === setup.train ? latin1 : a)), new RegExp(`^error: ${esc(latin1)}:2: invalid UTF-8 \\(byte 0xe9 at column \\d+\\)`)],
  ['invalid UTF-8 in evaluation data', evalMc(latin1Mc), new RegExp(`^error: ${esc(latin1Mc)}:1: invalid UTF-8 \\(byte 0xe9 at column 16\\)`)],
  ['invalid UTF-8 in a train config', ['train', '--config', latin1Yaml], new RegExp(`^error: ${esc(latin1Yaml)}:2: invalid UTF-8`)],
  ['MC item with a single choice', evalMc(mcOne), new RegExp(`^error: ${esc(mcOne)}:2: field "choices" has 1 item, needs at least 2$`)],
  ['MC choice longer than --max-length', [...evalMc(mcLong), '--max-length', '16'], new RegExp(`^error: ${esc(mcLong)}:2: choice 1 is \\d+ tokens long, more than the maximum length 16`)],
];

// --- Groups 7 and 8: outcomes other than "exit 1" too ---------------------------------------
/** 200,000 one-element tensors (group 7: nothing may spread them into a call's arguments). */
const MANY = 200_000;
function manyTensors(n: number, prefix: string): Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> {
  const m = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (let i = 0; i < n; i++) m.set(`${prefix}${i}`, { dtype: 'F32', shape: [1], data: new Float32Array([i]) });
  return m;
}
const manyDir = path.join(root, 'many');
fs.mkdirSync(manyDir);
const many = path.join(manyDir, 'many.safetensors');
writeSafetensors(many, manyTensors(MANY, 'layers.'));
fs.copyFileSync(path.join(setup.modelDir, 'model.safetensors'), path.join(manyDir, 'small.safetensors'));
/** The same file, its last tensor's 4 bytes cut off (a truncated download). */
const manyCut = path.join(root, 'many-cut.safetensors');
fs.writeFileSync(manyCut, fs.readFileSync(many).subarray(0, fs.statSync(many).size - 4));
/** The finished LoRA adapter plus 200,000 tensors it does not have. */
const manyAdapter = path.join(root, 'many-adapter');
fs.cpSync(path.join(loraRun, 'adapter'), manyAdapter, { recursive: true });
{
  const f = path.join(manyAdapter, 'adapter_model.safetensors');
  const { tensors, metadata } = readSafetensors(f);
  for (const [k, v] of manyTensors(MANY, 'zz.extra.')) tensors.set(k, v);
  writeSafetensors(f, tensors, { metadata });
}

/** Fixtures of group 8: sequences past the model's 128 positions (the tokenizer makes ~1 token per short word). */
const longText = 'red green blue cat dog bird one two three four sun moon '.repeat(20).trim();
const longTrain = file('long-train.jsonl', [chat(`Shout ${longText}`, 'A!'), chat(`Reverse ${longText}`, 'B!')]);
const longMc = file('long-mc.jsonl', [{ task: 't', question: `Shout ${longText}`, choices: ['RED!', 'red'], answer: 0 }]);
const longEm = file('long-em.jsonl', [{ task: 't', prompt: `Shout ${longText}`, completion: 'RED!' }]);
/** A prompt just under the limit: generation crosses it after a few new tokens. */
const nearLimit = (() => {
  const tok = Tokenizer.fromDir(setup.modelDir);
  const words = longText.split(' ');
  let k = 1;
  while (tok.encode(words.slice(0, k + 1).join(' ')).length <= 124) k++;
  return words.slice(0, k).join(' ');
})();
const fresh = (name: string): string => path.join(root, name);

/** A row of groups 7 and 8: the exit code, the one `error:` line (or none), the `warning:` lines. */
interface Row {
  what: string;
  argv: string[];
  code: number;
  /** The one `error:` line; without it there must be none. */
  error?: RegExp;
  /** What the error line must not say (advice that does not apply). */
  errorNot?: RegExp;
  /** Sent to the process (in-process: its handlers) once stderr shows the line of step 1. */
  signal?: NodeJS.Signals;
  /** The last stderr line (after a signal: what was saved, how to continue). */
  lastLine?: RegExp;
  /** The `warning:` lines, each exactly once (and no other). */
  warnings?: RegExp[];
  /** What stdout must show. */
  stdout?: RegExp;
  /** A folder the command may create (a new run); every other file stays as it was. */
  creates?: string;
}

const ROWS: Row[] = [
  // 7. Sizes: 200,000 tensors are listed, checked and refused without a stack overflow.
  { what: 'inspect a file of 200,000 tensors', argv: ['inspect', many], code: 0, stdout: /^total: 200,000 tensors, 200,000 parameters \(F32 200,000\), 800,000 bytes/m },
  { what: 'inspect --json of 200,000 tensors', argv: ['inspect', many, '--json'], code: 0, stdout: /"tensors": 200000,/ },
  { what: 'inspect --stats of 200,000 tensors', argv: ['inspect', many, '--stats'], code: 0, stdout: /^layers\.199999 +F32 +\[1\] +1 +200000 +200000 +200000 +0 +0 +0$/m },
  { what: 'inspect a folder holding a 200,000-tensor shard', argv: ['inspect', manyDir], code: 0, stdout: /^all 2 files: 200,0\d\d tensors/m },
  { what: 'inspect a truncated 200,000-tensor file', argv: ['inspect', manyCut], code: 1, error: new RegExp(`^error: ${esc(manyCut)}: .*run past the end of the file`) },
  { what: 'eval with an adapter file of 200,000 unknown tensors', argv: [...evalMc(setup.mc), '--adapter', manyAdapter], code: 1,
    error: /^error: .*many-adapter\/adapter_model\.safetensors: unexpected tensor "zz\.extra\.\d+"/ },
  // 8. Signals: SIGINT / SIGTERM after the first step save a checkpoint and exit 130 / 143.
  ...([['SIGINT', 130], ['SIGTERM', 143]] as const).map(([signal, code]): Row => ({
    what: `train stopped by ${signal} after its first step`, argv: trainTo(fresh(`sig-${signal}`), '--steps', '400'), code, signal, creates: fresh(`sig-${signal}`),
    lastLine: new RegExp(`^interrupted by ${signal} at step \\d+/400: saved checkpoint .*sig-${signal}/checkpoints/checkpoint-\\d+ and .*metrics\\.jsonl \\(no adapter yet\\); to continue, run the same command with --resume$`),
  })),
  // 8. Runaway weights stop the run (exit 1) with advice that applies: not clipping, which Adam ignores.
  { what: 'LoRA at lr 1000', argv: trainTo(fresh('lr1000'), '--lr', '1000', '--steps', '20').map((a) => (a === MOR ? LORA : a)), code: 1, creates: fresh('lr1000'),
    error: /^error: training diverged at step \d+: weights of ".*lora_[AB].*" reached [\d,]+ in magnitude \(limit 1,000\) while the loss is [\d.]+; no checkpoint was written yet; lower the learning rate \(now 1000\)/,
    errorNot: /maxGradNorm/ },
  { what: 'LoRA at lr 1000 with --max-grad-norm 1 and checkpoints', argv: trainTo(fresh('lr1000c'), '--lr', '1000', '--steps', '20', '--max-grad-norm', '1', '--checkpoint-every', '1').map((a) => (a === MOR ? LORA : a)),
    code: 1, creates: fresh('lr1000c'), error: /^error: training diverged at step (\d+): .*; the last good checkpoint is .*checkpoint-\d+; lower the learning rate \(now 1000\)/, errorNot: /set maxGradNorm/ },
  { what: 'MoR at lr 1000', argv: trainTo(fresh('lr1000m'), '--lr', '1000', '--steps', '20'), code: 1, creates: fresh('lr1000m'),
    error: /^error: training diverged at step \d+: weights of "[^"]+" reached [\d,]+ in magnitude/ },
  // 8. Positions past max_position_embeddings: one warning per run, naming the length and the limit.
  { what: 'train within the limit (no warning)', argv: trainTo(fresh('pos0')), code: 0, creates: fresh('pos0'), stdout: /^done: step 1\/1/ },
  { what: 'train on sequences past the limit', argv: trainTo(fresh('pos1')).map((a) => (a === setup.train ? longTrain : a)), code: 0, creates: fresh('pos1'),
    warnings: [/^warning: a training sequence reaches \d{3} positions, past the model's max_position_embeddings \(128\): positions beyond it were never trained, so results may degrade \(lower maxLength \(now 512\) to 128\)$/] },
  { what: 'train with --eval-data past the limit', argv: trainTo(fresh('pos2'), '--eval-data', longTrain), code: 0, creates: fresh('pos2'),
    warnings: [/^warning: an evaluation sequence \(evalData\) reaches \d{3} positions, past the model's max_position_embeddings \(128\)/] },
  { what: 'train with training, eval and final-eval data past the limit (once per run)',
    argv: trainTo(fresh('pos3'), '--steps', '3', '--eval-data', longTrain, '--eval-every', '1', '--final-eval', longEm).map((a) => (a === setup.train ? longTrain : a)), code: 0, creates: fresh('pos3'),
    warnings: [/^warning: an evaluation sequence \(evalData\) reaches \d{3} positions, past the model's max_position_embeddings \(128\)/] },
  { what: 'train whose final evaluation generates past the limit', argv: trainTo(fresh('pos4'), '--final-eval', longEm), code: 0, creates: fresh('pos4'),
    warnings: [/^warning: generation \(a prompt of \d{3} tokens \+ new tokens\) reaches \d{3} positions, past the model's max_position_embeddings \(128\): .*\(shorten the prompt or lower --max-new-tokens\)$/] },
  { what: 'eval --max-length 1000 of choices past the limit', argv: [...evalMc(longMc), '--max-length', '1000'], code: 0,
    warnings: [/^warning: a scored sequence \(context \+ choice\) reaches \d{3} positions, past the model's max_position_embeddings \(128\): .*\(lower --max-length to 128\)$/] },
  { what: 'eval of the same choices without --max-length (contexts cut to the limit: no warning)', argv: evalMc(longMc), code: 0 },
  { what: 'eval of exact-match prompts past the limit', argv: evalMc(longEm), code: 0,
    warnings: [/^warning: generation \(a prompt of \d{3} tokens \+ new tokens\) reaches \d{3} positions, past the model's max_position_embeddings \(128\)/] },
  { what: 'generate from a prompt past the limit', argv: ['generate', '--model', setup.modelDir, '--prompt', longText, '--max-new-tokens', '4'], code: 0,
    warnings: [/^warning: generation \(a prompt of \d{3} tokens \+ new tokens\) reaches \d{3} positions, past the model's max_position_embeddings \(128\)/] },
  { what: 'routing --max-length 1000 of examples past the limit', argv: ['routing', '--model', setup.modelDir, '--adapter', path.join(finished, 'adapter'), '--data', longTrain, '--max-length', '1000'], code: 0,
    warnings: [/^warning: a routing example reaches \d{3} positions, past the model's max_position_embeddings \(128\): .*\(lower --max-length to 128\)$/] },
  { what: 'routing of the same examples without --max-length (they do not fit: refused, no warning)', argv: ['routing', '--model', setup.modelDir, '--adapter', path.join(finished, 'adapter'), '--data', longTrain], code: 1,
    error: new RegExp(`^error: no example of ${esc(longTrain)} fits maxLength 128$`) },
  { what: 'merge of MoR with routing from examples past the limit', argv: [...merge(path.join(finished, 'adapter'), fresh('merged-long')), '--routing-from', longTrain, '--max-length', '1000'], code: 0, creates: fresh('merged-long'),
    warnings: [/^warning: a routing example reaches \d{3} positions, past the model's max_position_embeddings \(128\): .*\(lower --max-length \(now 1000\) to 128\)$/] },
  { what: 'generate crossing the limit while decoding', argv: ['generate', '--model', setup.modelDir, '--prompt', nearLimit, '--max-new-tokens', '30'], code: 0,
    warnings: [/^warning: generation \(a prompt of 12\d tokens \+ new tokens\) reaches 129 positions, past the model's max_position_embeddings \(128\)/] },
];

/** Every entry under `dir` (folders too): relative path -> bytes (folders: empty). */
function snapshot(dir: string): Map<string, Buffer> {
  const snap = new Map<string, Buffer>();
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    snap.set(path.relative(dir, p) + (e.isDirectory() ? '/' : ''), e.isFile() ? fs.readFileSync(p) : Buffer.alloc(0));
  }
  return snap;
}

for (const [what, argv, re] of ISSUE14) {
  test(`issue 14: ${what}: exit 1, one "error:" line, every existing file byte-identical`, async () => {
    const before = snapshot(root);
    const r = await run(argv);
    assert.equal(r.code, 1, `exit code (stderr: ${r.err})`);
    const lines = r.err.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `exactly one error line, got:\n${r.err}`);
    assert.match(lines[0], re);
    assert.equal(r.out, '', 'nothing on stdout');
    const after = snapshot(root);
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'no file or folder added or removed');
    for (const [f, b] of before) assert.ok(after.get(f)!.equals(b), `${f} changed`);
  });
}

for (const row of ROWS) {
  test(`issue 14: ${row.what}: exit ${row.code}, ${row.error ? 'one "error:" line' : 'no "error:" line'}, existing files byte-identical`, async () => {
    const before = snapshot(root);
    let err = '';
    let sent = false;
    const stderr = (s: string): void => {
      err += s;
      if (row.signal && !sent && /^step 1\/\d+ /m.test(err)) {
        sent = true;
        process.emit(row.signal, row.signal); // what the OS delivers: the command's handlers run
      }
    };
    let out = '';
    const code = await main(row.argv, { stdout: (s) => { out += s; }, stderr });
    const r = { code, out, err };
    assert.equal(r.code, row.code, `exit code (stderr: ${r.err.slice(0, 2000)})`);
    const lines = r.err.split('\n').filter((l) => l !== '');
    const errors = lines.filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, row.error ? 1 : 0, `"error:" lines, got:\n${r.err.slice(0, 2000)}`);
    if (row.error) assert.match(errors[0], row.error);
    if (row.errorNot) assert.doesNotMatch(errors[0], row.errorNot);
    if (row.lastLine) assert.match(lines[lines.length - 1], row.lastLine);
    assert.ok(!/\n +at /.test(r.err), 'no stack trace');
    const warnings = lines.filter((l) => l.startsWith('warning: '));
    assert.equal(warnings.length, row.warnings?.length ?? 0, `"warning:" lines, got:\n${warnings.join('\n')}`);
    for (const w of row.warnings ?? []) assert.equal(warnings.filter((l) => w.test(l)).length, 1, `one warning matching ${w}, got:\n${warnings.join('\n')}`);
    if (row.stdout) assert.match(r.out, row.stdout);
    const after = snapshot(root);
    const created = row.creates ? path.relative(root, row.creates) : undefined;
    const isNew = (f: string): boolean => created !== undefined && (f === `${created}/` || f.startsWith(`${created}/`) || f === created);
    for (const [f, b] of before) assert.ok(after.get(f)?.equals(b), `${f} changed or was removed`);
    assert.deepEqual([...after.keys()].filter((f) => !before.has(f) && !isNew(f)), [], 'nothing added outside the new run folder');
  });
}

for (const [what, argv, re] of CASES) {
  test(`${what}: exit 1, one line "error: ..." naming the place`, async () => {
    const r = await run(argv);
    assert.equal(r.code, 1, `exit code (stderr: ${r.err})`);
    const lines = r.err.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `exactly one error line, got:\n${r.err}`);
    assert.match(lines[0], re);
    assert.equal(r.out, '', 'nothing on stdout');
  });
}

test('a bad training file writes nothing into the output directory', () => {
  // Every train case above failed before training: no adapter, no checkpoint, no metrics.
  assert.ok(!fs.existsSync(path.join(out, 'adapter')), 'no adapter written');
  assert.ok(!fs.existsSync(path.join(out, 'metrics.jsonl')), 'no metrics written');
});

test('a bug (a plain Error escaping a command) prints a stack trace and exits 2', async () => {
  // Not a UserError: the io's stdout itself throws while `mor inspect` prints its table.
  const good = path.join(setup.modelDir, 'model.safetensors');
  const r = await run(['inspect', good], () => {
    throw new Error('stdout exploded');
  });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /^internal error \(a bug in mor-peft, please report it\):\nError: stdout exploded\n/);
  assert.match(r.err, /\n +at .+/, 'a stack trace');
  assert.doesNotMatch(r.err, /^error: /m);
});

test('the real `mor` binary: a bad input exits 1 with one error line; --version exits 0', () => {
  // As a user runs it: a child process through bin/mor.js (MOR_QUIET hides the backend banner,
  // which is otherwise a second stderr line; reported).
  const bin = fileURLToPath(new URL('../../bin/mor.js', import.meta.url));
  const env = { ...process.env, MOR_QUIET: '1' };
  const bad = spawnSync(process.execPath, [bin, ...evalMc(mcRange)], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(bad.status, 1, bad.stderr);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, new RegExp(`^error: ${esc(mcRange)}:1: field "answer" = 2 is out of range[^\\n]*\\n$`));
  const v = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout, '0.1.0\n');
});
