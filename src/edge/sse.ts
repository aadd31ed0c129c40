/**
 * A push-style server-sent-events body. Writers call {@link SseStream.data} / {@link SseStream.comment};
 * silence longer than the keep-alive interval is filled with a comment line (ignored by SSE parsers, the
 * OpenAI SDK included) so proxies such as Cloudflare's 100 s timeout do not cut a request waiting in a GPU
 * queue. When the client goes away, `signal` aborts so the producer can cancel upstream work.
 */

const encoder = new TextEncoder();

export class SseStream {
  readonly readable: ReadableStream<Uint8Array>;
  /** Aborted when the client disconnects (the body is cancelled). */
  readonly signal: AbortSignal;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly abort = new AbortController();
  private closed = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastWrite = Date.now();

  constructor(private readonly keepaliveMs: number) {
    this.signal = this.abort.signal;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => {
        this.closed = true;
        this.stopTimer();
        this.abort.abort(new Error("client disconnected"));
      },
    });
    this.timer = setInterval(() => {
      if (Date.now() - this.lastWrite >= this.keepaliveMs) this.comment("keep-alive");
    }, Math.max(10, Math.floor(keepaliveMs / 2)));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** `data: <json>` (or a raw string such as `[DONE]`) followed by a blank line. */
  data(payload: unknown): void {
    this.write(`data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`);
  }

  comment(text: string): void {
    this.write(`: ${text}\n\n`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer();
    this.controller.close();
  }

  response(headers: Record<string, string> = {}): Response {
    return new Response(this.readable, {
      status: 200,
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
        ...headers,
      },
    });
  }

  private write(text: string): void {
    if (this.closed) return;
    this.lastWrite = Date.now();
    this.controller.enqueue(encoder.encode(text));
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * Writes payloads to an SSE stream until they end or the client leaves. A failure of the gateway itself after
 * the 200 was sent becomes `failurePayload` (the API's error event) and is logged.
 */
export async function pumpSse(
  sse: SseStream,
  payloads: AsyncIterable<unknown>,
  failurePayload: unknown,
  log: (error: unknown) => void,
): Promise<void> {
  try {
    for await (const payload of payloads) {
      if (sse.isClosed) break;
      sse.data(payload);
    }
  } catch (error) {
    log(error);
    sse.data(failurePayload);
  } finally {
    sse.close();
  }
}
