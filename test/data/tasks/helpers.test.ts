/**
 * Unit tests of the suite's building blocks: splitting, multiple-choice items, the WordNet
 * line parser, CMUdict rhyme/syllable rules and the email excerpt cleaner.
 * Expected values are worked out by hand from the inputs written here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../../src/util/rng.ts';
import { emailExcerpt } from '../../../src/data/tasks/email.ts';
import { rhymePart, syllableCount, vowelGroups } from '../../../src/data/tasks/phonetics.ts';
import { arithmeticKey } from '../../../src/data/tasks/reasoning.ts';
import { makeItem, namedRng, splitFacts, type Fact } from '../../../src/data/tasks/split.ts';
import { glossDefinition, parseWordNet } from '../../../src/data/tasks/wordnet.ts';

test('splitFacts keeps every key in one split, respects sizes and draws distractors from the same split', () => {
  const facts: Fact[] = [];
  for (let k = 0; k < 60; k++) for (let j = 0; j < 3; j++) facts.push({ key: `k${k}`, question: `q${k}-${j}`, answer: `a${k}-${j}` });
  const s = splitFacts(new Rng(7), facts, { train: 90, validation: 15, test: 30 }, { numChoices: 4 });
  assert.equal(s.test.length, 30);
  assert.equal(s.validation.length, 15);
  assert.equal(s.train.length, 90);
  const keysOf = (xs: { key: string }[]): Set<string> => new Set(xs.map((x) => x.key));
  const [tr, va, te] = [keysOf(s.train), keysOf(s.validation), keysOf(s.test)];
  for (const k of te) assert.ok(!tr.has(k) && !va.has(k), `key ${k} in two splits`);
  for (const k of va) assert.ok(!tr.has(k), `key ${k} in two splits`);
  for (const split of [s.train, s.validation, s.test]) {
    const answers = new Set(split.map((i) => i.answer));
    for (const it of split) {
      assert.equal(it.choices.length, 4);
      assert.equal(new Set(it.choices).size, 4);
      assert.equal(it.choices[it.answerIndex], it.answer);
      for (const c of it.choices) assert.ok(answers.has(c), `distractor ${c} not from the same split`);
    }
  }
});

test('balanced splits hold each label equally often', () => {
  const facts: Fact[] = [];
  for (let k = 0; k < 300; k++) facts.push({ key: `n${k}`, question: `q${k}`, answer: k % 5 === 0 ? 'rare' : 'common' });
  const s = splitFacts(new Rng(3), facts, { train: 40, validation: 20, test: 40 }, { numChoices: 2, fixedChoices: ['common', 'rare'], balanced: true });
  for (const split of [s.train, s.validation, s.test]) {
    const rare = split.filter((i) => i.answer === 'rare').length;
    assert.equal(rare * 2, split.length);
    for (const it of split) assert.deepEqual(it.choices, ['common', 'rare']);
  }
});

test('makeItem rejects duplicate choices and a missing answer', () => {
  assert.throws(() => makeItem(new Rng(1), 'k', 'q', 'a', ['b', 'b']), /duplicate/);
  assert.throws(() => makeItem(new Rng(1), 'k', 'q', 'a', [], ['x', 'y']), /not among/);
});

test('namedRng depends on the seed and the name only', () => {
  assert.equal(namedRng(5, 'task:a').nextU32(), namedRng(5, 'task:a').nextU32());
  assert.notEqual(namedRng(5, 'task:a').nextU32(), namedRng(5, 'task:b').nextU32());
  assert.notEqual(namedRng(5, 'task:a').nextU32(), namedRng(6, 'task:a').nextU32());
});

test('WordNet data and index lines are parsed into lemmas, pointers and definitions', () => {
  const files: Record<string, string> = {
    'data.noun': '  licence line\n00001740 03 n 02 dog 0 domestic_dog 0 002 @ 00001930 n 0000 ! 00002000 n 0102 | a member of the genus Canis; "the dog barked"  \n00001930 03 n 01 canine 0 000 | a carnivore  \n',
    'index.noun': '  licence line\ndog n 1 2 @ ! 1 1 00001740  \n',
    'data.verb': '',
    'index.verb': '',
    'data.adj': '00003000 00 s 01 hot(a) 0 000 | used of physical heat  \n',
    'index.adj': '',
    'data.adv': '',
    'index.adv': '',
  };
  const wn = parseWordNet((f) => files[f]);
  const dog = wn.synsets.get('n00001740');
  assert.ok(dog);
  assert.deepEqual(dog.words, ['dog', 'domestic dog']);
  assert.equal(dog.definition, 'a member of the genus Canis');
  assert.deepEqual(dog.pointers, [
    { symbol: '@', target: 'n00001930', sourceWord: 0, targetWord: 0 },
    { symbol: '!', target: 'n00002000', sourceWord: 1, targetWord: 2 },
  ]);
  assert.deepEqual(wn.senses.get('n:dog'), ['n00001740']);
  assert.deepEqual(wn.synsets.get('a00003000')?.words, ['hot']);
  assert.equal(glossDefinition('"only an example"'), '');
  assert.equal(glossDefinition('like better; value more highly; "I prefer tea"'), 'like better; value more highly');
});

test('rhyme part and syllable count follow the stress digits', () => {
  // WHALE W EY1 L; SAIL S EY1 L; BANANA B AH0 N AE1 N AH0; PIANO P IY0 AE1 N OW2
  assert.equal(rhymePart(['W', 'EY1', 'L']), 'EY L');
  assert.equal(rhymePart(['S', 'EY1', 'L']), rhymePart(['W', 'EY1', 'L']));
  assert.equal(rhymePart(['B', 'AH0', 'N', 'AE1', 'N', 'AH0']), 'AE N AH');
  assert.equal(rhymePart(['DH', 'AH0']), 'AH'); // no primary stress: from the last vowel
  assert.equal(syllableCount(['B', 'AH0', 'N', 'AE1', 'N', 'AH0']), 3);
  assert.equal(syllableCount(['P', 'IY0', 'AE1', 'N', 'OW2']), 3);
  assert.equal(vowelGroups('fbi'), 1);
  assert.equal(vowelGroups('banana'), 3);
});

test('arithmetic keys treat addition as commutative and subtraction as ordered', () => {
  assert.equal(arithmeticKey(12, '+', 7), arithmeticKey(7, '+', 12));
  assert.notEqual(arithmeticKey(12, '-', 7), arithmeticKey(7, '-', 12));
});

test('email excerpt: subject plus first words, quoted-printable and HTML decoded, quotes dropped', () => {
  const raw = [
    'From: someone@example.com',
    'Subject: Cheap =',
    '  offer',
    'Content-Type: text/html',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    '<html><body><p>Buy n=',
    'ow &amp; save <b>big</b> at http://spam.example.com today</p>',
    '> quoted reply line',
    'one two three four five six</body></html>',
  ].join('\n');
  assert.equal(emailExcerpt(raw, 8), 'Subject: Cheap = offer\nBuy now & save big at today one');
  assert.equal(emailExcerpt('Subject: x\n\ntoo short', 30), undefined);
});
