/**
 * The browser entry of mor-peft (package.json `exports` condition `browser`): the part of the
 * public API in src/index.ts that runs without Node — backend, models, adapters, training,
 * generation, tokenizer, safetensors bytes, the file-access interface and the loaders that read
 * through it (`loadModelFrom`, `Tokenizer.fromSource`, `loadAdapterFrom`, `saveAdapterTo`), and
 * what a page needs to fine-tune on in-memory data and score it (`parseJsonlText`,
 * `DataMixture.fromRecords`, `BatchStream`, `batchLoss`, `measureAccuracy`, `routingByTask`).
 * What reads or writes folders is left out, or fails when called (`Tokenizer.fromDir`).
 */
export { initBackend, backendInfo, tf, setMatmulPath, describeBackend, requireBackend } from './backend/tf.ts';
export type { BackendInfo, InitOptions, MatmulPath, WasmFileName } from './backend/tf.ts';
export { matMul, matMul2d } from './backend/matmul.ts';
export { UserError, isUserError } from './errors.ts';
export { Module } from './nn/module.ts';
export type { Param } from './nn/module.ts';
export { Linear } from './nn/linear.ts';
export type { ForwardContext, RoutingObserver } from './nn/context.ts';
export { inferenceContext } from './nn/context.ts';
export { parseSafetensors, serializeSafetensors, openSafetensorsBytes } from './io/safetensors.ts';
export type { DType, HostTensor, SafetensorsContents } from './io/safetensors.ts';
export { memorySource, urlSource, fileListSource, MemorySink, readRequired, readText, readJson, checkFileName, describeFile } from './io/files.ts';
export type { FileSource, FileSink, NamedBlob } from './io/files.ts';
export { train } from './train/trainer.ts';
export type { TrainOptions, TrainResult, ResumableIterator } from './train/trainer.ts';
export { AdamW } from './train/adamw.ts';
export { lrAt } from './train/schedule.ts';
export { Tokenizer } from './tokenizer/tokenizer.ts';
export { renderRecord, encodePair, IGNORE_INDEX } from './data/render.ts';
export { parseDataRecord } from './data/formats.ts';
export { collate, batchesOf, truncateExample, padIdOf } from './data/batch.ts';
export { parseJsonlText } from './data/jsonlText.ts';
export { DataMixture, BatchStream } from './data/mix.ts';
export type { RecordSource, MixtureOptions, BatchStreamOptions } from './data/mix.ts';
export { parseMultipleChoiceItem } from './data/formats.ts';
export type { DataRecord, MultipleChoiceItem } from './data/formats.ts';
export type { RenderedExample } from './data/render.ts';
export { batchLoss, batchTargets } from './train/batchLoss.ts';
export { measureAccuracy } from './experiment/measure.ts';
export type { AccuracyResult, AccuracyOptions } from './experiment/measure.ts';
export { routingByTask } from './routing/stats.ts';
export type { Batch } from './data/batch.ts';
export { parseAdapterConfig, ADAPTER_KINDS } from './adapters/config.ts';
export type { AdapterKind, AdapterConfig, AdapterConfigInput } from './adapters/config.ts';
export type { MorConfig } from './adapters/mor.ts';
export { PeftModel, getPeftModel } from './adapters/inject.ts';
export { toPeftConfig, fromPeftConfig } from './adapters/peftConfig.ts';
export { loadAdapterFrom, readAdapterConfigFrom, expectedAdapterTensors } from './adapters/load.ts';
export type { LoadAdapterOptions } from './adapters/load.ts';
export { saveAdapterTo, ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME } from './adapters/save.ts';
export type { SaveAdapterOptions } from './adapters/save.ts';
export { countParameters } from './adapters/params.ts';
export { RoutingStats } from './routing/stats.ts';
export { LlamaForCausalLM } from './models/llama/model.ts';
export { parseHfConfig, toHfConfig, makeConfig } from './models/llama/config.ts';
export type { LlamaConfig } from './models/llama/config.ts';
export { createRandomModel } from './models/random.ts';
export { loadModelFrom, loadConfigFrom } from './models/loadSource.ts';
export { buildModel } from './models/registry.ts';
export { generate } from './generate/generate.ts';
export type { GenerateOptions, GenerateResult } from './generate/generate.ts';
