#!/usr/bin/env node
// The `mor` command. The published package ships the compiled library (dist/, plain Node, no
// src/); a checkout has src/ and runs the TypeScript sources through tsx (a devDependency),
// so development never runs a stale build.
import { existsSync } from 'node:fs';

if (existsSync(new URL('../src/cli/bin.ts', import.meta.url))) {
  await import('tsx'); // ESM and CJS hooks (tsx/esm/api alone cannot resolve tfjs-core's extensionless imports)
  await import('../src/cli/bin.ts');
} else {
  const { main } = await import('../dist/index.js');
  const code = await main(process.argv.slice(2));
  // Flush, then exit: the wasm runtime keeps handles open (as src/cli/bin.ts does).
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}
