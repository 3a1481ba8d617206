#!/usr/bin/env node
// `npm run build`: the publishable library in dist/ — the Node bundle (dist/index.js), the
// browser bundle (dist/browser.js, from src/browser.ts), their source maps and the .d.ts tree.
//
// Node, and why a bundler: tfjs-core's gradient and chained-op registrations are ESM files with
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

// The browser entry (src/browser.ts): one self-contained file (tfjs and the other packages
// included) for pages and workers. `node:` imports resolve to stubs whose functions throw when
// called: the modules that read folders are bundled, but a page never calls those functions.
const nodeStubs = {
  name: 'node-stubs',
  setup(build) {
    const used = nodeNamesUsed(path.join(root, 'src'));
    build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'node-stub' }));
    build.onLoad({ filter: /.*/, namespace: 'node-stub' }, (args) => {
      const names = [...(used.get(args.path) ?? [])].sort();
      const fail = `(name) => () => { throw new Error(\`\${name} is not available in a browser\`); }`;
      return {
        loader: 'js',
        contents: [`const fail = ${fail};`,
          `export default new Proxy({}, { get: (_, k) => (typeof k === 'string' ? fail('${args.path}.' + k) : undefined) });`,
          ...names.map((n) => `export const ${n} = fail('${args.path}.${n}');`)].join('\n'),
      };
    });
  },
};

/** `node:x` module -> names the sources import from it by name or use through `import * as`. */
function nodeNamesUsed(srcDir) {
  const used = new Map();
  const add = (mod, name) => used.set(mod, (used.get(mod) ?? new Set()).add(name));
  for (const file of walk(srcDir)) {
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/import\s+(?:type\s+)?(?:\w+\s*,\s*)?\{([^}]*)\}\s*from\s*'(node:[\w/]+)'/g)) {
      for (const part of m[1].split(',')) {
        const name = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0];
        if (name && !part.trim().startsWith('type ')) add(m[2], name);
      }
    }
    for (const m of text.matchAll(/import\s+\*\s+as\s+(\w+)\s+from\s*'(node:[\w/]+)'/g)) {
      for (const u of text.matchAll(new RegExp(`\\b${m[1]}\\.(\\w+)`, 'g'))) add(m[2], u[1]);
    }
  }
  return used;
}

await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/browser.ts'],
  outfile: 'dist/browser.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  // MOR_* settings read from process.env (e.g. the transpose cache switch) take their defaults.
  define: { 'process.env': '{}' },
  inject: ['scripts/browser-shims.mjs'],
  minify: true,
  plugins: [nodeStubs],
  logLevel: 'warning',
});
const browserMapFile = path.join(dist, 'browser.js.map');
const browserMap = JSON.parse(readFileSync(browserMapFile, 'utf8'));
delete browserMap.sourcesContent;
writeFileSync(browserMapFile, JSON.stringify(browserMap));

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
console.log(`build: dist/index.js (${kb('index.js')}, map ${kb('index.js.map')}), dist/browser.js (${kb('browser.js')}) and ${dts} .d.ts files in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
