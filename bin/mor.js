#!/usr/bin/env node
// Runs the TypeScript sources through tsx (a runtime dependency), so the CLI never runs a
// stale build. Library users import the compiled `dist/` instead.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/bin.ts');
