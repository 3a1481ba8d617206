/**
 * A Vite plugin that serves (dev, preview) and emits (build) the files the page reads at run
 * time from the repository itself: the bundled base model under `base/` and the page's suite
 * tasks under `suite/<task>/`. Only these files: a request for anything else there is a 404,
 * which the library's URL loader reads as "absent" (e.g. optional tokenizer side files).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Connect, Plugin } from 'vite';

/** URL path under the page -> file in the repository. */
export function pageFiles(repo: string, tasks: readonly string[]): Map<string, string> {
  const files = new Map<string, string>();
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    files.set(`base/${f}`, path.join(repo, 'models', 'base', f));
  }
  for (const t of tasks) {
    for (const f of ['train.jsonl', 'test.mc.jsonl']) files.set(`suite/${t}/${f}`, path.join(repo, 'data', 'suite', t, f));
  }
  for (const file of files.values()) {
    if (!fs.existsSync(file)) throw new Error(`web: ${path.relative(repo, file)} is missing (the page serves it)`);
  }
  return files;
}

/** Serve `files` in dev and preview, and emit them into the build. */
export function pageFilesPlugin(files: Map<string, string>): Plugin {
  const serve: Connect.NextHandleFunction = (req, res, next) => {
    const url = decodeURIComponent((req.url ?? '').split('?')[0]).replace(/^\/+/, '');
    if (!url.startsWith('base/') && !url.startsWith('suite/')) return next();
    const file = files.get(url);
    if (!file) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('Content-Type', url.endsWith('.json') ? 'application/json' : 'application/octet-stream');
    res.end(fs.readFileSync(file));
  };
  return {
    name: 'mor-page-files',
    configureServer: (server) => { server.middlewares.use(serve); },
    configurePreviewServer: (server) => { server.middlewares.use(serve); },
    generateBundle() {
      for (const [fileName, file] of files) this.emitFile({ type: 'asset', fileName, source: fs.readFileSync(file) });
    },
  };
}
