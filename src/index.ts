/** mor-peft public API: explicit named exports only. */
export { initBackend, backendInfo, tf, setMatmulPath, describeBackend, requireBackend } from './backend/tf.ts';
export type { BackendInfo, InitOptions, MatmulPath, WasmFileName } from './backend/tf.ts';
export { matMul, matMul2d } from './backend/matmul.ts';
export { UserError, isUserError, Interrupted } from './errors.ts';
export { Module } from './nn/module.ts';
export type { Param } from './nn/module.ts';
export { Linear } from './nn/linear.ts';
export type { LinearLike } from './nn/linear.ts';
export type { ForwardContext, RoutingObserver } from './nn/context.ts';
export { inferenceContext } from './nn/context.ts';
export { main } from './cli/main.ts';
export {
  readSafetensors,
  openSafetensors,
  openSafetensorsBytes,
  writeSafetensors,
  serializeSafetensors,
  parseSafetensors,
  SafetensorsFile,
  SUPPORTED_DTYPES,
} from './io/safetensors.ts';
export type {
  DType,
  StoredDType,
  HostTensor,
  HostData,
  TensorInfo,
  SafetensorsContents,
  WriteSafetensorsOptions,
} from './io/safetensors.ts';
export { writeFileAtomic, writeFileAtomicSync } from './io/atomic.ts';
export { countNonFinite, countNonFiniteBits, assertFinite } from './io/finite.ts';
export { checkOutputDir, realPath } from './io/outputPath.ts';
export { readTextFileStrict } from './io/text.ts';
export { memorySource, urlSource, fileListSource, MemorySink, readRequired, readText, readJson, checkFileName, describeFile } from './io/files.ts';
export type { FileSource, FileSink, NamedBlob } from './io/files.ts';
export { dirSource, dirSink } from './io/nodeFiles.ts';
export { train, defaultCountTokens, divergenceAdvice, WEIGHT_LIMIT } from './train/trainer.ts';
export { PositionLimit } from './models/positions.ts';
export type { TrainOptions, TrainResult, ResumableIterator } from './train/trainer.ts';
export { AdamW, defaultNoDecay } from './train/adamw.ts';
export type { AdamWOptions, AdamWState, MomentArray } from './train/adamw.ts';
export { lrAt } from './train/schedule.ts';
export type { ScheduleConfig, ScheduleKind } from './train/schedule.ts';
export { clipByGlobalNorm, globalNorm } from './train/clip.ts';
export type { ClipResult } from './train/clip.ts';
export { saveCheckpoint, loadCheckpoint, loadLatestCheckpoint, findLatestCheckpoint, listCheckpoints, checkpointName } from './train/checkpoint.ts';
export type { CheckpointData, SkippedCheckpoint } from './train/checkpoint.ts';
export { planRunFolder, diffConfigs, RESUME_SAFE_KEYS, RUN_OUTPUTS } from './train/runFolder.ts';
export type { RunFolderPlan, ConfigChange } from './train/runFolder.ts';
export { MetricsWriter, readMetrics } from './train/metrics.ts';
export type { MetricRecord, TrainRecord, EvalRecord } from './train/metrics.ts';
export { ProgressReporter, formatDuration, formatLr, formatStepLine, formatEvalLine } from './train/progress.ts';
export type { ProgressOptions } from './train/progress.ts';
export { TrainConfigSchema, DataFileSchema, parseTrainConfig, loadTrainConfig, readConfigFile, formatZodIssues } from './train/config.ts';
export type { TrainConfig, TrainConfigInput, DataFile } from './train/config.ts';
export { lossCurveSvg, lossCurveSpec, lossPointsFromRecords } from './plot/lossCurve.ts';
export type { LossPoint, LossCurveOptions } from './plot/lossCurve.ts';
export { routingHeatmapSvg, routingHeatmapSpec, routingCellsFromStats } from './routing/heatmap.ts';
export type { RoutingCell, RoutingHeatmapOptions, RoutingStatsLike } from './routing/heatmap.ts';
export { runTraining, batchLoss, batchTargets } from './train/run.ts';
export type { RunTrainingOptions, RunTrainingResult } from './train/run.ts';
export { handleInterrupts, signalExitCode } from './train/interrupt.ts';
export type { InterruptHandle, InterruptOptions } from './train/interrupt.ts';
export { renderVegaLiteSvg } from './plot/render.ts';
export { Tokenizer } from './tokenizer/tokenizer.ts';
export type { EncodeOptions, DecodeOptions, EncodedChat, TokenizerSideFiles } from './tokenizer/tokenizer.ts';
export { DEFAULT_CHAT_TEMPLATE, renderChatTemplate, chatSegments } from './tokenizer/chatTemplate.ts';
export type { ChatMessage, ChatSegment, ChatTemplateOptions, SpecialTokenStrings } from './tokenizer/chatTemplate.ts';
export { StreamDecoder } from './tokenizer/streamDecoder.ts';
export type { StreamDecoderOptions } from './tokenizer/streamDecoder.ts';
export { trainBpe, writeTokenizerFiles } from './tokenizer/trainBpe.ts';
export type { TrainBpeOptions, TrainedBpe } from './tokenizer/trainBpe.ts';
export { readJsonl, readJsonlAll } from './data/jsonl.ts';
export type { JsonlLine } from './data/jsonl.ts';
export { parseJsonlText } from './data/jsonlText.ts';
export { parseDataRecord, parseMultipleChoiceItem, parseExactMatchItem, taskNameOf, CHAT_ROLES } from './data/formats.ts';
export type { DataRecord, MultipleChoiceItem, ExactMatchItem, ChatRole } from './data/formats.ts';
export { renderRecord, encodePair, renderPlainChat, plainEosText, tokenizerAddsBos, IGNORE_INDEX, PLAIN_GENERATION_PROMPT } from './data/render.ts';
export type { TokenizerLike, RenderOptions, RenderedExample, ChatTemplateMode } from './data/render.ts';
export { collate, truncateExample, bucketByLength, batchesOf, countTargets, padIdOf } from './data/batch.ts';
export type { Batch, TruncationMode, CollateOptions } from './data/batch.ts';
export { DataMixture, BatchStream, readDataRecords, loadExamples, loadExamplesPerTask } from './data/mix.ts';
export type { DataSource, RecordSource, MixtureOptions, StreamPosition, MixtureStats, BatchStreamOptions, BatchStreamState } from './data/mix.ts';
export { loglikelihoods } from './eval/loglikelihood.ts';
export type { CausalLMLike, LoglikelihoodRequest, LoglikelihoodResult, LoglikelihoodOptions } from './eval/loglikelihood.ts';
export { evaluateMultipleChoice, readMultipleChoice, multipleChoicePrompt, resolvePromptStyle } from './eval/multipleChoice.ts';
export type { PromptStyle, MultipleChoiceOptions, MultipleChoiceResult, MultipleChoiceItemResult } from './eval/multipleChoice.ts';
export { evaluateExactMatch, readExactMatch, exactMatchPrompt, normalizeAnswer, modelGenerator } from './eval/exactMatch.ts';
export type { GenerateFn, ExactMatchOptions, ExactMatchResult, ExactMatchItemResult, ExactMatchPromptStyle } from './eval/exactMatch.ts';
export { aggregate, formatMarkdownTable, reportToJson, writeReport } from './eval/report.ts';
export type { EvalReport, TaskMetrics, MarkdownOptions } from './eval/report.ts';
export { ADAPTER_KINDS, adapterConfigSchema, parseAdapterConfig, defaultTargetModules, loraScaling } from './adapters/config.ts';
export type { AdapterKind, AdapterConfig, AdapterConfigInput } from './adapters/config.ts';
export { adapterKind, adapterKinds } from './adapters/registry.ts';
export type { AnyAdapterKind } from './adapters/registry.ts';
export type { AdapterKindDefinition, KindConfigBase, LayerShape, MergeMode, PeftField, PeftFormat } from './adapters/kind.ts';
export { PeftModel, getPeftModel, createAdapterLayer } from './adapters/inject.ts';
export type { AddAdapterOptions, RoutingVectors } from './adapters/inject.ts';
export { AdapterLayer, isAdapterLayer, modelParameters } from './adapters/layer.ts';
export type { AdapterState } from './adapters/layer.ts';
export { DeltaAdapterLayer, isDeltaLayer } from './adapters/deltaLayer.ts';
export type { MergeOptions, FixedRoutingLayer } from './adapters/deltaLayer.ts';
export { LoraLinear, loraKind, loraConfigSchema } from './adapters/lora.ts';
export type { LoraLayerSpec, LoraConfig } from './adapters/lora.ts';
export { DoraLinear, doraKind, doraConfigSchema } from './adapters/dora.ts';
export type { DoraConfig } from './adapters/dora.ts';
export { MorLinear, morDeltaFast, morDeltaNaive, morKind, morConfigSchema } from './adapters/mor.ts';
export type { MorLayerSpec, MorParams, MorConfig } from './adapters/mor.ts';
export { MoeLoraLinear, moeLoraDelta, moeLoraDeltaNaive, moeLoraKind, moeLoraConfigSchema } from './adapters/moelora.ts';
export type { MoeLoraLayerSpec, MoeLoraConfig } from './adapters/moelora.ts';
export { FullLinear, fullKind, fullConfigSchema } from './adapters/full.ts';
export type { FullConfig } from './adapters/full.ts';
export { HydraLoraLinear, hydraLoraDelta, hydraLoraDeltaNaive, hydraLoraKind, hydraLoraConfigSchema } from './adapters/hydralora.ts';
export type { HydraLoraLayerSpec, HydraLoraConfig } from './adapters/hydralora.ts';
export { planAdapter } from './adapters/targets.ts';
export type { PlannedTarget } from './adapters/targets.ts';
export { toPeftConfig, fromPeftConfig } from './adapters/peftConfig.ts';
export { savePretrained as saveAdapter, saveAdapterTo, ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME } from './adapters/save.ts';
export type { SaveAdapterOptions } from './adapters/save.ts';
export { loadAdapter, loadAdapterFrom, readAdapterConfig, readAdapterConfigFrom, expectedAdapterTensors } from './adapters/load.ts';
export type { LoadAdapterOptions } from './adapters/load.ts';
export { RoutingStats, meanRoutingVectors, routingByTask } from './routing/stats.ts';
export type { RoutingBatch, BatchRunner } from './routing/stats.ts';
export { mergeWithRouting, setFixedRouting } from './routing/fixedRouting.ts';
export { countParameters, formatTrainableParameters } from './adapters/params.ts';
export type { ParamCounts } from './adapters/params.ts';
export { LlamaForCausalLM, LlamaModel } from './models/llama/model.ts';
export type { ForwardOptions, LossOptions } from './models/llama/model.ts';
export { parseHfConfig, toHfConfig, makeConfig, SUPPORTED_MODEL_TYPES } from './models/llama/config.ts';
export type { LlamaConfig, ModelType, RopeScaling, LayerType, RopeLayout } from './models/llama/config.ts';
export { KVCache } from './models/llama/kvCache.ts';
export { causalLmLoss, causalLmLossSum } from './models/llama/loss.ts';
export { chunkedLossSum, defaultLossChunkRows } from './models/llama/chunkedLoss.ts';
export { checkpointed } from './nn/checkpoint.ts';
export type { CheckpointableModule } from './nn/checkpoint.ts';
export { isolatedGradients } from './nn/tape.ts';
export {
  planRun, checkRunFits, runFits, autoGradientCheckpointing, adapterTrainableParams,
  WASM_HEAP_MAX_BYTES, WASM_HEAP_USABLE_FRACTION, PROCESS_BASE_BYTES, ACTIVATION_COEFFICIENTS, TRAINABLE_BYTES_PER_PARAM,
} from './models/memoryPlan.ts';
export type { RunShape, MemoryPlan, MemoryLimits } from './models/memoryPlan.ts';
export { sizeTrainingRun } from './train/memory.ts';
export type { WeightPlacement, TrainingSize } from './train/memory.ts';
export { loadModel, loadConfig, weightPlacement } from './models/load.ts';
export { loadModelFrom, loadConfigFrom } from './models/loadSource.ts';
export type { LoadModelOptions, WeightPlacement as ModelWeightPlacement } from './models/load.ts';
export { savePretrained, saveTensors, parameterSources } from './models/save.ts';
export type { SaveOptions, TensorSource } from './models/save.ts';
export { StoredWeight, weightStoreAvailable } from './backend/weightStore.ts';
export type { StoredDtype, FrozenWeight } from './backend/weightStore.ts';
export { createRandomModel } from './models/random.ts';
export { buildModel, MODEL_BUILDERS } from './models/registry.ts';
export type { WeightSource, WeightKind } from './models/llama/weights.ts';
export { generate } from './generate/generate.ts';
export type { GenerateOptions, GenerateResult, GenerationTokenizer, FinishReason } from './generate/generate.ts';
export { sampleToken, samplingDistribution } from './generate/sampling.ts';
export type { SamplingOptions } from './generate/sampling.ts';
export { evaluate, readEvalFiles } from './eval/evaluate.ts';
export type { EvaluateOptions, EvaluateResult } from './eval/evaluate.ts';
export { SUITE_TASKS, getTask } from './data/tasks/registry.ts';
export { buildSuite, generateSuite, writeSuite, DEFAULT_SUITE_SEED } from './data/tasks/suite.ts';
export type { SuiteOptions, SuiteManifest, GeneratedTask } from './data/tasks/suite.ts';
export { buildCorpus, corpusDocuments } from './data/tasks/corpus.ts';
export type { CorpusInfo } from './data/tasks/corpus.ts';
export type { TaskSpec, TaskItem, TaskSplits, TaskCategory, SplitSizes } from './data/tasks/types.ts';
export { mergeAdapter, recordedTrainingData, TOKENIZER_FILES, MERGE_INFO_NAME } from './merge/mergeAdapter.ts';
export type { MergeAdapterOptions, MergeAdapterResult } from './merge/mergeAdapter.ts';
export { routingTable, routingRows, formatRoutingMarkdown, loadRoutingExamples } from './routing/routingTable.ts';
export type { RoutingTableOptions, RoutingTableResult, RoutingRow } from './routing/routingTable.ts';
export { runPretrain, streamLoss, PRETRAIN_SPECIAL_TOKENS } from './pretrain/run.ts';
export type { PretrainResult, PretrainRunOptions } from './pretrain/run.ts';
export { PretrainConfigSchema, ArchitectureSchema, parsePretrainConfig } from './pretrain/config.ts';
export type { PretrainConfig, PretrainConfigInput, Architecture } from './pretrain/config.ts';
export { PackedBatches, splitDocuments, tokenizeDocuments } from './pretrain/packing.ts';
export type { PackedBatchesOptions, PackedBatchesState, PackingTokenizer } from './pretrain/packing.ts';
export { makeAllTrainable } from './pretrain/trainable.ts';
export { runExperiment, machineDescription } from './experiment/runner.ts';
export type { RunExperimentOptions, RunExperimentResult, RunRecord, BaseResult } from './experiment/runner.ts';
export { ExperimentConfigSchema, parseExperimentConfig, loadExperimentConfig } from './experiment/config.ts';
export type { ExperimentConfig, ExperimentConfigInput, MethodSpec, TrainSettings } from './experiment/config.ts';
export { planRuns, planGridRuns, planSettings, resolveMethods, waitingSettings } from './experiment/plan.ts';
export type { RunSpec, RunGroup, Setting, PlanOptions } from './experiment/plan.ts';
export { chooseRates, pickRate, ratesOf } from './experiment/lrSelection.ts';
export type { RateChoice, GridScore } from './experiment/lrSelection.ts';
export { pairedBootstrap, verdictOf } from './experiment/bootstrap.ts';
export type { PairedScores, PairedInterval, BootstrapOptions, Verdict } from './experiment/bootstrap.ts';
export { fineTune, measureBase } from './experiment/fineTune.ts';
export type { FineTuneOptions, FineTuneResult, StaticRoutingResult, RoutingByTask } from './experiment/fineTune.ts';
export { measureAccuracy, measureLatency } from './experiment/measure.ts';
export type { AccuracyResult, AccuracyOptions } from './experiment/measure.ts';
export { formulaTrainableParameters, llamaParameterCount, matchRank, targetedLayers, layerFormula } from './experiment/budget.ts';
export { runDemo, DEMO_DEFAULTS, beforeAfterTable } from './experiment/demo.ts';
export type { DemoOptions, DemoResult } from './experiment/demo.ts';
export { writeExperimentReport } from './experiment/report.ts';
