/**
 * The safetensors format, pure (no I/O): header parsing and writing, and float conversions between
 * float32 and the stored dtypes (F32, F16, BF16).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 * `{ "__metadata__"?: {str: str}, name: { dtype, shape, data_offsets: [begin, end] }, … }`, then the
 * data section; offsets are relative to the data section, tensors are contiguous and row-major,
 * values little-endian.
 */
import { z } from "zod";
import { numel, type Tensor } from "./tensor.js";

export type FloatDtype = "float32" | "float16" | "bfloat16";
export type StoredFloatDtype = "F32" | "F16" | "BF16";

export const SAFETENSORS_DTYPE: Readonly<Record<FloatDtype, StoredFloatDtype>> = Object.freeze({
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
});

/** Bytes per element of every dtype the format defines (so foreign files can be parsed and reported). */
export const DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  F64: 8, I64: 8, U64: 8,
});

/** The reference implementation refuses headers over 100 MB. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Byte offset of the data section from the start of the file (8 + header length). */
  dataOffset: number;
  /** In data order. */
  tensors: SafetensorsEntry[];
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function assertLittleEndian(): void {
  if (!IS_LITTLE_ENDIAN) throw new SafetensorsError("big-endian hosts are not supported");
}

/** Reads the header length from the first 8 bytes of a file. */
export function safetensorsHeaderLength(prefix: Uint8Array): number {
  if (prefix.length < 8) throw new SafetensorsError(`file too short: ${prefix.length} bytes, need at least 8`);
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  return Number(n);
}

const entrySchema = z.strictObject({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

/**
 * Parses and validates a header. `bytes` starts at the beginning of the file and holds at least the
 * 8-byte length and the JSON header. When `fileSize` is given, the tensors must fill the data section
 * exactly.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize?: number): SafetensorsHeader {
  const length = safetensorsHeaderLength(bytes);
  if (bytes.length < 8 + length) throw new SafetensorsError(`truncated header: need ${8 + length} bytes, have ${bytes.length}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + length)));
  } catch (e) {
    throw new SafetensorsError(`header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new SafetensorsError("header must be a JSON object");

  let metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      const m = z.record(z.string(), z.string()).safeParse(value);
      if (!m.success) throw new SafetensorsError("__metadata__ must map strings to strings");
      metadata = m.data;
      continue;
    }
    const e = entrySchema.safeParse(value);
    if (!e.success) {
      const issue = e.error.issues[0]!;
      throw new SafetensorsError(`tensor ${JSON.stringify(name)}: ${[...issue.path].join(".") || "entry"}: ${issue.message}`);
    }
    const { dtype, shape, data_offsets: [begin, end] } = e.data;
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) throw new SafetensorsError(`tensor ${JSON.stringify(name)}: unknown dtype ${JSON.stringify(dtype)}`);
    if (end - begin !== numel(shape) * size)
      throw new SafetensorsError(`tensor ${JSON.stringify(name)}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, ${dtype}[${shape.join(", ")}] needs ${numel(shape) * size}`);
    tensors.push({ name, dtype, shape, begin, end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const t of tensors) {
    if (t.begin !== expected)
      throw new SafetensorsError(`tensor ${JSON.stringify(t.name)}: data starts at ${t.begin}, expected ${expected} (tensors must be contiguous and not overlap)`);
    expected = t.end;
  }
  const dataOffset = 8 + length;
  if (fileSize !== undefined && dataOffset + expected !== fileSize)
    throw new SafetensorsError(`data section is ${fileSize - dataOffset} bytes, tensors describe ${expected}`);
  return { dataOffset, tensors, metadata };
}

/**
 * Lays out `entries` contiguously in the given order and returns the encoded header (length prefix,
 * JSON padded with spaces to a multiple of 8 bytes as the reference writer does) and the entries with
 * their offsets.
 */
export function serializeSafetensorsHeader(
  entries: ReadonlyArray<{ name: string; dtype: string; shape: readonly number[] }>,
  metadata: Record<string, string> = {},
): { bytes: Uint8Array; tensors: SafetensorsEntry[] } {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const tensors: SafetensorsEntry[] = [];
  let offset = 0;
  for (const { name, dtype, shape } of entries) {
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) throw new SafetensorsError(`tensor ${JSON.stringify(name)}: unknown dtype ${JSON.stringify(dtype)}`);
    if (name === "__metadata__" || Object.hasOwn(header, name)) throw new SafetensorsError(`duplicate or reserved tensor name ${JSON.stringify(name)}`);
    const end = offset + numel(shape) * size;
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, end] };
    tensors.push({ name, dtype, shape: [...shape], begin: offset, end });
    offset = end;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const bytes = new Uint8Array(8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  return { bytes, tensors };
}

// ---------------------------------------------------------------------------------------------
// Float conversions (round to nearest, ties to even; NaN stays NaN; overflow becomes ±Infinity)

/** IEEE binary16 bits of a float32 value. */
export function float32ToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit bit into place.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++;
  return sign | half;
}

export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits of a float32 value (the upper half, rounded). */
export function float32ToBfloat16Bits(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return ((bits >>> 0) + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

let f16Table: Float32Array | undefined;
/** Every float16 bit pattern's value (a lookup is far faster than decoding per element). */
export function float16Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = float16BitsToFloat32(h);
  }
  return f16Table;
}

/** float16 bit patterns (e.g. a float16 tensor's data) as float32 values, through the lookup table. */
export function float16ToFloat32Array(halves: Uint16Array): Float32Array {
  const table = float16Table();
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]!]!;
  return out;
}

/** Encodes float32 values in a stored dtype (little-endian bytes). */
export function encodeFloats(data: Float32Array, dtype: FloatDtype | StoredFloatDtype): Uint8Array {
  assertLittleEndian();
  const stored = storedDtype(dtype);
  if (stored === "F32") return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  const convert = stored === "F16" ? float32ToFloat16Bits : float32ToBfloat16Bits;
  for (let i = 0; i < data.length; i++) out[i] = convert(bits[i]!);
  return new Uint8Array(out.buffer);
}

/** Decodes `count` stored values to float32. `bytes` may be at any alignment. */
export function decodeFloats(bytes: Uint8Array, dtype: string, count = bytes.length / (DTYPE_BYTES[dtype] ?? 1)): Float32Array {
  assertLittleEndian();
  const stored = storedDtype(dtype);
  const need = count * DTYPE_BYTES[stored]!;
  if (!Number.isSafeInteger(count) || bytes.length < need) throw new SafetensorsError(`${stored}: need ${need} bytes for ${count} values, have ${bytes.length}`);
  // Copy to a fresh, aligned buffer so typed-array views are legal whatever the source offset.
  const aligned = bytes.slice(0, need);
  if (stored === "F32") return new Float32Array(aligned.buffer, 0, count);
  const halves = new Uint16Array(aligned.buffer, 0, count);
  if (stored === "F16") return float16ToFloat32Array(halves);
  const out = new Float32Array(count);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) outBits[i] = halves[i]! << 16;
  return out;
}

function storedDtype(dtype: string): StoredFloatDtype {
  if (dtype === "F32" || dtype === "F16" || dtype === "BF16") return dtype;
  if (dtype in SAFETENSORS_DTYPE) return SAFETENSORS_DTYPE[dtype as FloatDtype];
  throw new SafetensorsError(`unsupported dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16)`);
}

// ---------------------------------------------------------------------------------------------
// Whole files in memory (small models, tests)

export function serializeSafetensors(
  tensors: Iterable<readonly [string, Tensor]>,
  dtype: FloatDtype = "float32",
  metadata: Record<string, string> = { format: "pt" },
): Uint8Array {
  const list = [...tensors];
  const { bytes: header, tensors: entries } = serializeSafetensorsHeader(
    list.map(([name, t]) => ({ name, dtype: SAFETENSORS_DTYPE[dtype], shape: t.shape })),
    metadata,
  );
  const total = header.length + (entries.at(-1)?.end ?? 0);
  const out = new Uint8Array(total);
  out.set(header);
  list.forEach(([, t], i) => out.set(encodeFloats(t.data, dtype), header.length + entries[i]!.begin));
  return out;
}

/** Parses a whole file held in memory into float32 tensors (F32/F16/BF16 only). */
export function parseSafetensors(bytes: Uint8Array): Map<string, Tensor> {
  const header = parseSafetensorsHeader(bytes, bytes.length);
  const out = new Map<string, Tensor>();
  for (const e of header.tensors) {
    const data = decodeFloats(bytes.subarray(header.dataOffset + e.begin, header.dataOffset + e.end), e.dtype, numel(e.shape));
    out.set(e.name, { shape: e.shape, data });
  }
  return out;
}
