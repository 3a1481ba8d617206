/**
 * Every registered subcommand answers `--help` in-process: exit code 0, usage naming the
 * command and every required option; the top-level help lists every command; an unknown
 * command exits 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '../../src/cli/main.ts';
import { runCli as run } from './runCli.ts';


const commands = buildProgram({ stdout: () => {}, stderr: () => {} }).commands;

test('the CLI registers the subcommands of issue 5', () => {
  const names = commands.map((c) => c.name());
  for (const n of ['train', 'eval', 'generate', 'merge', 'routing', 'inspect']) assert.ok(names.includes(n), `missing "${n}" (have ${names.join(', ')})`);
  assert.equal(new Set(names).size, names.length, 'no duplicate command names');
});

for (const cmd of commands) {
  const name = cmd.name();
  test(`mor ${name} --help: exit 0, usage with the command name and its required options`, async () => {
    const r = await run([name, '--help']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^Usage: mor ${name} `, 'm'));
    assert.ok(cmd.description().length > 0, 'has a description');
    assert.ok(r.out.includes(cmd.description().slice(0, 40)), 'prints the description');
    for (const o of cmd.options) {
      if (o.mandatory) assert.ok(r.out.includes(o.long!), `${name} --help lists required ${o.long}`);
    }
    for (const a of cmd.registeredArguments) if (a.required) assert.ok(r.out.includes(`<${a.name()}>`), `${name} --help shows <${a.name()}>`);
    // `-h` is the same help.
    assert.equal((await run([name, '-h'])).out, r.out);
  });
}

test('mor --help lists every command; mor help <cmd> works', async () => {
  const r = await run(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.out, /^Usage: mor /m);
  for (const c of commands) assert.match(r.out, new RegExp(`^  ${c.name()}\\b`, 'm'));
  const h = await run(['help', 'merge']);
  assert.equal(h.code, 0, h.err);
  assert.match(h.out, /^Usage: mor merge /m);
});

test('an unknown command exits 1 and names it; a missing required option exits 1', async () => {
  const r = await run(['nope']);
  assert.equal(r.code, 1);
  assert.match(r.err, /unknown command 'nope'/);
  const m = await run(['merge', '--model', 'x', '--adapter', 'y']);
  assert.equal(m.code, 1);
  assert.match(m.err, /required option '--out <dir>' not specified/);
});
