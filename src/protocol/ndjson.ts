/**
 * NDJSON framing of the worker's event stream: one JSON object per line, `\n`-terminated. Pure Web streams,
 * so the edge (workerd) and Node tests read the stream with the same code.
 */
import { fieldPath } from "./errors.js";
import { workerEventSchema, type WorkerEvent } from "./schemas.js";

const encoder = new TextEncoder();

/** One event as an NDJSON line (UTF-8 bytes, newline included). */
export function encodeEventLine(event: WorkerEvent): Uint8Array {
  return encoder.encode(`${JSON.stringify(event)}\n`);
}

/** Thrown by `parseNdjsonStream` on a line that is not a valid protocol event. */
export class NdjsonProtocolError extends Error {
  constructor(
    message: string,
    readonly line: string,
    readonly lineNumber: number,
  ) {
    super(message);
    this.name = "NdjsonProtocolError";
  }
}

/** Splits a byte stream into text lines (without terminators, `\r\n` tolerated, empty lines skipped). */
export async function* ndjsonLines(readable: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = readable.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pending = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      pending += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline).replace(/\r$/, "");
        pending = pending.slice(newline + 1);
        if (line.trim() !== "") yield line;
      }
      if (done) break;
    }
    if (pending.trim() !== "") yield pending.replace(/\r$/, "");
  } finally {
    // Stopping iteration early (break/return) cancels the body so the worker sees a disconnect.
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** Parses and validates the worker's NDJSON event stream. */
export async function* parseNdjsonStream(readable: ReadableStream<Uint8Array>): AsyncGenerator<WorkerEvent> {
  let lineNumber = 0;
  for await (const line of ndjsonLines(readable)) {
    lineNumber++;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new NdjsonProtocolError(`line ${lineNumber} is not JSON`, line, lineNumber);
    }
    const parsed = workerEventSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? fieldPath(issue.path) : "";
      throw new NdjsonProtocolError(
        `line ${lineNumber} is not a protocol v1 event${where ? ` (${where})` : ""}: ${issue?.message ?? "invalid"}`,
        line,
        lineNumber,
      );
    }
    yield parsed.data;
  }
}
