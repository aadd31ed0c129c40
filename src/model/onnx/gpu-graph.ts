// The GPU graph: the onnxruntime-genai Llama layout (runtime-notes 10.3) built from onnxruntime's
// contrib ops, which have fused WebGPU and CUDA kernels: GroupQueryAttention with rotary applied
// inside and packed QKV, SkipSimplifiedLayerNormalization (residual add + RMSNorm in one kernel),
// MatMulNBits for 4-bit weights and GatherBlockQuantized for 4-bit embeddings.
//
// Two interfaces over the same layers and the same initializers (so both graphs can share one
// .onnx_data file):
//
// * "transformers": what transformers.js 4.3.1 drives. Differences from the genai builder output:
//   past/present dims are concrete (kv heads, head_dim), and a num_logits_to_keep input replaces
//   prune_lm_head.
// * "static-kv": for a decoder that drives onnxruntime directly (src/gpu/fast-decoder). The KV
//   cache is a fixed-capacity buffer [1, kvH, max_length, hd] per layer that the caller binds as
//   both past input and present output, so GroupQueryAttention writes the new rows in place and
//   nothing is copied or reallocated as the context grows. The host passes the lengths
//   (`seqlens_k` = cached + new tokens - 1, `total_sequence_length`) as host tensors, so no node
//   waits for a device-to-host copy. The graph ends in the greedy token computed on the device:
//   `next_token` (shaped like a one-token `input_ids`, so the next step can read it where it lies)
//   and a ring of the last TOKEN_RING_SIZE tokens (`token_ring` -> `token_ring_next`, the new token
//   at `ring_slot`), so the host can queue many steps and read their tokens back in one transfer.
import { FINAL_NORM, layerWeightNames } from "../weights.js";
import { float } from "./graph-builder.js";
import { MICROSOFT_DOMAIN } from "./graph-builder.js";
import type { KvPair, LlamaGraphContext } from "./graph-common.js";
import { DataType } from "./onnx-proto.js";

/** Which inputs and outputs the GPU graph exposes (see the file comment). */
export type GpuGraphInterface = "transformers" | "static-kv";

/** Symbolic KV-capacity dimension of the static-kv interface. */
export const STATIC_KV_CAPACITY_DIM = "max_length";

/** Tokens the static-kv graph's token ring holds: steps the host may queue between readbacks. */
export const TOKEN_RING_SIZE = 64;

const INT32_MAX = 2147483647;

/** Graph interface plumbing: where seqlens_k and total length come from, and what the graph outputs. */
interface GraphIo {
  inputIds: string;
  past: KvPair[];
  seqlensK: string;
  totalLength: string;
  finish(final: string): void;
}

/** transformers.js: int64 ids, attention mask, growing past/present, num_logits_to_keep. */
function transformersIo(ctx: LlamaGraphContext): GraphIo {
  const { g } = ctx;
  const inputs = ctx.declareInputs(false);
  // GroupQueryAttention's int32 lengths: seqlens_k = (number of attended tokens) - 1 per row, and
  // the total sequence length. Rotary positions are derived from them inside the kernel, which is
  // why this graph has no position_ids input (and assumes right padding, runtime-notes 6).
  const attended = g.op("ReduceSum", [inputs.attentionMask, g.int64([1])], { keepdims: 0 });
  const seqlensK = g.op("Cast", [g.op("Sub", [attended, g.int64([1], true)])], { to: DataType.INT32 });
  const totalLength = g.op("Cast", [g.op("Gather", [g.op("Shape", [inputs.attentionMask]), g.int64([1], true)], { axis: 0 })], {
    to: DataType.INT32,
  });
  return {
    inputIds: inputs.inputIds,
    past: inputs.past,
    seqlensK,
    totalLength,
    finish: (final) => ctx.declareOutputs(ctx.lmHead(ctx.keepLastPositions(final, inputs.numLogitsToKeep))),
  };
}

/**
 * static-kv: int32 ids [1, S], host-side lengths, fixed-capacity caches and the token ring; outputs
 * logits of the last position, the greedy next token and the updated ring.
 */
function staticKvIo(ctx: LlamaGraphContext): GraphIo {
  const { g, args, hd, io } = ctx;
  const inputIds = g.input("input_ids", DataType.INT32, [1, "sequence_length"]);
  const seqlensK = g.input("seqlens_k", DataType.INT32, [1]);
  const totalLength = g.input("total_sequence_length", DataType.INT32, []);
  const ring = g.input("token_ring", DataType.INT32, [TOKEN_RING_SIZE]);
  const slot = g.input("ring_slot", DataType.INT32, [1]);
  const kvDims = [1, args.n_kv_heads, STATIC_KV_CAPACITY_DIM, hd];
  const past: KvPair[] = [];
  for (let i = 0; i < args.n_layers; i++) {
    past.push({ key: g.input(`past_key_values.${i}.key`, io, kvDims), value: g.input(`past_key_values.${i}.value`, io, kvDims) });
  }
  const int32 = (values: number[], dims: number[]) => g.constant(DataType.INT32, dims, Int32Array.from(values), "i32");
  return {
    inputIds,
    past,
    seqlensK,
    totalLength,
    finish: (final) => {
      const last = g.op("Slice", [final, g.int64([-1]), g.int64([BigInt("9223372036854775807")]), g.int64([1])]); // [1, 1, H]
      const logits = ctx.lmHead(last); // [1, 1, V]
      // Greedy token = the lowest index holding the maximum (what an argmax over the downloaded
      // logits picks). Built from reductions over the whole row rather than ArgMax, whose WebGPU
      // kernel runs one thread per output element, i.e. a single thread over 128k logits.
      const best = g.op("ReduceMax", [logits], { keepdims: 1 }); // [1, 1, 1]
      const isBest = g.op("Equal", [logits, best]);
      const vocabIndex = int32(Array.from({ length: args.vocab_size }, (_, i) => i), [args.vocab_size]);
      const candidates = g.op("Where", [isBest, vocabIndex, int32([INT32_MAX], [])]); // [1, 1, V]
      g.node("ReduceMin", [candidates, g.int64([2])], { attrs: { keepdims: 0 }, outputs: ["next_token"] }); // [1, 1]
      // token_ring_next = token_ring with next_token at ring_slot. The caller binds it to a second
      // buffer (one kernel may not read and write the same buffer) and alternates the two.
      const ringIndex = int32(Array.from({ length: TOKEN_RING_SIZE }, (_, i) => i), [TOKEN_RING_SIZE]);
      const atSlot = g.op("Equal", [ringIndex, slot]);
      g.node("Where", [atSlot, g.op("Reshape", ["next_token", g.int64([1])]), ring], { outputs: ["token_ring_next"] });
      g.output(logits, io, [1, 1, args.vocab_size]);
      g.output("next_token", DataType.INT32, [1, 1]);
      g.output("token_ring_next", DataType.INT32, [TOKEN_RING_SIZE]);
      for (let i = 0; i < args.n_layers; i++) {
        const p = ctx.presentNames(i);
        g.output(p.key, io, kvDims);
        g.output(p.value, io, kvDims);
      }
    },
  };
}

export function buildGpuGraph(ctx: LlamaGraphContext, graphInterface: GpuGraphInterface = "transformers"): void {
  const { g, args, hd } = ctx;
  if (hd % 16 !== 0) {
    // onnxruntime's GroupQueryAttention rejects other sizes at run time ("head_size shall be a multiple of 16").
    throw new Error(`gpu flavour: GroupQueryAttention needs head_dim divisible by 16, this model has ${hd}; use the standard flavour`);
  }
  const io = graphInterface === "static-kv" ? staticKvIo(ctx) : transformersIo(ctx);
  const { seqlensK, totalLength } = io;
  const epsilon = float(args.norm_eps);
  const rope = ctx.ropeCaches();

  const skipNorm = (residual: string, update: string, weight: string, keepSum: boolean) => {
    const [normed, , , sum] = g.node("SkipSimplifiedLayerNormalization", [residual, update, weight], {
      domain: MICROSOFT_DOMAIN,
      attrs: { epsilon },
      outputs: [g.fresh("skip_norm"), "", "", keepSum ? g.fresh("residual") : ""],
    });
    return { normed, sum };
  };

  let residual = ctx.embed(io.inputIds);
  let pending: string | undefined; // the previous layer's MLP output, not yet added to the residual
  for (let i = 0; i < args.n_layers; i++) {
    const w = layerWeightNames(i);
    const prefix = `model.layers.${i}`;
    const inputNorm = ctx.normWeight(`${prefix}.input_layernorm.weight`, w.inputNorm);
    let h: string;
    if (pending === undefined) {
      h = g.op("SimplifiedLayerNormalization", [residual, inputNorm], { axis: -1, epsilon, stash_type: 1 });
    } else {
      const s = skipNorm(residual, pending, inputNorm, true);
      h = s.normed;
      residual = s.sum;
    }

    const qkv = ctx.linear(h, `${prefix}.self_attn.qkv_proj`, [
      { name: w.q, shape: [args.n_heads * hd, args.dim] },
      { name: w.k, shape: [args.n_kv_heads * hd, args.dim] },
      { name: w.v, shape: [args.n_kv_heads * hd, args.dim] },
    ]);
    const present = ctx.presentNames(i);
    const [attention] = g.node(
      "GroupQueryAttention",
      [qkv, "", "", io.past[i].key, io.past[i].value, seqlensK, totalLength, rope.cos, rope.sin],
      {
        domain: MICROSOFT_DOMAIN,
        attrs: {
          num_heads: args.n_heads,
          kv_num_heads: args.n_kv_heads,
          scale: float(1 / Math.sqrt(hd)),
          local_window_size: -1,
          softcap: float(0),
          do_rotary: 1,
          rotary_interleaved: 0,
        },
        outputs: [g.fresh("attention"), present.key, present.value],
      },
    );
    const o = ctx.linear(attention, `${prefix}.self_attn.o_proj`, [{ name: w.o, shape: [args.dim, args.n_heads * hd] }]);
    const post = skipNorm(residual, o, ctx.normWeight(`${prefix}.post_attention_layernorm.weight`, w.postAttentionNorm), true);
    residual = post.sum;
    pending = ctx.mlp(post.normed, w, i);
  }

  const final = skipNorm(residual, pending!, ctx.normWeight("model.norm.weight", FINAL_NORM), false).normed;
  io.finish(final);
}
