// The portable graph: default-domain ONNX ops only (plus nothing from com.microsoft), so it runs on
// onnxruntime's CPU EP and any other EP. It mirrors the reference forward pass step by step:
// RMSNorm in float32, rotate-half RoPE from position_ids, grouped-query attention with an explicit
// causal + padding mask, SwiGLU, last-token logits.
import { layerWeightNames, FINAL_NORM } from "../weights.js";
import type { LlamaGraphContext } from "./graph-common.js";
import { DataType } from "./onnx-proto.js";

// Additive mask value for disallowed positions: float32's lowest finite value (as Hugging Face
// uses), so a fully masked row (a left-pad query) softmaxes to uniform instead of NaN.
const MASKED = -3.4028234663852886e38;

export function buildStandardGraph(ctx: LlamaGraphContext): string {
  const { g, args, hd } = ctx;
  const inputs = ctx.declareInputs(true);
  const positionIds = inputs.positionIds!;
  const nRep = args.n_heads / args.n_kv_heads;

  // ---- shared per-step tensors ----
  // Attention bias [B, 1, 1, S, T]: query i (absolute position T - S + i) may see key j when
  // j <= T - S + i and attention_mask[b, j] = 1.
  const totalLength = g.op("Shape", [inputs.attentionMask], { start: 1, end: 2 });
  const newLength = g.op("Shape", [inputs.inputIds], { start: 1, end: 2 });
  const pastLength = g.op("Sub", [totalLength, newLength]);
  const toScalar = (x: string) => g.op("Squeeze", [x, g.int64([0])]);
  const one = g.int64([1], true);
  const queryPositions = g.op("Range", [toScalar(pastLength), toScalar(totalLength), one]); // [S]
  const keyPositions = g.op("Range", [g.int64([0], true), toScalar(totalLength), one]); // [T]
  const causal = g.op("LessOrEqual", [
    g.op("Unsqueeze", [keyPositions, g.int64([0])]),
    g.op("Unsqueeze", [queryPositions, g.int64([1])]),
  ]); // [S, T]
  const keyPresent = g.op("Unsqueeze", [g.op("Cast", [inputs.attentionMask], { to: DataType.BOOL }), g.int64([1])]); // [B, 1, T]
  const allowed = g.op("And", [causal, keyPresent]); // [B, S, T]
  const bias = g.op("Unsqueeze", [g.op("Where", [allowed, ctx.scalar32(0), ctx.scalar32(MASKED)]), g.int64([1, 2])]);

  // RoPE tables for this step's positions, [B, 1, S, hd] (rotate-half: both halves share angles).
  const rope = ctx.ropeCaches();
  const angles = (table: string) => {
    const half = g.op("Gather", [table, positionIds]); // [B, S, hd/2]
    return g.op("Unsqueeze", [g.op("Concat", [half, half], { axis: -1 }), g.int64([1])]);
  };
  const cos = angles(rope.cos);
  const sin = angles(rope.sin);
  const applyRope = (x: string) => {
    // x · cos + rotate_half(x) · sin, rotate_half(x) = concat(-x2, x1)
    const [x1, x2] = g.node("Split", [x], { attrs: { axis: -1, num_outputs: 2 }, outputCount: 2 });
    const rotated = g.op("Concat", [g.op("Neg", [x2]), x1], { axis: -1 });
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])]);
  };
  const scale = ctx.scalar(1 / Math.sqrt(hd));

  const rmsNorm = (x: string, weight: string) => {
    // In float32 whatever the io type, as the reference does; onnxruntime fuses this pattern.
    const x32 = ctx.io === DataType.FLOAT ? x : g.op("Cast", [x], { to: DataType.FLOAT });
    const meanSquare = g.op("ReduceMean", [g.op("Pow", [x32, ctx.scalar32(2)]), g.int64([-1])], { keepdims: 1 });
    const normed = g.op("Div", [x32, g.op("Sqrt", [g.op("Add", [meanSquare, ctx.scalar32(args.norm_eps)])])]);
    const back = ctx.io === DataType.FLOAT ? normed : g.op("Cast", [normed], { to: ctx.io });
    return g.op("Mul", [back, weight]);
  };

  // ---- layers ----
  let x = ctx.embed(inputs.inputIds);
  for (let i = 0; i < args.n_layers; i++) {
    const w = layerWeightNames(i);
    const prefix = `model.layers.${i}`;
    const h = rmsNorm(x, ctx.normWeight(`${prefix}.input_layernorm.weight`, w.inputNorm));

    const heads = (y: string, n: number) =>
      g.op("Transpose", [g.op("Reshape", [y, g.int64([0, 0, n, hd])])], { perm: [0, 2, 1, 3] }); // [B, n, S, hd]
    const q = applyRope(heads(ctx.linear(h, `${prefix}.self_attn.q_proj`, [{ name: w.q, shape: [args.n_heads * hd, args.dim] }]), args.n_heads));
    const kvShape = [args.n_kv_heads * hd, args.dim];
    const k = applyRope(heads(ctx.linear(h, `${prefix}.self_attn.k_proj`, [{ name: w.k, shape: kvShape }]), args.n_kv_heads));
    const v = heads(ctx.linear(h, `${prefix}.self_attn.v_proj`, [{ name: w.v, shape: kvShape }]), args.n_kv_heads);

    const present = ctx.presentNames(i);
    g.node("Concat", [inputs.past[i].key, k], { attrs: { axis: 2 }, outputs: [present.key] }); // [B, kvH, T, hd]
    g.node("Concat", [inputs.past[i].value, v], { attrs: { axis: 2 }, outputs: [present.value] });

    // Grouped-query attention without copying kv heads: query heads are viewed as [kvH, nRep]
    // (query head j uses kv head floor(j / nRep)) and MatMul broadcasts over the group axis.
    const grouped = g.op("Reshape", [g.op("Mul", [q, scale]), g.int64([0, args.n_kv_heads, nRep, -1, hd])]); // [B, kvH, nRep, S, hd]
    const keysT = g.op("Unsqueeze", [g.op("Transpose", [present.key], { perm: [0, 1, 3, 2] }), g.int64([2])]); // [B, kvH, 1, hd, T]
    let scores = g.op("MatMul", [grouped, keysT]); // [B, kvH, nRep, S, T]
    if (ctx.io !== DataType.FLOAT) scores = g.op("Cast", [scores], { to: DataType.FLOAT });
    let probs = g.op("Softmax", [g.op("Add", [scores, bias])], { axis: -1 });
    if (ctx.io !== DataType.FLOAT) probs = g.op("Cast", [probs], { to: ctx.io });
    const context = g.op("MatMul", [probs, g.op("Unsqueeze", [present.value, g.int64([2])])]); // [B, kvH, nRep, S, hd]
    const merged = g.op("Reshape", [
      g.op("Transpose", [g.op("Reshape", [context, g.int64([0, args.n_heads, -1, hd])])], { perm: [0, 2, 1, 3] }),
      g.int64([0, 0, args.n_heads * hd]),
    ]); // [B, S, nH·hd]
    const attention = ctx.linear(merged, `${prefix}.self_attn.o_proj`, [{ name: w.o, shape: [args.dim, args.n_heads * hd] }]);
    x = g.op("Add", [x, attention]);

    const h2 = rmsNorm(x, ctx.normWeight(`${prefix}.post_attention_layernorm.weight`, w.postAttentionNorm));
    x = g.op("Add", [x, ctx.mlp(h2, w, i)]);
  }

  // Positions are independent after the last layer, so drop unwanted ones before the final norm.
  const kept = ctx.keepLastPositions(x, inputs.numLogitsToKeep);
  const logits = ctx.lmHead(rmsNorm(kept, ctx.normWeight("model.norm.weight", FINAL_NORM)));
  ctx.declareOutputs(logits);
  return logits;
}
