import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWithWasmThreads } from '../../src/backend/wasmThreads.ts';
import { UserError } from '../../src/errors.ts';

/** Run `f` with a stand-in `navigator` of `cores` logical cores (Node 20 has none). */
async function withNavigator(cores: number, f: (nav: { hardwareConcurrency: number }) => Promise<void>): Promise<void> {
  const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const proto = { get hardwareConcurrency() { return cores; } };
  const nav = Object.create(proto) as { hardwareConcurrency: number };
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  try {
    await f(nav);
  } finally {
    if (had) Object.defineProperty(globalThis, 'navigator', had);
    else delete (globalThis as { navigator?: unknown }).navigator;
  }
}

test('wasmThreads above half the logical cores: hardwareConcurrency is shadowed during start-up only', async () => {
  await withNavigator(2, async (nav) => {
    const seen = await startWithWasmThreads(2, async () => nav.hardwareConcurrency);
    assert.equal(seen, 4); // tfjs takes half of it: 2 threads
    assert.equal(nav.hardwareConcurrency, 2);
    assert.equal(Object.getOwnPropertyDescriptor(nav, 'hardwareConcurrency'), undefined);
    await assert.rejects(startWithWasmThreads(2, async () => { throw new Error('start failed'); }), /start failed/);
    assert.equal(nav.hardwareConcurrency, 2);
  });
});

test('wasmThreads within the cap, or undefined: start-up sees the real core count', async () => {
  await withNavigator(8, async (nav) => {
    assert.equal(await startWithWasmThreads(4, async () => nav.hardwareConcurrency), 8);
    assert.equal(await startWithWasmThreads(undefined, async () => nav.hardwareConcurrency), 8);
  });
});

test('wasmThreads outside 1..8 is a UserError naming the option', async () => {
  for (const bad of [0, 9, 1.5, Number.NaN]) {
    await assert.rejects(startWithWasmThreads(bad, async () => 0), (e: unknown) => e instanceof UserError && /wasmThreads: .*integer from 1 to 8/.test(e.message));
  }
});
