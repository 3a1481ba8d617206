/**
 * Encoding and decoding of committed tokenizers against ids written by independent
 * references (scripts/fixtures/make_tokenizer_fixtures.py): GPT-2's byte-level BPE encoder
 * algorithm in Python for gpt2-bytelevel/, the sentencepiece library for llama2-sp/ and
 * llama2-sp-metaspace/ (the Metaspace pre-tokenizer layout).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '..', 'fixtures', 'tokenizers');

interface Case {
  text: string;
  ids: number[];
  idsWithSpecialTokens: number[];
  decoded: string | null;
  decodedSkipSpecial: string;
}
interface Expected {
  vocabSize: number;
  cases: Case[];
}

function load(name: string): { tok: Tokenizer; expected: Expected } {
  const dir = path.join(fixtures, name);
  return {
    tok: Tokenizer.fromDir(dir),
    expected: JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected,
  };
}

for (const name of ['gpt2-bytelevel', 'llama2-sp', 'llama2-sp-metaspace']) {
  describe(`${name} against its reference`, () => {
    const { tok, expected } = load(name);

    test('covers ASCII, unicode, emoji, whitespace runs, digits and special tokens', () => {
      const texts = expected.cases.map((c) => c.text);
      assert.ok(texts.some((t) => /\p{Extended_Pictographic}/u.test(t)));
      assert.ok(texts.some((t) => /\s{3,}/u.test(t)));
      assert.ok(texts.some((t) => /\d{5,}/u.test(t)));
      assert.ok(expected.cases.some((c) => c.ids.some((id) => tok.isSpecialId(id))));
    });

    for (const c of expected.cases) {
      test(`encode/decode ${JSON.stringify(c.text).slice(0, 50)}`, () => {
        assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids);
        assert.deepEqual(tok.encode(c.text), c.idsWithSpecialTokens);
        assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decodedSkipSpecial);
        if (c.decoded !== null) assert.equal(tok.decode(c.ids), c.decoded);
      });
    }

    test('vocabSize equals the reference vocabulary size', () => {
      assert.equal(tok.vocabSize, expected.vocabSize);
    });

    test('encodeBatch equals encode per text', () => {
      const texts = expected.cases.map((c) => c.text);
      assert.deepEqual(
        tok.encodeBatch(texts, { addSpecialTokens: false }),
        expected.cases.map((c) => c.ids),
      );
    });

    test('streaming decode, token by token, concatenates to the full decode and never emits a half character', () => {
      for (const c of expected.cases) {
        for (const skipSpecialTokens of [false, true]) {
          const stream = tok.decodeStream({ skipSpecialTokens });
          let text = '';
          for (const id of c.ids) {
            const piece = stream.push(id);
            const where = `${JSON.stringify(piece)} for ${JSON.stringify(c.text)}`;
            assert.ok(!piece.includes('\uFFFD'), `half character in ${where}`);
            text += piece;
          }
          text += stream.flush();
          assert.equal(text, tok.decode(c.ids, { skipSpecialTokens }), JSON.stringify(c.text));
        }
      }
    });

    test('StreamDecoder.update takes the whole sequence so far', () => {
      const c = expected.cases.find((x) => x.text.startsWith('emoji'))!;
      const stream = tok.decodeStream();
      let text = '';
      for (let n = 1; n <= c.ids.length; n++) text += stream.update(c.ids.slice(0, n));
      text += stream.flush();
      assert.equal(text, tok.decode(c.ids));
      assert.throws(() => stream.update([]), /fewer than/);
    });
  });
}

describe('special token ids from the side files', () => {
  test('gpt2-bytelevel: eos from tokenizer_config then generation_config, pad, no bos', () => {
    const tok = Tokenizer.fromDir(path.join(fixtures, 'gpt2-bytelevel'));
    const tj = JSON.parse(fs.readFileSync(path.join(fixtures, 'gpt2-bytelevel', 'tokenizer.json'), 'utf8'));
    const idOf = (s: string) => tj.added_tokens.find((t: { content: string }) => t.content === s).id as number;
    assert.deepEqual(tok.eosTokenIds, [idOf('<|im_end|>'), idOf('<|endoftext|>')]);
    assert.equal(tok.eosTokenId, idOf('<|im_end|>'));
    assert.equal(tok.padTokenId, idOf('<|endoftext|>'));
    assert.equal(tok.bosTokenId, undefined);
    assert.equal(tok.modelMaxLength, 32768);
    assert.equal(tok.hasChatTemplate, true);
  });

  test('llama2-sp: AddedToken objects give bos 1, eos 2, unk 0; no pad', () => {
    const tok = Tokenizer.fromDir(path.join(fixtures, 'llama2-sp'));
    assert.equal(tok.bosTokenId, 1);
    assert.deepEqual(tok.eosTokenIds, [2]);
    assert.equal(tok.unkTokenId, 0);
    assert.equal(tok.padTokenId, undefined);
    assert.equal(tok.bosToken, '<s>');
    assert.equal(tok.idToToken(1), '<s>');
    assert.equal(tok.tokenToId('</s>'), 2);
  });

  test('decode skips ids outside the vocabulary and accepts Int32Array', () => {
    const tok = Tokenizer.fromDir(path.join(fixtures, 'llama2-sp'));
    const ids = tok.encode('Hello world', { addSpecialTokens: false });
    assert.equal(tok.decode([...ids, tok.vocabSize + 5]), 'Hello world');
    assert.equal(tok.decode(Int32Array.from(ids)), 'Hello world');
    assert.equal(tok.decode([]), '');
  });
});
