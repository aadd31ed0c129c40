import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openHfCheckpoint, writeHfCheckpoint } from "../../src/model/checkpoint.js";
import { defineModelArgs, toHfConfig } from "../../src/model/config.js";
import { ReferenceModel } from "../../src/model/reference.js";
import { Rng } from "../../src/model/rng.js";
import {
  decodeFloats,
  encodeFloats,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  parseSafetensors,
  parseSafetensorsHeader,
  SafetensorsError,
  serializeSafetensors,
} from "../../src/model/safetensors.js";
import type { Tensor } from "../../src/model/tensor.js";
import { loadAll, randomWeights } from "../../src/model/weights.js";

const bitsOf = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!;
const fromBits = (b: number) => new Float32Array(Uint32Array.of(b).buffer)[0]!;
const bf16ToFloat = (h: number) => fromBits(h << 16);

describe("float16 / bfloat16 conversion", () => {
  it("decodes IEEE half values (hand-checked bit patterns)", () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16BitsToFloat32(0x3555)).toBe(0.333251953125);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
  });

  it("every finite or infinite half survives float32 and back", () => {
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      const back = float32ToFloat16Bits(bitsOf(float16BitsToFloat32(h)));
      if (isNaN ? !Number.isNaN(float16BitsToFloat32(back)) : back !== h) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it("rounds float32 to the nearest half, ties to even, overflow to Infinity", () => {
    expect(float32ToFloat16Bits(bitsOf(65519))).toBe(0x7bff);
    expect(float32ToFloat16Bits(bitsOf(65520))).toBe(0x7c00); // halfway to the next binade: even → Infinity
    expect(float32ToFloat16Bits(bitsOf(1 + 2 ** -11))).toBe(0x3c00); // tie, 0x3c00 is even
    expect(float32ToFloat16Bits(bitsOf(1 + 3 * 2 ** -11))).toBe(0x3c02); // tie, rounds up to even
    expect(float32ToFloat16Bits(bitsOf(2 ** -25))).toBe(0); // tie between 0 and the smallest subnormal
    expect(float32ToFloat16Bits(bitsOf(2 ** -25 * 1.5))).toBe(1);
    expect(float32ToFloat16Bits(bitsOf(-1e-30))).toBe(0x8000);
    const rng = new Rng(31);
    let notNearest = 0;
    for (let i = 0; i < 20000; i++) {
      const x = Math.fround((rng.nextFloat() - 0.5) * 2 ** Math.floor(rng.nextFloat() * 40 - 26));
      const h = float32ToFloat16Bits(bitsOf(x));
      const d = Math.abs(x - float16BitsToFloat32(h));
      for (const neighbour of [h - 1, h + 1]) {
        if ((neighbour & 0x7fff) >= 0x7c00 || (neighbour ^ h) & 0x8000) continue;
        const dn = Math.abs(x - float16BitsToFloat32(neighbour));
        if (d > dn || (d === dn && (h & 1) !== 0)) notNearest++;
      }
    }
    expect(notNearest).toBe(0);
  });

  it("rounds float32 to the nearest bfloat16, ties to even, keeps NaN", () => {
    expect(float32ToBfloat16Bits(bitsOf(1))).toBe(0x3f80);
    expect(float32ToBfloat16Bits(bitsOf(1 + 2 ** -8))).toBe(0x3f80); // tie, even
    expect(float32ToBfloat16Bits(bitsOf(1 + 3 * 2 ** -8))).toBe(0x3f82);
    expect(Number.isNaN(bf16ToFloat(float32ToBfloat16Bits(bitsOf(Number.NaN))))).toBe(true);
    expect(bf16ToFloat(float32ToBfloat16Bits(bitsOf(-Infinity)))).toBe(-Infinity);
    const rng = new Rng(32);
    let notNearest = 0;
    for (let i = 0; i < 20000; i++) {
      const x = Math.fround((rng.nextFloat() - 0.5) * 2 ** Math.floor(rng.nextFloat() * 80 - 40));
      const h = float32ToBfloat16Bits(bitsOf(x));
      const d = Math.abs(x - bf16ToFloat(h));
      for (const n of [h - 1, h + 1]) {
        const dn = Math.abs(x - bf16ToFloat(n & 0xffff));
        if (d > dn || (d === dn && (h & 1) !== 0)) notNearest++;
      }
    }
    expect(notNearest).toBe(0);
  });

  it("decodeFloats accepts unaligned bytes", () => {
    const bytes = new Uint8Array(9);
    bytes.set(encodeFloats(Float32Array.of(1.5, -2), "float32"), 1);
    expect([...decodeFloats(bytes.subarray(1), "F32", 2)]).toEqual([1.5, -2]);
    expect(() => decodeFloats(bytes, "I64", 1)).toThrow(/unsupported dtype/);
  });
});

describe("safetensors format", () => {
  const tensors: Array<[string, Tensor]> = [
    ["a", { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6.5) }],
    ["b.weight", { shape: [3], data: Float32Array.of(-0.1, 1e-3, 3e4) }],
    ["scalar", { shape: [], data: Float32Array.of(7) }],
  ];

  it("reads a file built by hand from the format description", () => {
    const header = JSON.stringify({
      __metadata__: { format: "pt" },
      w: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
      v: { dtype: "BF16", shape: [1, 1], data_offsets: [4, 6] },
    });
    const json = new TextEncoder().encode(header);
    const file = new Uint8Array(8 + json.length + 6);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    file.set([0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f], 8 + json.length); // f16 1, -2; bf16 1
    const parsed = parseSafetensors(file);
    expect([...parsed.get("w")!.data]).toEqual([1, -2]);
    expect(parsed.get("v")).toEqual({ shape: [1, 1], data: Float32Array.of(1) });
    expect(parseSafetensorsHeader(file).metadata).toEqual({ format: "pt" });
  });

  it("write → read is exact for float32 and within rounding for float16/bfloat16", () => {
    const f32 = parseSafetensors(serializeSafetensors(tensors));
    for (const [name, t] of tensors) expect(f32.get(name)).toEqual(t);
    for (const [dtype, relative] of [["float16", 2 ** -11], ["bfloat16", 2 ** -8]] as const) {
      const back = parseSafetensors(serializeSafetensors(tensors, dtype));
      for (const [name, t] of tensors) {
        const got = back.get(name)!;
        expect(got.shape).toEqual(t.shape);
        t.data.forEach((x, i) => expect(Math.abs(got.data[i]! - x)).toBeLessThanOrEqual(Math.abs(x) * relative));
      }
    }
  });

  it("pads the header to 8 bytes and records data offsets contiguously", () => {
    const bytes = serializeSafetensors(tensors);
    const h = parseSafetensorsHeader(bytes, bytes.length);
    expect(h.dataOffset % 8).toBe(0);
    expect(h.tensors.map((t) => [t.name, t.begin, t.end])).toEqual([["a", 0, 24], ["b.weight", 24, 36], ["scalar", 36, 40]]);
  });

  const withHeader = (header: unknown, dataBytes = 0) => {
    const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
    const file = new Uint8Array(8 + json.length + dataBytes);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    return file;
  };

  it.each([
    ["a short file", new Uint8Array(4), /too short/],
    ["a huge header length", Uint8Array.of(255, 255, 255, 255, 255, 255, 255, 255), /limit/],
    ["invalid JSON", withHeader("{nope"), /JSON/],
    ["a non-object header", withHeader([1, 2]), /object/],
    ["an unknown dtype", withHeader({ x: { dtype: "F7", shape: [1], data_offsets: [0, 1] } }, 1), /unknown dtype/],
    ["a size mismatch", withHeader({ x: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, 4), /needs 8/],
    ["overlapping tensors", withHeader({ x: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, y: { dtype: "F32", shape: [1], data_offsets: [2, 6] } }, 6), /contiguous/],
    ["a missing field", withHeader({ x: { dtype: "F32", shape: [1] } }, 4), /data_offsets/],
    ["data shorter than the header claims", withHeader({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 4), /data section/],
  ])("rejects %s", (_, bytes, message) => {
    expect(() => parseSafetensors(bytes as Uint8Array)).toThrow(SafetensorsError);
    expect(() => parseSafetensors(bytes as Uint8Array)).toThrow(message as RegExp);
  });
});

describe("Hugging Face checkpoint folders", () => {
  const args = defineModelArgs({ dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, vocab_size: 300, multiple_of: 16, use_scaled_rope: true, max_seq_len: 64 });
  const source = randomWeights(args, 41);
  const original = loadAll(source);
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "llama-edge-ckpt-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a single-file float32 checkpoint re-imports identically and gives the same model", async () => {
    const out = join(dir, "single");
    const progress: number[] = [];
    await writeHfCheckpoint(out, source, { onProgress: (n) => progress.push(n) });
    expect((await readdir(out)).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
    expect(progress.at(-1)).toBe(source.names().length);
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    expect(config).toEqual(toHfConfig(args, { torch_dtype: "float32" }));
    const ws = await openHfCheckpoint(out);
    // Same architecture (multiple_of may be re-derived differently with the same FFN size).
    expect(toHfConfig(ws.args)).toEqual(toHfConfig(args));
    expect(ws.names()).toEqual(source.names());
    for (const name of ws.names()) expect(ws.read(name)).toEqual(original.get(name));
    const tokens = [1, 2, 3, 250, 7];
    const a = new ReferenceModel(args, source).forward(tokens, 0, new ReferenceModel(args, source).newCache(8));
    const imported = new ReferenceModel(ws.args, ws);
    expect(imported.forward(tokens, 0, imported.newCache(8))).toEqual(a);
  });

  it("sharded checkpoints write an index and re-import identically", async () => {
    const out = join(dir, "sharded");
    await writeHfCheckpoint(out, source, { shardBytes: 40_000 });
    const files = (await readdir(out)).filter((f) => f.endsWith(".safetensors")).sort();
    expect(files.length).toBeGreaterThan(2);
    expect(files[0]).toBe(`model-00001-of-${String(files.length).padStart(5, "0")}.safetensors`);
    const index = JSON.parse(await readFile(join(out, "model.safetensors.index.json"), "utf8"));
    expect(Object.keys(index.weight_map).sort()).toEqual(source.names().sort());
    expect(index.metadata.total_size).toBe(source.names().reduce((s, n) => s + original.get(n)!.data.length * 4, 0));
    const ws = await openHfCheckpoint(out);
    expect(ws.info.files).toEqual(files);
    for (const name of ws.names()) expect(ws.read(name)).toEqual(original.get(name));
  });

  it("bfloat16 and float16 checkpoints re-import within rounding", async () => {
    for (const [dtype, stored, relative] of [["bfloat16", "BF16", 2 ** -8], ["float16", "F16", 2 ** -11]] as const) {
      const out = join(dir, dtype);
      await writeHfCheckpoint(out, source, { dtype });
      const ws = await openHfCheckpoint(out);
      expect(ws.info.dtypes.get("model.norm.weight")).toBe(stored);
      expect(JSON.parse(await readFile(join(out, "config.json"), "utf8")).torch_dtype).toBe(dtype);
      for (const name of ws.names()) {
        const got = ws.read(name).data;
        const want = original.get(name)!.data;
        let worst = 0;
        want.forEach((x, i) => (worst = Math.max(worst, Math.abs(got[i]! - x) / Math.max(Math.abs(x), 2 ** -14))));
        expect(worst).toBeLessThanOrEqual(relative);
      }
    }
  });

  it("tied models have no lm_head tensor and still re-import", async () => {
    const tied = { ...args, tie_word_embeddings: true };
    const out = join(dir, "tied");
    await writeHfCheckpoint(out, randomWeights(tied, 42));
    const ws = await openHfCheckpoint(out);
    expect(ws.args.tie_word_embeddings).toBe(true);
    expect(ws.names()).not.toContain("lm_head.weight");
  });

  it("reports broken checkpoints by tensor or file", async () => {
    const good = join(dir, "single");
    const copy = async (name: string, edit: (files: Map<string, Uint8Array>) => void) => {
      const out = join(dir, name);
      const files = new Map<string, Uint8Array>();
      for (const f of await readdir(good)) files.set(f, new Uint8Array(await readFile(join(good, f))));
      edit(files);
      await rm(out, { recursive: true, force: true });
      await writeHfCheckpoint(out, source); // creates the folder; then overwrite its files
      for (const f of await readdir(out)) await rm(join(out, f));
      for (const [f, bytes] of files) await writeFile(join(out, f), bytes);
      return out;
    };
    const text = (s: string) => new TextEncoder().encode(s);
    const weights = parseSafetensors(new Uint8Array(await readFile(join(good, "model.safetensors"))));

    const noConfig = await copy("no-config", (f) => f.delete("config.json"));
    await expect(openHfCheckpoint(noConfig)).rejects.toThrow(/config\.json/);

    const badConfig = await copy("bad-config", (f) => f.set("config.json", text(JSON.stringify({ ...toHfConfig(args), num_key_value_heads: 3 }))));
    await expect(openHfCheckpoint(badConfig)).rejects.toThrow(/num_key_value_heads/);

    const missing = await copy("missing", (f) => {
      const m = new Map(weights);
      m.delete("model.layers.1.mlp.up_proj.weight");
      f.set("model.safetensors", serializeSafetensors(m));
    });
    await expect(openHfCheckpoint(missing)).rejects.toThrow(/missing tensor "model\.layers\.1\.mlp\.up_proj\.weight"/);

    const wrongShape = await copy("wrong-shape", (f) => {
      const m = new Map(weights);
      m.set("model.norm.weight", { shape: [16], data: new Float32Array(16) });
      f.set("model.safetensors", serializeSafetensors(m));
    });
    await expect(openHfCheckpoint(wrongShape)).rejects.toThrow(/"model\.norm\.weight": shape \[16\], config\.json implies \[32\]/);

    const extra = await copy("extra", (f) => {
      const m = new Map(weights);
      m.set("model.vision.weight", { shape: [1], data: new Float32Array(1) });
      m.set("model.layers.0.self_attn.rotary_emb.inv_freq", { shape: [4], data: new Float32Array(4) }); // old HF checkpoints: ignored
      f.set("model.safetensors", serializeSafetensors(m));
    });
    await expect(openHfCheckpoint(extra)).rejects.toThrow(/unexpected tensor "model\.vision\.weight"/);

    const escape = await copy("escape", (f) => f.set("model.safetensors.index.json", text(JSON.stringify({ weight_map: { "model.norm.weight": "../x.safetensors" } }))));
    await expect(openHfCheckpoint(escape)).rejects.toThrow(/same folder/);

    const truncated = await copy("truncated", (f) => f.set("model.safetensors", f.get("model.safetensors")!.subarray(0, 1000)));
    await expect(openHfCheckpoint(truncated)).rejects.toThrow(/model\.safetensors/);
  });
});
