/**
 * The model card (`README.md`) of a pretrained base model, from the run's summary.
 */
import type { PretrainConfig } from './config.ts';
import type { PretrainResult } from './run.ts';

/**
 * What the model card reports; saved as `summary.json` next to the model. The run's own
 * numbers are those of {@link PretrainResult}; the rest is recorded by the script.
 */
export interface PretrainSummary extends Omit<PretrainResult, 'train' | 'outDir' | 'stopReason'> {
  command: string;
  machine: string;
  config: PretrainConfig;
  /** Why training stopped (a resumed run may record an older reason). */
  stopReason: string;
  steps: number;
  /** Validation loss of the saved (bf16) weights, when measured after saving. */
  savedValidLoss?: number;
  /** Mean training throughput, tokens per second. */
  tokensPerSec: number;
  /** Validation loss at each evaluation. */
  validCurve: { step: number; loss: number }[];
  date: string;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

/** Markdown model card. */
export function renderModelCard(s: PretrainSummary): string {
  const c = s.config;
  const a = c.architecture;
  const epochs = s.tokensSeen / s.trainTokens;
  const curve = s.validCurve.map((p) => `| ${p.step} | ${p.loss.toFixed(4)} | ${Math.exp(p.loss).toFixed(2)} |`).join('\n');
  const samples = s.samples
    .map((x) => `- \`${JSON.stringify(x.prompt)}\` → \`${JSON.stringify(x.completion)}\``)
    .join('\n');
  return `# mor-peft bundled base model (\`models/base\`)

A ${(s.numParameters / 1e6).toFixed(2)} M-parameter LLaMA-architecture causal language model, pretrained from
scratch by this project on the English corpus in \`data/corpus/\` (WordNet glosses and relations,
CMUdict facts, Moby Dick, State of the Union speeches, arithmetic and spelling lines; built by
\`npm run data:build -- --corpus\`, held-out test items of the task suite excluded), with a
byte-level BPE tokenizer trained on the same text. It is the default base model of the
fine-tuning examples: small enough to train adapters on a 2-core CPU in minutes. It is a toy:
it knows the surface form of its corpus, not the world.

Hugging Face layout: \`config.json\`, \`model.safetensors\` (bf16), \`tokenizer.json\`,
\`tokenizer_config.json\` (with a chat template: \`<|user|>\\n {content}</s>\\n<|assistant|>\\n {content}</s>\\n\`, one space before
each message so that answers tokenize as words do in running text, see src/pretrain/chatTemplate.ts),
\`generation_config.json\`;
\`training_log.jsonl\` (one record per logged update / evaluation) and \`loss.svg\`.

## Use

\`\`\`
npx mor generate --model models/base --prompt "The whale" --max-new-tokens 32   # greedy
npx mor inspect models/base                                                      # tensors
\`\`\`

or from TypeScript: \`loadModel('models/base')\`, \`Tokenizer.fromDir('models/base')\`,
\`generate(model, tokenizer, prompt)\`. Fine-tune it with an adapter (\`mor train\`).

## Reproduce

\`\`\`
${s.command}
npm run pretrain:base -- --check     # reload the saved bf16 model: validation loss, greedy samples, this README
\`\`\`

Deterministic given the seed, except where the time budget (\`--minutes\`) cuts the run
(then the schedule was not finished; see "stopped" below). A killed run continues with
\`--resume\` (checkpoints every ${c.checkpointEvery} updates in \`${c.runDir}/checkpoints\`).

## Architecture

| field | value |
|---|---|
| parameters | ${fmt(s.numParameters)} (all trained; embeddings tied with the output head) |
| vocabulary | ${fmt(a.vocabSize)} (byte-level BPE; \`<unk>\` 0, \`<s>\` 1, \`</s>\` 2, \`<pad>\` 3, chat markers) |
| hidden size / intermediate | ${a.hiddenSize} / ${a.intermediateSize} (SiLU-gated MLP) |
| layers / heads / KV heads | ${a.numHiddenLayers} / ${a.numAttentionHeads} / ${a.numKeyValueHeads} (GQA, head dim ${a.hiddenSize / a.numAttentionHeads}) |
| RoPE theta / max positions | ${a.ropeTheta} / ${a.maxPositionEmbeddings} |
| RMSNorm eps | ${a.rmsNormEps} |

## Training

| hyper-parameter | value |
|---|---|
| objective | next-token cross-entropy on packed sequences (\`<s> document </s>\` concatenated, cut into ${c.seqLen}-token pieces, shuffled per epoch) |
| sequence length x batch | ${c.seqLen} x ${c.batchSize} = ${fmt(c.seqLen * c.batchSize)} tokens per update |
| updates | ${fmt(s.steps)} of ${fmt(c.steps)} planned (stopped: ${s.stopReason}) |
| optimizer | AdamW, lr ${c.lr}, betas (0.9, ${c.beta2}), weight decay ${c.weightDecay} (not on norms) |
| schedule | linear warmup ${Math.round(c.warmupFraction * c.steps)} updates, cosine to ${c.lr * c.minLrFraction} |
| gradient clipping | global norm ${c.maxGradNorm} |
| seed | ${c.seed} |
| tokens seen | ${fmt(s.tokensSeen)} (${epochs.toFixed(2)} epochs of the ${fmt(s.trainTokens)}-token training stream) |
| validation stream | ${fmt(s.validTokens)} tokens (\`data/corpus/valid.txt\`) |
| wall time | ${(s.wallSec / 60).toFixed(1)} min, ${s.tokensPerSec.toFixed(0)} tokens/s mean |
| machine | ${s.machine} |

## Results

Final train loss (mean of the last 20 updates): **${s.finalTrainLoss.toFixed(4)}** (perplexity ${Math.exp(s.finalTrainLoss).toFixed(2)}).
Final validation loss (all validation sequences): **${s.finalValidLoss.toFixed(4)}** (perplexity ${Math.exp(s.finalValidLoss).toFixed(2)}).
${s.savedValidLoss !== undefined ? `Validation loss of the saved bf16 weights (reloaded with \`loadModel\`): ${s.savedValidLoss.toFixed(4)} (perplexity ${Math.exp(s.savedValidLoss).toFixed(2)}).\n` : ''}Losses are in nats per token of this tokenizer (about ${s.charsPerToken.toFixed(2)} characters of training text per token).

![loss curve](loss.svg)

Validation loss during training (first ${c.evalSequences} validation sequences):

| step | valid loss | perplexity |
|---|---|---|
${curve}

## Greedy samples

Greedy decoding, ${c.sampleTokens} new tokens, \`<s>\` prepended. A model this small and this briefly
trained loops under greedy decoding; the samples show which surface formats of the corpus it
picked up (the \`word: gloss.\`, \`X has N syllables.\`, \`NAME is a female name.\` lines, prose),
not knowledge: a fact is right only by chance.

${samples}

Trained ${s.date}.
`;
}
