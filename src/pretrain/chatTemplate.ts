/**
 * The chat template of the bundled base model: the Zephyr-style default
 * (`<|{role}|>\n{content}{eos}\n`, generation prompt `<|assistant|>\n`) with ONE SPACE before
 * every message's content (`<|assistant|>\n female</s>\n`).
 *
 * Why: the model's byte-level BPE learns words with their leading space (` female`, ` male`,
 * ` 3`), the form they take in running text. Without the space an answer that opens a line is
 * split into rare line-initial pieces (`f` `emale`) that pretraining gave no meaning, so
 * fine-tuning had to learn the answers from scratch. Measured with `mor demo` (its defaults) on
 * the same weights: average accuracy 27.62 -> 27.08 % with the default template, 26.64 ->
 * 32.27 % with this one (MoR on every linear layer: 27.62 -> 28.70 % and 26.64 -> 31.55 %);
 * MoR's native kernels later changed the rounding and the demo's 32.27 % became 31.45 %.
 * The MC evaluation moves the prompt's trailing space into each choice (src/data/render.ts
 * `encodePair`), so choices are scored as ` female` too.
 */
export const BASE_MODEL_CHAT_TEMPLATE =
  "{%- for message in messages %}\n" +
  "{{- '<|' + message['role'] + '|>\\n ' + message['content'] + eos_token + '\\n' }}\n" +
  '{%- endfor %}\n' +
  '{%- if add_generation_prompt %}\n' +
  "{{- '<|assistant|>\\n ' }}\n" +
  '{%- endif %}\n';
