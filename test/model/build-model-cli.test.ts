// scripts/build-model.ts as users run it: the gpu flavour writes the static-KV graph by default (what the worker's
// fast decoder needs), --no-static-kv leaves it out, and bad combinations fail with a message naming the flag.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { StaticKvDecoder } from "../../src/gpu/fast-decoder/static-kv-decoder.js";
import { storedWeights } from "../../src/model/onnx/index.js";
import { ReferenceModel } from "../../src/model/reference.js";
import { randomWeights } from "../../src/model/weights.js";
import { PRESETS } from "../../src/model/config.js";
import { REPO_ROOT, TEST_PROMPT, argmax } from "../helpers/models.js";

const ROOT = join(REPO_ROOT, "build", "test-models", `build-cli-${process.pid}`);
mkdirSync(ROOT, { recursive: true });
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

const TSX = join(REPO_ROOT, "node_modules", "tsx", "dist", "cli.mjs");
const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [TSX, join(REPO_ROOT, "scripts", "build-model.ts"), ...args], { cwd: REPO_ROOT, encoding: "utf8" });

describe("scripts/build-model.ts", () => {
  it("writes the static-KV graph by default, and it decodes as the reference does", async () => {
    const out = join(ROOT, "default");
    const { stdout } = await run(["--preset", "tiny", "--seed", "1", "--dtype", "fp32", "--no-tokenizer", "--out", out]);
    expect(stdout).toContain("onnx/model.static-kv.onnx");
    const decoder = await StaticKvDecoder.open({ modelPath: join(out, "onnx", "model.static-kv.onnx"), device: "cpu", capacity: 32 });
    try {
      const weights = randomWeights(PRESETS.tiny, 1);
      const reference = new ReferenceModel(weights.args, storedWeights(weights, "fp32"));
      const want = argmax(reference.forward(TEST_PROMPT, 0, reference.newCache(TEST_PROMPT.length)));
      expect((await decoder.prefill(TEST_PROMPT)).token).toBe(want);
    } finally {
      await decoder.dispose();
    }
  }, 60_000);

  it("leaves it out with --no-static-kv", async () => {
    const out = join(ROOT, "plain");
    const { stdout } = await run(["--preset", "tiny", "--dtype", "fp32", "--no-tokenizer", "--no-static-kv", "--out", out]);
    expect(stdout).not.toContain("static-kv");
    expect(existsSync(join(out, "onnx", "model.onnx"))).toBe(true);
    expect(existsSync(join(out, "onnx", "model.static-kv.onnx"))).toBe(false);
  }, 60_000);

  it("refuses --no-static-kv for the standard flavour, naming the flag", async () => {
    await expect(run(["--preset", "tiny", "--flavour", "standard", "--no-static-kv", "--out", join(ROOT, "never")])).rejects.toMatchObject({
      stderr: expect.stringContaining("--no-static-kv: only the gpu flavour has a static-KV graph"),
    });
  }, 60_000);
});
