/**
 * The page's build (`npm run web:build` -> web/dist) and server (`npm run web:serve`, `vite
 * preview`). The page imports `mor-peft` as a user would: the library's browser build
 * (dist/browser.js, from `npm run build`). Both servers send the COOP/COEP headers that make
 * the page cross-origin isolated, which lets tfjs load its threaded wasm build.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { pageFiles, pageFilesPlugin } from './pageFiles.ts';
import { PAGE_TASKS } from './src/settings.ts';

const web = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(web, '..');
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: web,
  base: './',
  // No index.html fallback: a missing file must be a 404 (the URL loader's "absent").
  appType: 'mpa',
  publicDir: false,
  resolve: { alias: { 'mor-peft': path.join(repo, 'dist', 'browser.js') } },
  plugins: [pageFilesPlugin(pageFiles(repo, PAGE_TASKS))],
  worker: { format: 'es' },
  build: { outDir: path.join(web, 'dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
  server: { headers: isolation, port: 5173 },
  preview: { headers: isolation, port: 4173 },
});
