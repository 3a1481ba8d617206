/**
 * Build the bundled multi-task suite (and, with --corpus, the base model's pretraining
 * corpus) from the npm data packages, deterministically from a seed.
 *
 *   npm run data:build                                   # data/suite, seed 1234
 *   npm run data:build -- --seed 1234 --out data/suite --corpus --corpus-out data/corpus
 *   npm run data:build -- --max-train 50 --max-eval 20   # a small suite (tests, smoke runs)
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildCorpus } from '../src/data/tasks/corpus.ts';
import { buildSuite, DEFAULT_SUITE_SEED } from '../src/data/tasks/suite.ts';

function intArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) {
    console.error(`error: --${name} must be a non-negative integer, got '${v}'`);
    process.exit(1);
  }
  return Number(v);
}

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    out: { type: 'string', default: 'data/suite' },
    corpus: { type: 'boolean', default: false },
    'corpus-out': { type: 'string', default: 'data/corpus' },
    'max-train': { type: 'string' },
    'max-eval': { type: 'string' },
    tasks: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log(`usage: npm run data:build -- [--seed N] [--out DIR] [--corpus] [--corpus-out DIR]
                            [--max-train N] [--max-eval N] [--tasks a,b,...]`);
  process.exit(0);
}

const seed = intArg('seed', values.seed) ?? DEFAULT_SUITE_SEED;
const maxTrain = intArg('max-train', values['max-train']);
const maxEval = intArg('max-eval', values['max-eval']);
const tasks = values.tasks?.split(',').filter((t) => t.length > 0);
if (values.corpus && (maxTrain !== undefined || maxEval !== undefined || tasks)) {
  console.error('error: --corpus needs the full suite (its held-out items are excluded); drop --max-train/--max-eval/--tasks');
  process.exit(1);
}

const t0 = Date.now();
let built;
try {
  built = buildSuite(values.out, {
    seed,
    maxSizes: { train: maxTrain, validation: maxEval, test: maxEval },
    tasks,
  });
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
}
for (const t of built.manifest.tasks) {
  console.log(
    `${t.name.padEnd(20)} ${t.category.padEnd(10)} train ${String(t.counts.train).padStart(5)}  validation ${String(t.counts.validation).padStart(4)}  test ${String(t.counts.test).padStart(4)}  chance ${t.chance.toFixed(2)}`,
  );
}
console.log(`suite written to ${path.resolve(values.out)} (seed ${seed}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);

if (values.corpus) {
  const t1 = Date.now();
  const info = buildCorpus(values['corpus-out'], seed, built.tasks);
  console.log(
    `corpus written to ${path.resolve(values['corpus-out'])}: train ${(info.bytes.train / 1e6).toFixed(2)} MB (${info.documents.train} docs), valid ${(info.bytes.valid / 1e6).toFixed(2)} MB (${info.documents.valid} docs), ${((Date.now() - t1) / 1000).toFixed(1)} s`,
  );
}
