// buildModelFolder: graphs for the requested dtypes, their weights streamed into .onnx_data files
// (each source tensor read once for all dtypes), then the .onnx protos and the folder's JSON files.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Tensor, WeightSource } from "../tensor.js";
import { ExternalDataWriter } from "./external-data.js";
import { GRAPH_FLAVOURS, LlamaGraphContext, MODEL_DTYPES, onnxFileName, type GraphFlavour, type ModelDtype } from "./graph-common.js";
import { buildGpuGraph, type GpuGraphInterface } from "./gpu-graph.js";
import { defaultTokenizerDir, writeConfig, writeGenerationConfig, writeTokenizer } from "./model-folder.js";
import { encodeModel, type StringStringEntry } from "./onnx-proto.js";
import { buildStandardGraph } from "./standard-graph.js";
import { checkSources, type WeightRecipe } from "./weight-plan.js";

/** Default longest sequence: the model's own, capped at Llama 3.1's 128k. */
export const MAX_ROPE_POSITIONS = 131072;

export interface BuildProgress {
  stage: string;
  done: number;
  total: number;
}

export interface BuildModelOptions {
  outDir: string;
  weights: WeightSource;
  flavour: GraphFlavour;
  /** One graph per dtype; the first is the folder's default (config.json `transformers.js_config.dtype`). */
  dtypes: ModelDtype[];
  /** Folder with tokenizer.json + tokenizer_config.json; default: the registry package; null: no tokenizer files. */
  tokenizerDir?: string | null;
  /** Replaces the chat template of the copied tokenizer_config.json. */
  chatTemplate?: string;
  /** Rope cache length, i.e. the longest sequence the graph accepts (default min(max_seq_len, 131072)). */
  maxPositions?: number;
  /** MatMulNBits accuracy_level of gpu-flavour q4 graphs (default 4, as onnxruntime-genai; 0 = compute in the io float type). */
  accuracyLevel?: number;
  /**
   * gpu flavour: also write, per dtype, the static-KV decoder graph (`staticKvFileName`) for
   * src/gpu/fast-decoder. It reads the same initializers from the same .onnx_data file.
   */
  staticKv?: boolean;
  onProgress?: (p: BuildProgress) => void;
}

export interface BuiltModelFolder {
  outDir: string;
  /** Paths relative to outDir. */
  files: string[];
}

function validate(o: BuildModelOptions): void {
  if (!o || typeof o !== "object") throw new Error("buildModelFolder: options must be an object");
  if (typeof o.outDir !== "string" || o.outDir === "") throw new Error("outDir: expected a folder path");
  if (!o.weights || typeof o.weights.read !== "function") throw new Error("weights: expected a WeightSource");
  if (!GRAPH_FLAVOURS.includes(o.flavour)) {
    throw new Error(`flavour: expected one of ${GRAPH_FLAVOURS.join(", ")}, got ${JSON.stringify(o.flavour)}`);
  }
  if (!Array.isArray(o.dtypes) || o.dtypes.length === 0) throw new Error(`dtypes: expected a non-empty list of ${MODEL_DTYPES.join(", ")}`);
  for (const d of o.dtypes) {
    if (!MODEL_DTYPES.includes(d)) throw new Error(`dtypes: unknown dtype ${JSON.stringify(d)} (expected ${MODEL_DTYPES.join(", ")})`);
  }
  if (new Set(o.dtypes).size !== o.dtypes.length) throw new Error(`dtypes: ${o.dtypes.join(",")} lists a dtype twice`);
  if (o.maxPositions !== undefined && !(Number.isInteger(o.maxPositions) && o.maxPositions >= 1)) {
    throw new Error(`maxPositions: expected a positive integer, got ${o.maxPositions}`);
  }
  if (o.staticKv && o.flavour !== "gpu") throw new Error("staticKv: the static-KV decoder graph exists only in the gpu flavour");
  if (o.accuracyLevel !== undefined && ![0, 1, 2, 3, 4].includes(o.accuracyLevel)) {
    throw new Error(`accuracyLevel: expected 0, 1, 2, 3 or 4, got ${o.accuracyLevel}`);
  }
}

/** The static-KV decoder graph's file beside `onnxFileName(dtype)`; transformers.js never loads it. */
export function staticKvFileName(dtype: ModelDtype): string {
  return onnxFileName(dtype).replace(/\.onnx$/, ".static-kv.onnx");
}

/** Builds the graph of one dtype (no weights written yet). */
export function buildGraph(
  weights: WeightSource,
  flavour: GraphFlavour,
  dtype: ModelDtype,
  options: { maxPositions: number; accuracyLevel: number },
  graphInterface: GpuGraphInterface = "transformers",
): LlamaGraphContext {
  const ctx = new LlamaGraphContext(weights.args, flavour, dtype, options);
  if (flavour === "gpu") buildGpuGraph(ctx, graphInterface);
  else if (graphInterface !== "transformers") throw new Error(`the ${graphInterface} interface exists only in the gpu flavour`);
  else buildStandardGraph(ctx);
  return ctx;
}

/** Checks that `variant` declares only external initializers `base` has, with the same type and shape. */
function checkSharedInitializers(base: LlamaGraphContext, variant: LlamaGraphContext): void {
  const declared = new Map(base.g.externalInitializers.map((e) => [e.name, e]));
  for (const e of variant.g.externalInitializers) {
    const b = declared.get(e.name);
    if (!b || b.dataType !== e.dataType || b.dims.join(",") !== e.dims.join(",")) {
      throw new Error(`internal: initializer ${e.name} of the static-KV graph differs from the transformers.js graph's`);
    }
  }
}

/** Groups recipes of all graphs by the source tensors they read, in first-use order. */
function groupBySources(graphs: { ctx: LlamaGraphContext; writer: ExternalDataWriter }[]) {
  const groups = new Map<string, { sources: string[]; items: { recipe: WeightRecipe; graph: number }[] }>();
  graphs.forEach(({ ctx }, graph) => {
    for (const recipe of ctx.plan.recipes) {
      // Computed tensors (no sources) get a group each; they do not share reads.
      const key = recipe.sources.length ? recipe.sources.map((s) => s.name).join("|") : `computed:${recipe.outputs.join("|")}`;
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { sources: recipe.sources.map((s) => s.name), items: [] }));
      group.items.push({ recipe, graph });
    }
  });
  return [...groups.values()];
}

export async function buildModelFolder(o: BuildModelOptions): Promise<BuiltModelFolder> {
  validate(o);
  const args = o.weights.args;
  const maxPositions = o.maxPositions ?? Math.min(args.max_seq_len, MAX_ROPE_POSITIONS);
  const accuracyLevel = o.accuracyLevel ?? 4;
  const progress = o.onProgress ?? (() => {});

  // Graphs first: they are cheap, and validating every source tensor before writing anything
  // turns a wrong checkpoint into an immediate error instead of a half-written folder.
  const onnxDir = join(o.outDir, "onnx");
  const graphs = o.dtypes.map((dtype) => {
    const ctx = buildGraph(o.weights, o.flavour, dtype, { maxPositions, accuracyLevel });
    checkSources(o.weights, ctx.plan.recipes);
    const staticKv = o.staticKv ? buildGraph(o.weights, o.flavour, dtype, { maxPositions, accuracyLevel }, "static-kv") : undefined;
    if (staticKv) checkSharedInitializers(ctx, staticKv);
    return { dtype, ctx, file: onnxFileName(dtype), staticKv };
  });
  mkdirSync(onnxDir, { recursive: true });

  const opened = graphs.map((g) => ({ ...g, writer: new ExternalDataWriter(join(onnxDir, `${g.file}_data`), `${g.file}_data`) }));
  const locations = graphs.map(() => new Map<string, StringStringEntry[]>());
  try {
    const groups = groupBySources(opened);
    let done = 0;
    for (const group of groups) {
      const tensors: Tensor[] = group.sources.map((name) => o.weights.read(name));
      for (const { recipe, graph } of group.items) {
        const { writer } = opened[graph];
        const payloads = recipe.encode(tensors);
        recipe.outputs.forEach((name, i) => locations[graph].set(name, writer.entries(writer.append(payloads[i]))));
      }
      progress({ stage: "weights", done: ++done, total: groups.length });
      // Yield between tensors so progress output and signals get through on long builds.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    for (const g of opened) g.writer.close();
  }

  const files: string[] = [];
  graphs.forEach(({ dtype, ctx, file, staticKv }, i) => {
    const locate = (name: string) => {
      const entries = locations[i].get(name);
      if (!entries) throw new Error(`internal: initializer ${name} was not written`);
      return entries;
    };
    const protos: [string, LlamaGraphContext, string][] = [[file, ctx, "for transformers.js"]];
    if (staticKv) protos.push([staticKvFileName(dtype), staticKv, "static KV cache, device-side greedy token"]);
    for (const [name, graph, purpose] of protos) {
      const model = graph.g.toModel({
        graphName: "main_graph",
        opsets: { "": 21, "com.microsoft": 1 },
        producerName: "llama-edge",
        producerVersion: "1",
        docString: `Llama decoder with past, ${o.flavour} flavour, ${dtype}, ${purpose}`,
        locate,
      });
      writeFileSync(join(onnxDir, name), encodeModel(model));
      files.push(`onnx/${name}`);
    }
    files.push(`onnx/${file}_data`);
    progress({ stage: "graphs", done: i + 1, total: graphs.length });
  });

  files.push(writeConfig(o.outDir, args, o.dtypes), writeGenerationConfig(o.outDir));
  if (o.tokenizerDir !== null) files.push(...writeTokenizer(o.outDir, o.tokenizerDir ?? defaultTokenizerDir(), o.chatTemplate));
  return { outDir: o.outDir, files };
}
