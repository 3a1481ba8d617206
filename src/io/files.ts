/**
 * File access behind one small interface, so that loaders can read a model, a tokenizer or an
 * adapter from a directory (Node, src/io/nodeFiles.ts), from URLs (`fetch`), from browser
 * `File`s or from bytes in memory, and write an adapter to memory (then a `Blob`) instead of a
 * folder. Names are `/`-separated paths relative to the source, as in a Hugging Face repository
 * (`config.json`, `model-00001-of-00002.safetensors`). No Node imports here: the module runs
 * in a browser as it is.
 */
import { UserError } from '../errors.ts';

/** Where files are read from. */
export interface FileSource {
  /** Names the source in error messages: a directory, a base URL, `memory`, `files`. */
  readonly label: string;
  /** The bytes of `name`, or `undefined` when the source has no such file. */
  read(name: string): Promise<Uint8Array | undefined>;
}

/** Where files are written to. */
export interface FileSink {
  /** Names the sink in error messages. */
  readonly label: string;
  /** Write `data` (text is written as UTF-8) as `name`, replacing any previous file of that name. */
  write(name: string, data: Uint8Array | string): Promise<void>;
}

/** The part of a browser `File` a {@link fileListSource} uses (Node 20 has `File` too). */
export interface NamedBlob {
  readonly name: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * Check that `name` stays inside its source: relative, `/`-separated, no `.`/`..` or empty
 * segments (a URL or directory source must never reach outside its base).
 */
export function checkFileName(name: string): string {
  const bad = name === '' || name.startsWith('/') || name.includes('\\')
    || name.split('/').some((s) => s === '' || s === '.' || s === '..');
  if (bad) throw new UserError(`invalid file name "${name}": expected a relative path such as "config.json"`);
  return name;
}

/** `label/name` for messages. */
export function describeFile(src: { label: string }, name: string): string {
  return `${src.label.replace(/\/+$/, '')}/${name}`;
}

/** The bytes of `name`; a {@link UserError} naming the file (and `hint`, when given) if absent. */
export async function readRequired(src: FileSource, name: string, hint = ''): Promise<Uint8Array> {
  const bytes = await src.read(name);
  if (bytes === undefined) throw new UserError(`${describeFile(src, name)} not found${hint ? ` (${hint})` : ''}`);
  return bytes;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `name` decoded as strict UTF-8 (invalid bytes are a {@link UserError}), or `undefined` if absent. */
export async function readText(src: FileSource, name: string): Promise<string | undefined> {
  const bytes = await src.read(name);
  if (bytes === undefined) return undefined;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new UserError(`${describeFile(src, name)}: not valid UTF-8`);
  }
}

/** `name` parsed as JSON, or `undefined` if absent; a parse error is a {@link UserError} naming the file. */
export async function readJson(src: FileSource, name: string): Promise<unknown> {
  const text = await readText(src, name);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${describeFile(src, name)}: invalid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

const encoder = new TextEncoder();
const bytesOf = (data: Uint8Array | string): Uint8Array => (typeof data === 'string' ? encoder.encode(data) : data);

/** Files held in memory, by name (text values are UTF-8 encoded once). */
export function memorySource(files: ReadonlyMap<string, Uint8Array | string> | Readonly<Record<string, Uint8Array | string>>, label = 'memory'): FileSource {
  const entries = files instanceof Map ? [...files] : Object.entries(files);
  const byName = new Map(entries.map(([name, data]) => [checkFileName(name), bytesOf(data)]));
  return {
    label,
    read: async (name) => byName.get(checkFileName(name)),
  };
}

/**
 * Files under a base URL, fetched on demand (`fetch` by default; pass another for tests or
 * custom headers). 404 means absent; any other failure is a {@link UserError} with the status.
 */
export function urlSource(base: string | URL, opts: { fetch?: typeof fetch } = {}): FileSource {
  const baseUrl = new URL(String(base).endsWith('/') ? String(base) : `${String(base)}/`);
  const doFetch = opts.fetch ?? globalThis.fetch;
  return {
    label: baseUrl.href,
    async read(name) {
      const url = new URL(checkFileName(name), baseUrl);
      let res: Response;
      try {
        res = await doFetch(url);
      } catch (e) {
        throw new UserError(`${url.href}: fetch failed (${e instanceof Error ? e.message : String(e)})`);
      }
      if (res.status === 404) return undefined;
      if (!res.ok) throw new UserError(`${url.href}: HTTP ${res.status} ${res.statusText}`.trim());
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/**
 * Files picked by the user (`<input type="file" multiple>`, drag and drop), matched by their
 * base name: a picked folder's `config.json` is found as `config.json`. Two files with the same
 * base name are an error (the source could not tell them apart).
 */
export function fileListSource(files: Iterable<NamedBlob> | ArrayLike<NamedBlob>, label = 'files'): FileSource {
  const byName = new Map<string, NamedBlob>();
  for (const f of Array.from(files as ArrayLike<NamedBlob>)) {
    const base = f.name.split('/').pop() ?? f.name;
    if (byName.has(base)) throw new UserError(`${label}: two files named "${base}"`);
    byName.set(base, f);
  }
  return {
    label,
    async read(name) {
      const f = byName.get(checkFileName(name));
      return f ? new Uint8Array(await f.arrayBuffer()) : undefined;
    },
  };
}

/** Collects written files in memory; {@link MemorySink.blob} hands one to a download link. */
export class MemorySink implements FileSink {
  readonly files = new Map<string, Uint8Array>();
  constructor(readonly label = 'memory') {}

  async write(name: string, data: Uint8Array | string): Promise<void> {
    this.files.set(checkFileName(name), bytesOf(data));
  }

  /** The file `name` as a `Blob` (a {@link UserError} when it was not written). */
  blob(name: string, type = name.endsWith('.json') ? 'application/json' : 'application/octet-stream'): Blob {
    const bytes = this.files.get(checkFileName(name));
    if (!bytes) throw new UserError(`${describeFile(this, name)} was not written`);
    // Written bytes live in ordinary ArrayBuffers (TextEncoder output or the caller's array).
    return new Blob([bytes as Uint8Array<ArrayBuffer>], { type });
  }

  /** The written files as a {@link FileSource} (e.g. to load an adapter just saved). */
  asSource(): FileSource {
    return memorySource(this.files, this.label);
  }
}
