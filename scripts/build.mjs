#!/usr/bin/env node
// `npm run build`: the publishable library in dist/ — one ESM bundle (dist/index.js + source
// map) and the .d.ts tree (dist/**/*.d.ts).
//
// Why a bundler: tfjs-core's gradient and chained-op registrations are ESM files with
// extension-less relative imports that plain Node cannot load, so esbuild inlines those two
// imports (and what they pull in from tfjs-core's ESM tree). Every other package stays an
// external import resolved from node_modules at run time, like the sources under tsx.
// Declarations come from tsc (tsconfig.build.json); their relative `.ts` import specifiers
// are rewritten to `.js`, which every TypeScript module resolution maps to the `.d.ts`.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const TFJS_CORE_DEEP = '@tensorflow/tfjs-core/dist/';

/** Bare imports stay external, except tfjs-core's deep ESM files and their own imports. */
const externalPackages = {
  name: 'external-packages',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith(TFJS_CORE_DEEP)) return undefined;
      if (args.importer.split(path.sep).join('/').includes('/@tensorflow/tfjs-core/')) return undefined;
      return { path: args.path, external: true };
    });
  },
};

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else yield p;
  }
}

rmSync(dist, { recursive: true, force: true });

const t0 = Date.now();
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/index.ts'],
  outfile: 'dist/index.js',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  plugins: [externalPackages],
  logLevel: 'warning',
});

// The map keeps line mappings only: `node --enable-source-maps` then names src/ files and
// lines in stack traces. Embedding the sources (and the tfjs-core TypeScript esbuild finds
// through tfjs' own inline maps) would add ~0.5 MB to the compressed tarball.
const mapFile = path.join(dist, 'index.js.map');
const map = JSON.parse(readFileSync(mapFile, 'utf8'));
delete map.sourcesContent;
writeFileSync(mapFile, JSON.stringify(map));

const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
  { cwd: root, stdio: 'inherit' });
if (tsc.status !== 0) {
  console.error('build: tsc failed');
  process.exit(1);
}
let dts = 0;
for (const file of walk(dist)) {
  if (!file.endsWith('.d.ts')) continue;
  const src = readFileSync(file, 'utf8');
  // `from './x.ts'` and `import('./x.ts')`: relative specifiers only.
  const out = src.replace(/((?:from |import\()\s*['"])(\.{1,2}\/[^'"]*?)\.ts(['"])/g, '$1$2.js$3');
  if (/(?:from |import\()\s*['"]\.{1,2}\/[^'"]*\.ts['"]/.test(out)) throw new Error(`build: ${file} keeps a .ts import`);
  if (out !== src) writeFileSync(file, out);
  dts++;
}
const kb = (f) => `${(statSync(path.join(dist, f)).size / 1024).toFixed(0)} kB`;
console.log(`build: dist/index.js (${kb('index.js')}, map ${kb('index.js.map')}) and ${dts} .d.ts files in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
