#!/usr/bin/env node
// Runs the TypeScript sources through tsx (a runtime dependency), so the CLI never runs a
// stale build; library users likewise import the sources under `node --import tsx`.
import 'tsx'; // ESM and CJS hooks (tsx/esm/api alone cannot resolve tfjs-core's extensionless imports)
await import('../src/cli/bin.ts');
