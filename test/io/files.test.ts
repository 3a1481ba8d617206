/** The file-access interface: memory, directory, URL and File sources; memory and directory sinks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import {
  checkFileName, fileListSource, memorySource, MemorySink, readJson, readRequired, readText, urlSource, type FileSource,
} from '../../src/io/files.ts';
import { dirSink, dirSource } from '../../src/io/nodeFiles.ts';
import { isUserError } from '../../src/errors.ts';

const userError = (re: RegExp) => (e: unknown) => isUserError(e) && re.test(e.message) && !e.message.includes('\n');
const bytes = (s: string) => new TextEncoder().encode(s);

/** The contract every source keeps, given one holding config.json, sub/w.bin and bad.txt. */
async function checkSource(src: FileSource): Promise<void> {
  assert.deepEqual(await readJson(src, 'config.json'), { hidden_size: 8 });
  assert.deepEqual(await src.read('sub/w.bin'), new Uint8Array([1, 2, 3]));
  assert.equal(await src.read('missing.json'), undefined);
  assert.equal(await readText(src, 'missing.json'), undefined);
  await assert.rejects(readRequired(src, 'missing.json', 'a model needs it'), userError(/\/missing\.json not found \(a model needs it\)$/));
  await assert.rejects(readText(src, 'bad.txt'), userError(/\/bad\.txt: not valid UTF-8$/));
  await assert.rejects(src.read('../outside.json'), userError(/^invalid file name "\.\.\/outside\.json"/));
}

const FILES: Record<string, Uint8Array | string> = {
  'config.json': '{"hidden_size": 8}',
  'sub/w.bin': new Uint8Array([1, 2, 3]),
  'bad.txt': new Uint8Array([0x61, 0xff, 0x62]),
};

function writeTree(dir: string): void {
  for (const [name, data] of Object.entries(FILES)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), data);
  }
}

test('checkFileName accepts relative paths and refuses anything that could leave the source', () => {
  assert.equal(checkFileName('model-00001-of-00002.safetensors'), 'model-00001-of-00002.safetensors');
  assert.equal(checkFileName('sub/w.bin'), 'sub/w.bin');
  for (const bad of ['', '/etc/passwd', '../x', 'a/../b', './x', 'a//b', 'a\\b', 'a/']) {
    assert.throws(() => checkFileName(bad), userError(/^invalid file name/), bad);
  }
});

test('memorySource (record or map) keeps the source contract', async () => {
  await checkSource(memorySource(FILES));
  await checkSource(memorySource(new Map(Object.entries(FILES)), 'picked'));
});

test('dirSource keeps the source contract; a directory read as a file is a UserError', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-files-'));
  writeTree(dir);
  const src = dirSource(dir);
  await checkSource(src);
  await assert.rejects(src.read('sub'), userError(/sub: a directory, not a file$/));
});

test('urlSource keeps the source contract over HTTP; 404 is absent, other statuses are UserErrors', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-files-'));
  writeTree(dir);
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/repo/broken.json') return void res.writeHead(500, 'Internal Server Error').end();
    const file = path.join(dir, decodeURIComponent((req.url ?? '').replace(/^\/repo\//, '')));
    if (!req.url?.startsWith('/repo/') || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return void res.writeHead(404).end();
    res.writeHead(200).end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/repo`;
    const src = urlSource(base);
    assert.equal(src.label, `${base}/`);
    await checkSource(src);
    await assert.rejects(src.read('broken.json'), userError(/\/repo\/broken\.json: HTTP 500 Internal Server Error$/));
    assert.ok(!seen.some((u) => u.includes('..') || u.includes('outside')), 'an invalid name never reaches the server');
  } finally {
    server.close();
  }
  const down = urlSource('http://127.0.0.1:9/', { fetch: async () => { throw new TypeError('connection refused'); } });
  await assert.rejects(down.read('config.json'), userError(/^http:\/\/127\.0\.0\.1:9\/config\.json: fetch failed \(connection refused\)$/));
});

test('fileListSource matches picked files by base name and refuses two of the same name', async () => {
  // A browser gives a picked folder's files their base names: sub/w.bin arrives as w.bin.
  const src = fileListSource([
    new File(['{"hidden_size": 8}'], 'config.json'), new File([new Uint8Array([0x61, 0xff, 0x62])], 'bad.txt'), new File([new Uint8Array([1, 2, 3])], 'w.bin'),
  ]);
  assert.deepEqual(await readJson(src, 'config.json'), { hidden_size: 8 });
  assert.deepEqual(await src.read('w.bin'), new Uint8Array([1, 2, 3]));
  assert.equal(await src.read('missing.json'), undefined);
  await assert.rejects(readText(src, 'bad.txt'), userError(/^files\/bad\.txt: not valid UTF-8$/));
  assert.throws(() => fileListSource([new File(['a'], 'config.json'), new File(['b'], 'config.json')]), userError(/two files named "config\.json"/));
});

test('MemorySink collects files, hands them out as Blobs and as a source', async () => {
  const sink = new MemorySink();
  await sink.write('adapter_config.json', '{"r": 8}');
  await sink.write('adapter_model.safetensors', new Uint8Array([9, 8, 7]));
  const blob = sink.blob('adapter_config.json');
  assert.equal(blob.type, 'application/json');
  assert.equal(await blob.text(), '{"r": 8}');
  assert.deepEqual(new Uint8Array(await sink.blob('adapter_model.safetensors').arrayBuffer()), new Uint8Array([9, 8, 7]));
  assert.equal(sink.blob('adapter_model.safetensors').type, 'application/octet-stream');
  assert.throws(() => sink.blob('missing.json'), userError(/^memory\/missing\.json was not written$/));
  assert.deepEqual(await readJson(sink.asSource(), 'adapter_config.json'), { r: 8 });
  await assert.rejects(sink.write('../x', 'y'), userError(/^invalid file name/));
});

test('dirSink writes files (creating folders) that dirSource reads back', async () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mor-files-')), 'out');
  const sink = dirSink(dir);
  await sink.write('adapter_config.json', '{"r": 8}');
  await sink.write('nested/w.bin', new Uint8Array([4, 5]));
  assert.equal(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'), '{"r": 8}');
  assert.deepEqual(await dirSource(dir).read('nested/w.bin'), new Uint8Array([4, 5]));
});
