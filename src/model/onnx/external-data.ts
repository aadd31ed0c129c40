// Appends initializer payloads to an ONNX external-data file, one tensor at a time, so that a
// model far larger than memory can be written. Offsets are aligned to 4096 bytes (the page size
// the ONNX spec recommends, which lets onnxruntime mmap each tensor).
import { closeSync, openSync, writeSync } from "node:fs";
import type { StringStringEntry } from "./onnx-proto.js";

export const EXTERNAL_DATA_ALIGNMENT = 4096;
// fs.writeSync takes at most 2 GiB per call.
const MAX_WRITE = 1 << 30;
const ZEROS = new Uint8Array(EXTERNAL_DATA_ALIGNMENT);

export interface ExternalLocation {
  offset: number;
  length: number;
}

export class ExternalDataWriter {
  private readonly fd: number;
  private position = 0;
  private closed = false;

  /**
   * @param path file to create (truncated if present)
   * @param location the file name recorded in each initializer, relative to the .onnx file
   */
  constructor(
    path: string,
    readonly location: string,
  ) {
    this.fd = openSync(path, "w");
  }

  /** Bytes written so far (the file size once closed). */
  get size(): number {
    return this.position;
  }

  /** Writes one tensor's bytes (given as consecutive chunks) at the next aligned offset. */
  append(chunks: Iterable<Uint8Array>): ExternalLocation {
    if (this.closed) throw new Error(`external data file ${this.location} is already closed`);
    const padding = (EXTERNAL_DATA_ALIGNMENT - (this.position % EXTERNAL_DATA_ALIGNMENT)) % EXTERNAL_DATA_ALIGNMENT;
    if (padding) this.write(ZEROS.subarray(0, padding));
    const offset = this.position;
    for (const chunk of chunks) {
      for (let start = 0; start < chunk.length; start += MAX_WRITE) this.write(chunk.subarray(start, start + MAX_WRITE));
    }
    return { offset, length: this.position - offset };
  }

  /** The TensorProto.external_data entries for a tensor written at `at`. */
  entries(at: ExternalLocation): StringStringEntry[] {
    return [
      { key: "location", value: this.location },
      { key: "offset", value: String(at.offset) },
      { key: "length", value: String(at.length) },
    ];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, this.position + done);
    this.position += bytes.length;
  }
}
