#!/usr/bin/env node
/** Process entry of the `mor` binary. */
import { main } from './main.ts';

const code = await main(process.argv.slice(2));
// Flush, then exit: the wasm runtime keeps handles open.
process.exitCode = code;
setImmediate(() => process.exit(code));
