// Type-checked (tsc --noEmit) against the .d.ts files shipped in the tarball: the public API
// as a TypeScript user sees it, including a deliberate misuse that must stay an error.
import {
  loadModel, Tokenizer, getPeftModel, parseAdapterConfig, generate, initBackend, UserError,
  type AdapterConfig, type BackendInfo, type GenerateResult, type LlamaForCausalLM, type PeftModel,
} from 'mor-peft';

export async function example(dir: string): Promise<string> {
  const info: BackendInfo = await initBackend({ matmul: 'auto', announce: false });
  const model: LlamaForCausalLM = await loadModel(dir);
  const tokenizer = Tokenizer.fromDir(dir);
  const config: AdapterConfig = parseAdapterConfig({ kind: 'mor', r: 8, numExperts: 8 });
  const peft: PeftModel<LlamaForCausalLM> = getPeftModel(model, config);
  const out: GenerateResult = await generate(peft.model, tokenizer, 'Hello', { maxNewTokens: 4 });
  if (out.texts.length === 0) throw new UserError('nothing generated');
  // @ts-expect-error matmul accepts only 'wasm' | 'blas' | 'auto'
  await initBackend({ matmul: 'gpu' });
  return `${info.matmulPath}: ${out.texts[0]}`;
}
