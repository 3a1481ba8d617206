/**
 * Post-hoc checks of a saved base model: reload it from its directory (bf16 weights), measure
 * the validation loss and decode greedy samples, as a user of the model would see it.
 */
import * as fs from 'node:fs';
import { initBackend } from '../backend/tf.ts';
import { generate } from '../generate/generate.ts';
import { loadModel } from '../models/load.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import type { PretrainConfig } from './config.ts';
import { numSequences, splitDocuments, tokenizeDocuments } from './packing.ts';
import { streamLoss } from './run.ts';

/** Result of {@link checkSavedModel}. */
export interface SavedModelCheck {
  /** Mean loss over every validation sequence. */
  validLoss: number;
  samples: { prompt: string; completion: string }[];
}

/** Reload `cfg.outDir`, measure the validation loss and generate greedily from `cfg.samplePrompts`. */
export async function checkSavedModel(cfg: PretrainConfig): Promise<SavedModelCheck> {
  await initBackend();
  const tokenizer = Tokenizer.fromDir(cfg.outDir);
  const model = await loadModel(cfg.outDir);
  try {
    const stream = tokenizeDocuments(tokenizer, splitDocuments(fs.readFileSync(cfg.validFile, 'utf8')));
    const validLoss = streamLoss(model, stream, cfg.seqLen, numSequences(stream, cfg.seqLen), cfg.batchSize);
    const samples: SavedModelCheck['samples'] = [];
    for (const prompt of cfg.samplePrompts) {
      const g = await generate(model, tokenizer, prompt, { maxNewTokens: cfg.sampleTokens, temperature: 0 });
      samples.push({ prompt, completion: g.texts[0] });
    }
    return { validLoss, samples };
  } finally {
    model.dispose();
  }
}
