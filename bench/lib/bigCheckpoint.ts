/**
 * Random bf16 sharded checkpoints of real model shapes for `npm run bench:big`, written once
 * into a cache folder (config.json, model-0000i-of-0000n.safetensors, the index), shard by
 * shard, so memory stays near one shard. Values: N(0, 0.02) draws from a pool, copied at
 * rotating offsets (the benchmark measures speed and memory, not what the model says); norms 1,
 * biases 0.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/io/atomic.ts';
import { writeSafetensors, type HostTensor } from '../../src/io/safetensors.ts';
import { toHfConfig, type LlamaConfig } from '../../src/models/llama/config.ts';
import { Rng } from '../../src/util/rng.ts';
import { pushAll } from '../../src/util/array.ts';

/** Tensor names and shapes of a LLaMA checkpoint, in HF order. */
export function checkpointShapes(c: LlamaConfig): [string, number[]][] {
  const { hiddenSize: h, intermediateSize: f, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: d } = c;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, h]]];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    const linear = (name: string, out: number, inF: number, bias: boolean): [string, number[]][] =>
      bias ? [[`${p}.${name}.weight`, [out, inF]], [`${p}.${name}.bias`, [out]]] : [[`${p}.${name}.weight`, [out, inF]]];
    pushAll(out, [
      [`${p}.input_layernorm.weight`, [h]],
      ...linear('self_attn.q_proj', nh * d, h, c.qkvBias),
      ...linear('self_attn.k_proj', nkv * d, h, c.qkvBias),
      ...linear('self_attn.v_proj', nkv * d, h, c.qkvBias),
      ...linear('self_attn.o_proj', h, nh * d, c.oBias),
      [`${p}.post_attention_layernorm.weight`, [h]],
      ...linear('mlp.gate_proj', f, h, c.mlpBias),
      ...linear('mlp.up_proj', f, h, c.mlpBias),
      ...linear('mlp.down_proj', h, f, c.mlpBias),
    ]);
  }
  out.push(['model.norm.weight', [h]]);
  if (!c.tieWordEmbeddings) out.push(['lm_head.weight', [c.vocabSize, h]]);
  return out;
}

/**
 * Write a random bf16 checkpoint of `config` to `dir` unless `dir/model.safetensors.index.json`
 * is already there. Returns true when it wrote one.
 */
export async function ensureBigCheckpoint(dir: string, config: LlamaConfig, shardBytes = 2 ** 31, log = (s: string) => process.stderr.write(s + '\n')): Promise<boolean> {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(index)) return false;
  fs.mkdirSync(dir, { recursive: true });
  const rng = new Rng(1);
  const pool = new Float32Array(1 << 20);
  for (let i = 0; i < pool.length; i++) pool[i] = 0.02 * Math.sqrt(-2 * Math.log((rng.nextU32() + 1) / 4294967297)) * Math.cos(2 * Math.PI * rng.next());
  let rotate = 0;
  const fill = (n: number, norm: boolean): Float32Array => {
    const a = new Float32Array(n);
    if (norm) return a.fill(1);
    for (let at = 0; at < n; at += pool.length) {
      const start = (rotate = (rotate + 7919) % pool.length);
      const len = Math.min(pool.length - start, n - at);
      a.set(pool.subarray(start, start + len), at);
      if (len < n - at) a.set(pool.subarray(0, Math.min(start, n - at - len)), at + len);
    }
    return a;
  };
  // Group tensors into shards of about shardBytes (bf16).
  const shapes = checkpointShapes(config);
  const shards: [string, number[]][][] = [[]];
  let bytes = 0;
  for (const e of shapes) {
    const b = 2 * e[1].reduce((x, y) => x * y, 1);
    if (bytes > 0 && bytes + b > shardBytes) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(e);
    bytes += b;
  }
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards.length; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const tensors = new Map<string, HostTensor>();
    for (const [name, shape] of shards[s]) {
      const n = shape.reduce((x, y) => x * y, 1);
      const data = name.endsWith('.bias') ? new Float32Array(n) : fill(n, shape.length === 1);
      tensors.set(name, { dtype: 'F32', shape, data });
      weightMap[name] = file;
      total += 2 * n;
    }
    await writeSafetensors(path.join(dir, file), tensors, { metadata: { format: 'pt' }, floatDtype: 'BF16' });
    log(`  wrote ${file} (${shards[s].length} tensors)`);
  }
  await writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify({ ...toHfConfig(config), torch_dtype: 'bfloat16' }, null, 2) + '\n');
  await writeFileAtomic(index, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  return true;
}
