/**
 * `mor inspect FILE`: list the tensors of a .safetensors file (name, dtype as stored, shape,
 * element count), the `__metadata__`, and totals (tensors, parameters, bytes). Only the header
 * is read unless `--stats` asks for per-tensor statistics. A bad file is reported by the CLI as
 * one line `error: ...` (exit code 1): the reader throws UserErrors naming the file and tensor.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { openSafetensors, type SafetensorsFile, type TensorInfo } from '../../io/safetensors.ts';
import type { CliIO } from '../main.ts';
import { maxOf } from '../../util/array.ts';

interface InspectOptions {
  json?: boolean;
  filter?: string;
  stats?: boolean;
}

/** Summary statistics of one tensor's values (NaN/Inf excluded from min/max/mean/std). */
export interface TensorStats {
  min: number;
  max: number;
  mean: number;
  std: number;
  nan: number;
  inf: number;
}

const fmtInt = (n: number): string => n.toLocaleString('en-US');

/** Bytes as a short human string (KiB/MiB/GiB). */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

/** Statistics over a tensor's values (BigInt64 values are converted to numbers). */
export function tensorStats(data: ArrayLike<number | bigint>): TensorStats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]);
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v)) inf++;
    else {
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      sumSq += v * v;
      n++;
    }
  }
  const mean = n ? sum / n : NaN;
  const std = n ? Math.sqrt(Math.max(0, sumSq / n - mean * mean)) : NaN;
  return { min: n ? min : NaN, max: n ? max : NaN, mean, std, nan, inf };
}

function table(rows: string[][], rightAligned: Set<number>): string {
  const widths = rows[0].map((_, c) => maxOf(rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const g4 = (x: number): string => (Number.isNaN(x) ? '-' : Number(x.toPrecision(4)).toString());

function render(file: SafetensorsFile, tensors: readonly TensorInfo[], opts: InspectOptions): string {
  const lines: string[] = [];
  const dataBytes = file.fileSize - 8 - file.headerLength;
  lines.push(`${file.path}: ${humanBytes(file.fileSize)} (header ${fmtInt(file.headerLength)} bytes)`);
  const meta = Object.entries(file.metadata);
  lines.push(meta.length ? 'metadata:' : 'metadata: (none)');
  for (const [k, v] of meta) lines.push(`  ${k}: ${v}`);
  const header = ['name', 'dtype', 'shape', 'elements'];
  if (opts.stats) header.push('min', 'max', 'mean', 'std', 'nan', 'inf');
  const rows: string[][] = [header];
  for (const t of tensors) {
    const row = [t.name, t.dtype, `[${t.shape.join(', ')}]`, fmtInt(t.numel)];
    if (opts.stats) {
      const s = tensorStats(file.read(t.name).data);
      row.push(g4(s.min), g4(s.max), g4(s.mean), g4(s.std), String(s.nan), String(s.inf));
    }
    rows.push(row);
  }
  lines.push(table(rows, new Set(opts.stats ? [3, 4, 5, 6, 7, 8, 9] : [3])));
  const params = tensors.reduce((a, t) => a + t.numel, 0);
  const bytes = tensors.reduce((a, t) => a + t.byteLength, 0);
  const byDtype = new Map<string, number>();
  for (const t of tensors) byDtype.set(t.dtype, (byDtype.get(t.dtype) ?? 0) + t.numel);
  const split = [...byDtype].map(([d, n]) => `${d} ${fmtInt(n)}`).join(', ');
  const shown = opts.filter !== undefined ? ` (matching ${JSON.stringify(opts.filter)}, of ${file.tensors.length})` : '';
  lines.push(
    `total: ${fmtInt(tensors.length)} tensors${shown}, ${fmtInt(params)} parameters${split ? ` (${split})` : ''}, ` +
      `${fmtInt(bytes)} bytes (${humanBytes(bytes)})` +
      (opts.filter !== undefined ? ` of ${fmtInt(dataBytes)} bytes of tensor data` : ''),
  );
  return lines.join('\n') + '\n';
}

function renderJson(file: SafetensorsFile, tensors: readonly TensorInfo[], opts: InspectOptions): string {
  const out = {
    file: file.path,
    fileBytes: file.fileSize,
    headerBytes: file.headerLength,
    metadata: file.metadata,
    tensors: tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      elements: t.numel,
      dataOffsets: t.dataOffsets,
      ...(opts.stats ? { stats: tensorStats(file.read(t.name).data) } : {}),
    })),
    totals: {
      tensors: tensors.length,
      parameters: tensors.reduce((a, t) => a + t.numel, 0),
      bytes: tensors.reduce((a, t) => a + t.byteLength, 0),
    },
  };
  // NaN stats (empty tensors) become null in JSON.
  return JSON.stringify(out, null, 2) + '\n';
}

/** The files to inspect: `path` itself, or every *.safetensors in it when it is a directory (sharded checkpoints). */
function filesOf(path: string): string[] {
  let isDir = false;
  try {
    isDir = fs.statSync(path).isDirectory();
  } catch {
    return [path]; // let the reader report the missing file
  }
  if (!isDir) return [path];
  const files = fs
    .readdirSync(path)
    .filter((f) => f.endsWith('.safetensors'))
    .sort()
    .map((f) => join(path, f));
  if (files.length === 0) throw new UserError(`${path}: directory holds no .safetensors files`);
  return files;
}

/** Register `mor inspect`. */
export function registerInspectCommand(program: Command, io: CliIO): void {
  program
    .command('inspect')
    .description(
      'list the tensors of a .safetensors file (name, dtype, shape, elements), its metadata and totals; ' +
        'for a directory, every .safetensors file in it (e.g. the shards of a checkpoint)',
    )
    .argument('<file>', 'a .safetensors file, or a directory of them')
    .option('--filter <text>', 'only tensors whose name contains <text>')
    .option('--stats', 'also read each tensor and print min, max, mean, std and NaN/Inf counts')
    .option('--json', 'print JSON instead of a table (an array of such objects for a directory)')
    .action((path: string, opts: InspectOptions) => {
      const paths = filesOf(path);
      const texts: string[] = [];
      const totals = { tensors: 0, parameters: 0, bytes: 0 };
      for (const p of paths) {
        const file = openSafetensors(p);
        try {
          const tensors = opts.filter !== undefined ? file.tensors.filter((t) => t.name.includes(opts.filter!)) : file.tensors;
          texts.push(opts.json ? renderJson(file, tensors, opts) : render(file, tensors, opts));
          totals.tensors += tensors.length;
          totals.parameters += tensors.reduce((a, t) => a + t.numel, 0);
          totals.bytes += tensors.reduce((a, t) => a + t.byteLength, 0);
        } finally {
          file.close();
        }
      }
      if (paths.length === 1) io.stdout(texts[0]);
      else if (opts.json) io.stdout(`[\n${texts.map((t) => t.trimEnd()).join(',\n')}\n]\n`);
      else {
        io.stdout(texts.join('\n'));
        io.stdout(
          `\nall ${paths.length} files: ${fmtInt(totals.tensors)} tensors, ${fmtInt(totals.parameters)} parameters, ` +
            `${fmtInt(totals.bytes)} bytes (${humanBytes(totals.bytes)})\n`,
        );
      }
    });
}
