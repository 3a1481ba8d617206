/**
 * Incremental detokenisation for streaming generation. Decoding token by token and
 * concatenating is wrong for byte-level and byte-fallback vocabularies (one character can
 * span several tokens) and for SentencePiece (a leading space is stripped per decode call).
 * This keeps a small window of ids, decodes the window with and without the newest ids, and
 * emits the difference only once it does not end in U+FFFD (an incomplete UTF-8 sequence),
 * the scheme text-generation-inference uses.
 */

/** What the stream decoder needs from a tokenizer. */
export interface IdsDecoder {
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
}

/** Options of {@link StreamDecoder}. */
export interface StreamDecoderOptions {
  /** Drop special tokens (EOS, chat markers) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

const REPLACEMENT = '\uFFFD';

/**
 * Feed ids as they are generated (`push`), or the whole sequence so far (`update`); each
 * call returns the new text that is safe to print. `flush()` returns whatever is held back
 * at the end. The concatenation of all returned strings equals `decode(allIds)`.
 */
export class StreamDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  private readonly skipSpecialTokens: boolean;

  constructor(
    private readonly tokenizer: IdsDecoder,
    opts: StreamDecoderOptions = {},
  ) {
    this.skipSpecialTokens = opts.skipSpecialTokens ?? false;
  }

  /** Number of ids received so far. */
  get length(): number {
    return this.ids.length;
  }

  /** Append one id or several; returns the newly printable text (possibly ''). */
  push(idOrIds: number | readonly number[]): string {
    if (typeof idOrIds === 'number') this.ids.push(idOrIds);
    else for (const id of idOrIds) this.ids.push(id);
    return this.step(false);
  }

  /**
   * Given all ids generated so far (a sequence that extends the previous call's), return the
   * new printable suffix.
   */
  update(allIds: readonly number[]): string {
    if (allIds.length < this.ids.length) {
      throw new Error(`StreamDecoder.update: got ${allIds.length} ids, fewer than the ${this.ids.length} already seen`);
    }
    return this.push(allIds.slice(this.ids.length));
  }

  /** Return the text still held back (an incomplete character renders as U+FFFD). */
  flush(): string {
    return this.step(true);
  }

  private decode(ids: number[]): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids, { skipSpecialTokens: this.skipSpecialTokens });
  }

  private step(force: boolean): string {
    if (this.ids.length === this.readOffset) return '';
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decode(this.ids.slice(this.prefixOffset));
    if (!force && (newText.length <= prefixText.length || newText.endsWith(REPLACEMENT))) return '';
    if (!newText.startsWith(prefixText)) {
      // A decoder rewrote text across the window edge (rare): re-anchor without emitting twice.
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return newText.slice(Math.min(prefixText.length, newText.length));
    }
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return newText.slice(prefixText.length);
  }
}
