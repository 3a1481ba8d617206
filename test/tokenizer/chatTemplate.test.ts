/**
 * Chat templates: real-world templates (Qwen2.5 ChatML with tools, LLaMA-2 chat) and the
 * default template rendered by @huggingface/jinja must equal Python jinja2's render in
 * transformers' environment (test/fixtures/tokenizers/chat_expected.json). Then the
 * assistant-span segmentation and the token-level loss mask.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { DEFAULT_CHAT_TEMPLATE, renderChatTemplate, type ChatMessage } from '../../src/tokenizer/chatTemplate.ts';
import { UserError } from '../../src/errors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '..', 'fixtures', 'tokenizers');

interface ChatCase {
  name: string;
  dir: string | null;
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
  tools?: unknown[];
  expected?: string;
  error?: string;
}
const chat = JSON.parse(fs.readFileSync(path.join(fixtures, 'chat_expected.json'), 'utf8')) as {
  defaultTemplate: string;
  cases: ChatCase[];
};
const toks: Record<string, Tokenizer> = {
  'gpt2-bytelevel': Tokenizer.fromDir(path.join(fixtures, 'gpt2-bytelevel')),
  'llama2-sp': Tokenizer.fromDir(path.join(fixtures, 'llama2-sp')),
};

describe('chat templates match jinja2', () => {
  test('DEFAULT_CHAT_TEMPLATE is the template the reference rendered', () => {
    assert.equal(DEFAULT_CHAT_TEMPLATE, chat.defaultTemplate);
  });

  for (const c of chat.cases) {
    test(c.name, () => {
      // the default-template cases were rendered with these special tokens
      const specials = c.name === 'default-no-eos' ? { eos_token: '' } : { bos_token: '<s>', eos_token: '</s>' };
      const opts = { addGenerationPrompt: c.addGenerationPrompt, tools: c.tools };
      const render = () =>
        c.dir === null
          ? renderChatTemplate(DEFAULT_CHAT_TEMPLATE, c.messages, specials, opts)
          : toks[c.dir].applyChatTemplate(c.messages, opts);
      if (c.error !== undefined) {
        assert.throws(render, (e: unknown) => e instanceof UserError && e.message.includes(c.error!));
      } else {
        assert.equal(render(), c.expected);
      }
    });
  }
});

describe('default template and template selection', () => {
  const messages: ChatMessage[] = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello!' },
  ];

  test('a tokenizer without chat_template uses the default with its eos token', () => {
    const tj = JSON.parse(fs.readFileSync(path.join(fixtures, 'llama2-sp', 'tokenizer.json'), 'utf8'));
    const tok = Tokenizer.fromJson(tj, { bos_token: '<s>', eos_token: '</s>' });
    assert.equal(tok.hasChatTemplate, false);
    assert.equal(
      tok.applyChatTemplate(messages, { addGenerationPrompt: true }),
      '<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|assistant|>\n',
    );
    const noEos = Tokenizer.fromJson(tj, {});
    assert.equal(noEos.applyChatTemplate(messages), '<|user|>\nHi\n<|assistant|>\nHello!\n');
  });

  test('named templates: default, tool_use when tools are given, explicit name, unknown name', () => {
    const tj = JSON.parse(fs.readFileSync(path.join(fixtures, 'llama2-sp', 'tokenizer.json'), 'utf8'));
    const tok = Tokenizer.fromJson(tj, {
      eos_token: '</s>',
      chat_template: [
        { name: 'default', template: 'D{{ messages|length }}' },
        { name: 'tool_use', template: 'T{{ tools|length }}' },
      ],
    });
    assert.equal(tok.applyChatTemplate(messages), 'D2');
    assert.equal(tok.applyChatTemplate(messages, { tools: [{}, {}, {}] }), 'T3');
    assert.equal(tok.applyChatTemplate(messages, { templateName: 'tool_use', tools: [] }), 'T0');
    assert.throws(
      () => tok.applyChatTemplate(messages, { templateName: 'x' }),
      /no chat template named 'x'.*default, tool_use/,
    );
  });

  test('template errors and bad messages are UserErrors', () => {
    assert.throws(() => renderChatTemplate('{% if %}', messages, {}), UserError);
    assert.throws(() => renderChatTemplate('{{ raise_exception("nope") }}', messages, {}), /nope/);
    const noRole = [{ content: 'no role' }] as unknown as ChatMessage[];
    assert.throws(() => renderChatTemplate('x', noRole, {}), /messages\[0\]/);
  });
});

describe('assistant spans for loss masking', () => {
  const conv: ChatMessage[] = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: 'It is 4.' },
    { role: 'user', content: 'And 3+3? 😀' },
    { role: 'assistant', content: 'Six, café.' },
  ];

  test('ChatML (Qwen2.5): trainable text is each answer plus <|im_end|>\\n', () => {
    const tok = toks['gpt2-bytelevel'];
    const segs = tok.chatSegments(conv);
    assert.equal(segs.map((s) => s.text).join(''), tok.applyChatTemplate(conv));
    assert.deepEqual(
      segs.filter((s) => s.trainable).map((s) => s.text),
      ['It is 4.<|im_end|>\n', 'Six, café.<|im_end|>\n'],
    );
    const withPrompt = tok.chatSegments(conv, { addGenerationPrompt: true });
    assert.deepEqual(withPrompt.at(-1), { text: '<|im_start|>assistant\n', trainable: false });
  });

  test('ChatML with tools: the tool call is trainable, the tool response is not', () => {
    const c = chat.cases.find((x) => x.name === 'qwen-tools')!;
    const tok = toks['gpt2-bytelevel'];
    const segs = tok.chatSegments(c.messages, { tools: c.tools, addGenerationPrompt: true });
    assert.equal(segs.map((s) => s.text).join(''), c.expected);
    const trainable = segs.filter((s) => s.trainable).map((s) => s.text);
    assert.equal(trainable.length, 2);
    assert.match(trainable[0], /^<tool_call>\n\{"name": "get_weather".*<\|im_end\|>\n$/s);
    assert.equal(trainable[1], '18 degrees.<|im_end|>\n');
    assert.ok(!trainable.join('').includes('tool_response'));
  });

  test('LLaMA-2: trainable text is " answer </s>"', () => {
    const tok = toks['llama2-sp'];
    const segs = tok.chatSegments(conv);
    assert.deepEqual(
      segs.filter((s) => s.trainable).map((s) => s.text),
      [' It is 4. </s>', ' Six, café. </s>'],
    );
    assert.equal(segs.map((s) => s.text).join(''), tok.applyChatTemplate(conv));
  });

  for (const name of ['gpt2-bytelevel', 'llama2-sp']) {
    test(`${name}: encodeChat ids equal encode(render) and the mask covers exactly the answer tokens`, () => {
      const tok = toks[name];
      const { ids, trainable } = tok.encodeChat(conv);
      assert.deepEqual(ids, tok.encode(tok.applyChatTemplate(conv), { addSpecialTokens: false }));
      assert.equal(trainable.length, ids.length);
      // decode the trainable runs: each must contain its answer and the EOS token
      const runs: number[][] = [];
      trainable.forEach((t, i) => {
        if (t && (i === 0 || !trainable[i - 1])) runs.push([]);
        if (t) runs[runs.length - 1].push(ids[i]);
      });
      const eos = tok.eosToken!;
      const texts = runs.map((r) => tok.decode(r));
      assert.equal(runs.length, 2);
      assert.ok(texts[0].includes('It is 4.') && texts[0].includes(eos), texts[0]);
      assert.ok(texts[1].includes('Six, café.') && texts[1].includes(eos), texts[1]);
      // nothing of the prompts is trainable
      for (const t of texts) assert.ok(!t.includes('2+2') && !t.includes('3+3') && !t.includes('terse'), t);
      // the token right before each run is not trainable and the runs end at EOS
      for (const r of runs) assert.equal(r.at(-1) === tok.eosTokenId || tok.decode([r.at(-1)!]) === '\n', true);
    });
  }

  test('a template that is not prefix-stable is reported', () => {
    const tj = JSON.parse(fs.readFileSync(path.join(fixtures, 'llama2-sp', 'tokenizer.json'), 'utf8'));
    const tok = Tokenizer.fromJson(tj, {
      eos_token: '</s>',
      // numbers every message with the total count: earlier renders are not prefixes
      chat_template: '{% for m in messages %}{{ messages|length }}:{{ m.content }};{% endfor %}',
    });
    assert.throws(() => tok.chatSegments(conv), /not prefix-stable at message 2/);
  });
});
