/**
 * Incremental detokenization. A character can be split across tokens (😀 is [76460, 222]), so bytes
 * are buffered until they form complete UTF-8. WHATWG `TextDecoder` in streaming mode does exactly
 * this, and the Encoding Standard guarantees that streamed output equals one-shot decoding, so the
 * concatenated outputs equal `Tokenizer.decode` of all ids (with U+FFFD only for bytes that can never
 * become valid, like Python's `errors="replace"`).
 */

/** Where the decoder gets each token's bytes from (a `Tokenizer`). */
export interface TokenByteSource {
  tokenBytes(id: number): Uint8Array;
}

export class StreamDecoder {
  private readonly source: TokenByteSource;
  // ignoreBOM keeps a leading U+FEFF in the text, as Python's "utf-8" codec does.
  private decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor(source: TokenByteSource) {
    this.source = source;
  }

  /** Adds one token; returns the text it completes ("" while a character is still incomplete). */
  push(id: number): string {
    return this.decoder.decode(this.source.tokenBytes(id), { stream: true });
  }

  /** Ends the stream: returns any buffered bytes (U+FFFD for an incomplete character) and resets. */
  flush(): string {
    const rest = this.decoder.decode();
    this.decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    return rest;
  }
}
