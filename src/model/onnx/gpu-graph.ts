// The GPU graph: the onnxruntime-genai Llama layout (runtime-notes 10.3) built from onnxruntime's
// contrib ops, which have fused WebGPU and CUDA kernels: GroupQueryAttention with rotary applied
// inside and packed QKV, SkipSimplifiedLayerNormalization (residual add + RMSNorm in one kernel),
// MatMulNBits for 4-bit weights and GatherBlockQuantized for 4-bit embeddings.
//
// Differences from the genai builder output: past/present dims are concrete (kv heads, head_dim),
// and a num_logits_to_keep input replaces prune_lm_head, both as transformers.js 4.3.1 needs.
import { FINAL_NORM, layerWeightNames } from "../weights.js";
import { float } from "./graph-builder.js";
import { MICROSOFT_DOMAIN } from "./graph-builder.js";
import type { LlamaGraphContext } from "./graph-common.js";
import { DataType } from "./onnx-proto.js";

export function buildGpuGraph(ctx: LlamaGraphContext): string {
  const { g, args, hd } = ctx;
  if (hd % 16 !== 0) {
    // onnxruntime's GroupQueryAttention rejects other sizes at run time ("head_size shall be a multiple of 16").
    throw new Error(`gpu flavour: GroupQueryAttention needs head_dim divisible by 16, this model has ${hd}; use the standard flavour`);
  }
  const inputs = ctx.declareInputs(false);
  const epsilon = float(args.norm_eps);

  // GroupQueryAttention's int32 lengths: seqlens_k = (number of attended tokens) - 1 per row, and
  // the total sequence length. Rotary positions are derived from them inside the kernel, which is
  // why this graph has no position_ids input (and assumes right padding, runtime-notes 6).
  const attended = g.op("ReduceSum", [inputs.attentionMask, g.int64([1])], { keepdims: 0 });
  const seqlensK = g.op("Cast", [g.op("Sub", [attended, g.int64([1], true)])], { to: DataType.INT32 });
  const totalLength = g.op("Cast", [g.op("Gather", [g.op("Shape", [inputs.attentionMask]), g.int64([1], true)], { axis: 0 })], {
    to: DataType.INT32,
  });
  const rope = ctx.ropeCaches();

  const skipNorm = (residual: string, update: string, weight: string, keepSum: boolean) => {
    const [normed, , , sum] = g.node("SkipSimplifiedLayerNormalization", [residual, update, weight], {
      domain: MICROSOFT_DOMAIN,
      attrs: { epsilon },
      outputs: [g.fresh("skip_norm"), "", "", keepSum ? g.fresh("residual") : ""],
    });
    return { normed, sum };
  };

  let residual = ctx.embed(inputs.inputIds);
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
      [qkv, "", "", inputs.past[i].key, inputs.past[i].value, seqlensK, totalLength, rope.cos, rope.sin],
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
  const logits = ctx.lmHead(ctx.keepLastPositions(final, inputs.numLogitsToKeep));
  ctx.declareOutputs(logits);
  return logits;
}
