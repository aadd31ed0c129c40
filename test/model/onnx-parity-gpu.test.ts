// GPU-flavour (com.microsoft contrib ops: GroupQueryAttention, MatMulNBits, ...) tiny models on onnxruntime's CPU EP against the reference
// forward pass, at every step of a 32-token greedy generation with the KV cache.
import { describe, expect, it } from "vitest";
import { buildModelFolder } from "../../src/model/onnx/index.js";
import { greedyParity, tinyWeights } from "../helpers/models.js";

// fp32 and q4 compute in float32 (q4 against the dequantised weights): only summation order
// differs. fp16 I/O rounds every activation to 11 bits, so it gets a looser bound and no token check.
const TIGHT = 1e-4;
const HALF = 1e-2;

describe("gpu graph on onnxruntime CPU", () => {
  it.each([
    ["tiny", "fp32"],
    ["tiny", "q4"],
    ["tiny-mha", "fp32"],
    ["tiny-mqa", "q4"], // 4 query heads per kv head
    ["tiny-tied", "fp32"],
    ["tiny-tied", "q4"],
  ] as const)("%s %s: logits match the reference at every step", async (preset, dtype) => {
    const r = await greedyParity({ preset, flavour: "gpu", dtype });
    expect(r.worst).toBeLessThan(TIGHT);
    expect(r.mismatches).toEqual([]);
  });

  it.each([
    ["tiny", "q4f16"],
    ["tiny-tied", "fp16"],
  ] as const)("%s %s (float16 I/O): logits within float16 rounding of the reference", async (preset, dtype) => {
    const r = await greedyParity({ preset, flavour: "gpu", dtype });
    expect(r.worst).toBeLessThan(HALF);
  });

  it("refuses a head_dim GroupQueryAttention cannot run, naming the alternative", async () => {
    // tiny-gqa has head_dim 8; onnxruntime's GQA kernels need multiples of 16.
    await expect(
      buildModelFolder({ outDir: "build/test-models/never-written", weights: tinyWeights("tiny-gqa"), flavour: "gpu", dtypes: ["fp32"] }),
    ).rejects.toThrow(/head_dim divisible by 16.*has 8.*standard flavour/);
  });
});
