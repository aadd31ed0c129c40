import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  NdjsonProtocolError,
  encodeEventLine,
  parseNdjsonStream,
  type WorkerEvent,
} from "../../src/protocol/index.js";

const events: WorkerEvent[] = [
  { type: "start", request_id: "r-1", session_id: "s é", prompt_tokens: 5, cached_tokens: 2, queue_ms: 1.5, seed: 7 },
  { type: "keepalive" },
  { type: "token", id: 42, logprob: -0.25, top_logprobs: [{ id: 42, logprob: -0.25 }, { id: 7, logprob: -2 }] },
  { type: "token", id: 128000 },
  {
    type: "done",
    finish_reason: "stop",
    stop_token_id: 128009,
    usage: { prompt_tokens: 5, completion_tokens: 3, cached_tokens: 2 },
    timings: { queue_ms: 1.5, ttft_ms: 12, decode_tokens_per_s: 40.5, total_ms: 80 },
  },
];

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<WorkerEvent[]> {
  const out: WorkerEvent[] = [];
  for await (const e of parseNdjsonStream(stream)) out.push(e);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all;
}

describe("parseNdjsonStream", () => {
  it("round-trips events however the bytes are split into chunks (multibyte characters included)", async () => {
    const bytes = concat(events.map(encodeEventLine));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 30 }), async (cuts) => {
        const sorted = [0, ...cuts.sort((a, b) => a - b), bytes.length];
        const chunks = sorted.slice(1).map((end, i) => bytes.slice(sorted[i], end));
        expect(await collect(streamOf(chunks))).toEqual(events);
      }),
      { numRuns: 100 },
    );
  });

  it("tolerates CRLF, blank lines and a last line without a newline", async () => {
    const text = `{"type":"keepalive"}\r\n\n{"type":"token","id":3}`;
    expect(await collect(streamOf([new TextEncoder().encode(text)]))).toEqual([
      { type: "keepalive" },
      { type: "token", id: 3 },
    ]);
  });

  it("names the line of a malformed or unknown event", async () => {
    const bad = (text: string) => collect(streamOf([new TextEncoder().encode(text)]));
    await expect(bad(`{"type":"keepalive"}\n{nope\n`)).rejects.toThrow(/line 2 is not JSON/);
    await expect(bad(`{"type":"token","id":-1}\n`)).rejects.toThrow(NdjsonProtocolError);
    await expect(bad(`{"type":"token","id":-1}\n`)).rejects.toThrow(/line 1 .*\(id\)/);
    await expect(bad(`{"type":"bogus"}\n`)).rejects.toThrow(/line 1 is not a protocol v1 event/);
  });

  it("cancels the underlying stream when the consumer stops early", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encodeEventLine({ type: "keepalive" }));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const e of parseNdjsonStream(stream)) {
      expect(e.type).toBe("keepalive");
      break;
    }
    expect(cancelled).toBe(true);
  });
});
