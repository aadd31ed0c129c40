// Standard-flavour (default-domain ops) tiny models on onnxruntime's CPU EP against the reference
// forward pass, at every step of a 32-token greedy generation with the KV cache.
import { describe, expect, it } from "vitest";
import { greedyParity } from "../helpers/models.js";

// fp32 and q4 compute in float32 (q4 against the dequantised weights): only summation order
// differs. fp16 I/O rounds every activation to 11 bits, so it gets a looser bound and no token check.
const TIGHT = 1e-4;
const HALF = 1e-2;

describe("standard graph on onnxruntime CPU", () => {
  it.each([
    ["tiny", "fp32"],
    ["tiny", "q4"],
    ["tiny-gqa", "fp32"],
    ["tiny-mha", "q4"],
    ["tiny-tied", "fp32"],
    ["tiny-tied", "q4"],
  ] as const)("%s %s: logits match the reference at every step", async (preset, dtype) => {
    const r = await greedyParity({ preset, flavour: "standard", dtype });
    expect(r.worst).toBeLessThan(TIGHT);
    expect(r.mismatches).toEqual([]);
  });

  it.each([
    ["tiny", "fp16"],
    ["tiny-tied", "q4f16"],
  ] as const)("%s %s (float16 I/O): logits within float16 rounding of the reference", async (preset, dtype) => {
    const r = await greedyParity({ preset, flavour: "standard", dtype });
    expect(r.worst).toBeLessThan(HALF);
  });
});
