/**
 * Pretrain a small LLaMA from scratch: train a byte-level BPE tokenizer on the corpus, pack
 * the corpus into fixed-length sequences, train every weight of a randomly initialised model
 * with AdamW (warmup + cosine, gradient clipping, checkpoints, periodic validation loss), and
 * save the result in the Hugging Face layout with its training log and loss curve.
 *
 * Layout of `runDir` (resumable state, not committed): `tokenizer/`, `checkpoints/`,
 * `training_log.jsonl`. `outDir` receives the finished model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, backendInfo, describeBackend, tf } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { parseHfConfig } from '../models/llama/config.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import { createRandomModel } from '../models/random.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { trainBpe, writeTokenizerFiles } from '../tokenizer/trainBpe.ts';
import { train, type TrainResult } from '../train/trainer.ts';
import type { MetricRecord } from '../train/metrics.ts';
import type { Batch } from '../data/batch.ts';
import { lossCurveSvg } from '../plot/lossCurve.ts';
import { generate } from '../generate/generate.ts';
import type { PretrainConfig } from './config.ts';
import { toArchitectureJson } from './config.ts';
import { numSequences, PackedBatches, sequenceAt, splitDocuments, tokenizeDocuments } from './packing.ts';
import { makeAllTrainable } from './trainable.ts';
import { BASE_MODEL_CHAT_TEMPLATE } from './chatTemplate.ts';

/** Special tokens of the bundled tokenizer (BOS/EOS/PAD/UNK first, then the chat markers). */
export const PRETRAIN_SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<pad>', '<|system|>', '<|user|>', '<|assistant|>'];

/** Options of {@link runPretrain} that are not part of the recipe. */
export interface PretrainRunOptions {
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** Extra abort (Ctrl-C); the time budget aborts on its own. */
  signal?: AbortSignal;
  /** Command line recorded in the README. */
  command?: string;
  /** Machine description recorded in the README. */
  machine?: string;
}

/** What {@link runPretrain} returns. */
export interface PretrainResult {
  train: TrainResult;
  /** Why training stopped: all steps, the time budget, or an external abort. */
  stopReason: 'completed' | 'time budget' | 'interrupted';
  /** Model directory written (only when the model was saved). */
  outDir?: string;
  numParameters: number;
  trainTokens: number;
  validTokens: number;
  /** Characters of the training documents per token of the stream. */
  charsPerToken: number;
  tokensSeen: number;
  /** Mean train loss of the last (up to) 20 updates. */
  finalTrainLoss: number;
  /** Loss on the whole validation stream at the end. */
  finalValidLoss: number;
  wallSec: number;
  samples: { prompt: string; completion: string }[];
}

/** Mean causal-LM loss of `model` over sequences `[0, n)` of `stream`, batches of `batchSize`. */
export function streamLoss(model: LlamaForCausalLM, stream: Int32Array, seqLen: number, n: number, batchSize: number): number {
  let sum = 0;
  let count = 0;
  for (let s = 0; s < n; s += batchSize) {
    const b = Math.min(batchSize, n - s);
    const ids = new Int32Array(b * seqLen);
    for (let r = 0; r < b; r++) ids.set(sequenceAt(stream, seqLen, s + r), r * seqLen);
    const l = tf.tidy(() => {
      const t = tf.tensor2d(ids, [b, seqLen], 'int32'); // [B, T]
      return model.loss(t, t, { reduction: 'sum' });
    });
    sum += l.dataSync()[0];
    l.dispose();
    count += b * (seqLen - 1);
  }
  return sum / count;
}

/** Train (or reload) the run's tokenizer: deterministic from the training text. */
function prepareTokenizer(cfg: PretrainConfig, docs: string[], log: (l: string) => void): Tokenizer {
  const dir = path.join(cfg.runDir, 'tokenizer');
  if (cfg.resume && fs.existsSync(path.join(dir, 'tokenizer.json'))) return Tokenizer.fromDir(dir);
  const t0 = performance.now();
  const trained = trainBpe(docs, {
    vocabSize: cfg.architecture.vocabSize,
    specialTokens: PRETRAIN_SPECIAL_TOKENS,
    bosToken: '<s>',
    eosToken: '</s>',
    padToken: '<pad>',
    unkToken: '<unk>',
    modelMaxLength: cfg.architecture.maxPositionEmbeddings,
    chatTemplate: BASE_MODEL_CHAT_TEMPLATE,
  });
  writeTokenizerFiles(dir, trained);
  log(`tokenizer: byte-level BPE, ${trained.stats.vocabSize} tokens (${trained.stats.merges} merges) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return Tokenizer.fromDir(dir);
}

/** Run the recipe; see the module comment. */
export async function runPretrain(cfg: PretrainConfig, opts: PretrainRunOptions = {}): Promise<PretrainResult> {
  const wall0 = performance.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  await initBackend();
  log(`backend: ${describeBackend(backendInfo())}`);
  for (const f of [cfg.trainFile, cfg.validFile]) if (!fs.existsSync(f)) throw new UserError(`${f}: corpus file not found (run npm run data:build -- --corpus)`);
  fs.mkdirSync(cfg.runDir, { recursive: true });

  const trainDocs = splitDocuments(fs.readFileSync(cfg.trainFile, 'utf8'));
  const validDocs = splitDocuments(fs.readFileSync(cfg.validFile, 'utf8'));
  const tokenizer = prepareTokenizer(cfg, trainDocs, log);
  if (tokenizer.vocabSize > cfg.architecture.vocabSize) {
    throw new UserError(`${cfg.runDir}/tokenizer has ${tokenizer.vocabSize} tokens, more than architecture.vocabSize ${cfg.architecture.vocabSize}`);
  }
  const t1 = performance.now();
  const trainStream = tokenizeDocuments(tokenizer, trainDocs);
  const validStream = tokenizeDocuments(tokenizer, validDocs);
  const nValid = numSequences(validStream, cfg.seqLen);
  if (nValid === 0) throw new UserError(`${cfg.validFile}: fewer than ${cfg.seqLen} tokens`);
  log(
    `corpus: train ${trainDocs.length} docs, ${trainStream.length.toLocaleString('en-US')} tokens; ` +
      `valid ${validDocs.length} docs, ${validStream.length.toLocaleString('en-US')} tokens (tokenized in ${((performance.now() - t1) / 1000).toFixed(1)} s)`,
  );

  const ids = { bos: tokenizer.bosTokenId, eos: tokenizer.eosTokenIds[0], pad: tokenizer.padTokenId };
  const hfConfig = toArchitectureJson(cfg.architecture, ids);
  const model = createRandomModel(parseHfConfig(hfConfig, 'pretrain architecture'), cfg.seed);
  try {
    const params = makeAllTrainable(model);
    const numParameters = model.numParameters();
    log(`model: LLaMA ${cfg.architecture.numHiddenLayers} layers x ${cfg.architecture.hiddenSize}, ${numParameters.toLocaleString('en-US')} parameters, all trainable`);

    const data = new PackedBatches(trainStream, { seqLen: cfg.seqLen, batchSize: cfg.batchSize, seed: cfg.seed });
    const tokensPerStep = cfg.seqLen * cfg.batchSize;
    log(`data: ${data.numSequences} sequences of ${cfg.seqLen}; ${cfg.steps} updates x ${tokensPerStep} tokens = ${(cfg.steps * tokensPerStep / data.numSequences / cfg.seqLen).toFixed(2)} epochs`);

    // Time budget: abort after `minutes` (the trainer saves a checkpoint and returns).
    const budget = new AbortController();
    const timer = cfg.minutes > 0 ? setTimeout(() => budget.abort(), cfg.minutes * 60_000) : undefined;
    const onExternal = (): void => budget.abort();
    opts.signal?.addEventListener('abort', onExternal);
    const evalN = Math.min(cfg.evalSequences, nValid);
    let result: TrainResult;
    try {
      result = await train<Batch>({
        params,
        lossFn: (b) => {
          const t = tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32'); // [B, T]
          try {
            return model.loss(t, t); // labels = inputs: every next token is a target
          } finally {
            t.dispose();
          }
        },
        data,
        steps: cfg.steps,
        schedule: {
          lr: cfg.lr,
          warmupSteps: Math.round(cfg.warmupFraction * cfg.steps),
          kind: 'cosine',
          minLr: cfg.lr * cfg.minLrFraction,
        },
        optimizer: { weightDecay: cfg.weightDecay, beta2: cfg.beta2 },
        maxGradNorm: cfg.maxGradNorm,
        seed: cfg.seed,
        checkpointDir: path.join(cfg.runDir, 'checkpoints'),
        checkpointEvery: cfg.checkpointEvery,
        keepCheckpoints: 2,
        resume: cfg.resume,
        evalEvery: cfg.evalEvery,
        evalFn: () => {
          const loss = streamLoss(model, validStream, cfg.seqLen, evalN, cfg.batchSize);
          return { loss, perplexity: Math.exp(loss) };
        },
        logEvery: cfg.logEvery,
        metricsFile: path.join(cfg.runDir, 'training_log.jsonl'),
        countTokens: (b) => b.batchSize * b.seqLen,
        signal: budget.signal,
        info: { recipe: cfg },
        onLog: (r) => log(formatRecord(r, cfg.steps)),
      });
    } finally {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onExternal);
    }
    const stopReason: PretrainResult['stopReason'] =
      result.stopped === 'completed' ? 'completed' : opts.signal?.aborted ? 'interrupted' : 'time budget';
    const trainRecs = result.log.filter((r) => r.type === 'train');
    const last = trainRecs.slice(-20);
    const finalTrainLoss = last.reduce((s, r) => s + r.loss, 0) / Math.max(1, last.length);
    const base: Omit<PretrainResult, 'finalValidLoss' | 'samples' | 'wallSec'> = {
      train: result,
      stopReason,
      numParameters,
      trainTokens: trainStream.length,
      validTokens: validStream.length,
      charsPerToken: trainDocs.reduce((n, d) => n + d.length, 0) / trainStream.length,
      tokensSeen: result.step * tokensPerStep,
      finalTrainLoss,
    };
    if (stopReason === 'interrupted') {
      log(`interrupted at step ${result.step}; continue with --resume`);
      return { ...base, finalValidLoss: NaN, samples: [], wallSec: (performance.now() - wall0) / 1000 };
    }

    log(`validation loss on all ${nValid} validation sequences ...`);
    const finalValidLoss = streamLoss(model, validStream, cfg.seqLen, nValid, cfg.batchSize);
    log(`final: train loss ${finalTrainLoss.toFixed(4)} (mean of last ${last.length} updates), valid loss ${finalValidLoss.toFixed(4)} (ppl ${Math.exp(finalValidLoss).toFixed(2)})`);
    const samples: PretrainResult['samples'] = [];
    for (const prompt of cfg.samplePrompts) {
      if (cfg.sampleTokens === 0) break;
      const g = await generate(model, tokenizer, prompt, { maxNewTokens: cfg.sampleTokens, temperature: 0 });
      samples.push({ prompt, completion: g.texts[0] });
    }
    await saveModelDir(model, tokenizer, cfg, result.log);
    const wallSec = (performance.now() - wall0) / 1000;
    log(`saved ${cfg.outDir} (${((performance.now() - wall0) / 1000).toFixed(0)} s in this process)`);
    return { ...base, outDir: cfg.outDir, finalValidLoss, samples, wallSec };
  } finally {
    model.dispose();
  }
}

/** Write the HF model directory: weights (BF16), config, tokenizer, generation config, log, plot. */
async function saveModelDir(model: LlamaForCausalLM, tokenizer: Tokenizer, cfg: PretrainConfig, records: MetricRecord[]): Promise<void> {
  const out = cfg.outDir;
  await model.savePretrained(out, { dtype: 'BF16' });
  const tokDir = path.join(cfg.runDir, 'tokenizer');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tokDir, f), path.join(out, f));
  const gen = {
    bos_token_id: tokenizer.bosTokenId,
    eos_token_id: tokenizer.eosTokenIds[0],
    pad_token_id: tokenizer.padTokenId,
    max_length: cfg.architecture.maxPositionEmbeddings,
    do_sample: false,
  };
  writeFileAtomicSync(path.join(out, 'generation_config.json'), JSON.stringify(gen, null, 2) + '\n');
  writeFileAtomicSync(path.join(out, 'training_log.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileAtomicSync(path.join(out, 'loss.svg'), await lossCurveSvg(records, { title: 'Pretraining loss (train: per update; eval: validation)' }));
}

/** One progress line. */
export function formatRecord(r: MetricRecord, total: number): string {
  if (r.type === 'eval') return `step ${r.step}/${total} | valid loss ${r.metrics.loss.toFixed(4)} | ppl ${r.metrics.perplexity?.toFixed(2)}`;
  return (
    `step ${r.step}/${total} | loss ${r.loss.toFixed(4)} | lr ${r.lr.toExponential(2)} | grad norm ${r.gradNorm.toFixed(3)} | ` +
    `${r.tokensPerSec.toFixed(0)} tok/s | ${r.elapsedSec.toFixed(0)} s`
  );
}
