// A model exported as a Hugging Face safetensors checkpoint and imported again builds the same
// ONNX model, byte for byte, as the weights it was exported from.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openHfCheckpoint, writeHfCheckpoint } from "../../src/model/checkpoint.js";
import { buildModelFolder } from "../../src/model/onnx/index.js";
import { tinyModelDir, tinyWeights } from "../helpers/models.js";

const work = mkdtempSync(join(tmpdir(), "onnx-import-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function onnxFiles(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(join(dir, "onnx")).map((f) => [f, readFileSync(join(dir, "onnx", f))]));
}

describe("safetensors export and re-import", () => {
  it.each([
    ["tiny-tied", "one file", undefined],
    ["tiny", "sharded", 20_000_000],
  ] as const)("%s (%s): the imported checkpoint builds identical ONNX files", async (preset, _kind, shardBytes) => {
    const original = await tinyModelDir({ preset, flavour: "gpu", dtypes: ["q4f16", "fp32"] });
    const checkpoint = join(work, `${preset}-checkpoint`);
    await writeHfCheckpoint(checkpoint, tinyWeights(preset), { shardBytes });
    if (shardBytes) expect(readdirSync(checkpoint)).toContain("model.safetensors.index.json");
    const imported = await openHfCheckpoint(checkpoint);
    expect(imported.args).toEqual(tinyWeights(preset).args);
    const rebuilt = join(work, `${preset}-rebuilt`);
    await buildModelFolder({ outDir: rebuilt, weights: imported, flavour: "gpu", dtypes: ["q4f16", "fp32"], tokenizerDir: null, accuracyLevel: 0 });
    const want = onnxFiles(original);
    const got = onnxFiles(rebuilt);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [file, bytes] of want) expect(got.get(file)!.equals(bytes), file).toBe(true);
  });
});
