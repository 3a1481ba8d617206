#!/usr/bin/env node
// Runs the TypeScript sources through tsx (a runtime dependency), so the CLI never runs a
// stale build. Library users import the compiled `dist/` instead.
import 'tsx'; // ESM and CJS hooks (tsx/esm/api alone cannot resolve tfjs-core's extensionless imports)
await import('../src/cli/bin.ts');
