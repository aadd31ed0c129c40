// A small DSL for writing ONNX graphs: typed graph inputs/outputs, nodes with attributes, inline
// constants, and initializers whose bytes are supplied later (external data, written tensor by
// tensor). It knows nothing about Llama.
import {
  AttributeType,
  DataType,
  TENSOR_LOCATION_EXTERNAL,
  type AttributeProtoObject,
  type DataTypeCode,
  type DimensionObject,
  type ModelProtoObject,
  type NodeProtoObject,
  type StringStringEntry,
  type TensorProtoObject,
  type ValueInfoProtoObject,
} from "./onnx-proto.js";

/** A dimension: a number, or a symbolic name such as "batch_size". */
export type Dim = number | string;

/** A float attribute (a bare number is an int attribute). */
export interface FloatAttr {
  float: number;
}
export const float = (value: number): FloatAttr => ({ float: value });

export type AttrValue = number | number[] | string | FloatAttr | TensorProtoObject;

export interface NodeOptions {
  domain?: string;
  attrs?: Record<string, AttrValue>;
  /** Output names; "" leaves an optional output unused. Defaults to one fresh name. */
  outputs?: string[];
  /** Number of fresh outputs when `outputs` is not given. */
  outputCount?: number;
}

/** An initializer declared in the graph whose bytes are written to external data later. */
export interface ExternalInitializer {
  name: string;
  dataType: DataTypeCode;
  dims: number[];
}

export const MICROSOFT_DOMAIN = "com.microsoft";

/** Bytes per element (INT4 and UINT4 counted by `byteLength`). */
function elementBytes(dataType: DataTypeCode): number {
  switch (dataType) {
    case DataType.FLOAT:
    case DataType.INT32:
      return 4;
    case DataType.INT64:
      return 8;
    case DataType.FLOAT16:
      return 2;
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.BOOL:
      return 1;
    default:
      throw new Error(`no fixed element size for data type ${dataType}`);
  }
}

/** Storage size in bytes of a dense tensor. */
export function byteLength(dataType: DataTypeCode, dims: number[]): number {
  const count = dims.reduce((a, b) => a * b, 1);
  if (dataType === DataType.INT4 || dataType === DataType.UINT4) return Math.ceil(count / 2);
  return count * elementBytes(dataType);
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export class GraphBuilder {
  private readonly nodes: NodeProtoObject[] = [];
  private readonly inlineInitializers: TensorProtoObject[] = [];
  private readonly externals: ExternalInitializer[] = [];
  private readonly inputs: ValueInfoProtoObject[] = [];
  private readonly outputs: ValueInfoProtoObject[] = [];
  /** Names handed out or defined (fresh names are reserved before a node defines them). */
  private readonly used = new Set<string>();
  /** Names defined by a graph input, a node output or an initializer. */
  private readonly produced = new Set<string>();
  private readonly constantCache = new Map<string, string>();
  private readonly counters = new Map<string, number>();

  /** A name not used yet, derived from `hint`. */
  fresh(hint: string): string {
    let n = this.counters.get(hint) ?? 0;
    let name = n === 0 ? hint : `${hint}_${n}`;
    while (this.used.has(name)) name = `${hint}_${++n}`;
    this.counters.set(hint, n + 1);
    this.used.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.produced.has(name)) throw new Error(`graph value "${name}" is defined twice`);
    this.used.add(name);
    this.produced.add(name);
    return name;
  }

  input(name: string, dataType: DataTypeCode, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), dataType, dims));
    return name;
  }

  /** Declares `name` (already produced by a node) as a graph output. */
  output(name: string, dataType: DataTypeCode, dims: Dim[]): void {
    if (!this.produced.has(name)) throw new Error(`graph output "${name}" is never produced`);
    this.outputs.push(valueInfo(name, dataType, dims));
  }

  /** Adds a node and returns its output names. Inputs may be "" for omitted optional inputs. */
  node(opType: string, inputs: string[], options: NodeOptions = {}): string[] {
    const prefix = opType.replace(/[^A-Za-z0-9]/g, "").toLowerCase();
    const outputs = options.outputs
      ? options.outputs.map((o) => (o === "" ? "" : this.claim(o)))
      : Array.from({ length: options.outputCount ?? 1 }, () => this.claim(this.fresh(prefix)));
    const attribute = Object.entries(options.attrs ?? {}).map(([name, value]) => attributeProto(name, value));
    this.nodes.push({
      name: `${opType}_${this.nodes.length}`,
      opType,
      domain: options.domain ?? "",
      input: inputs,
      output: outputs,
      attribute,
    });
    return outputs;
  }

  /** Adds a single-output node and returns its output name. */
  op(opType: string, inputs: string[], attrs?: Record<string, AttrValue>, domain?: string): string {
    return this.node(opType, inputs, { attrs, domain })[0];
  }

  /** An inline constant initializer; identical small constants are shared. */
  constant(dataType: DataTypeCode, dims: number[], data: ArrayBufferView, hint = "const"): string {
    const raw = bytesOf(data);
    const key = raw.length <= 64 ? `${dataType}|${dims.join(",")}|${Array.from(raw).join(",")}` : undefined;
    const cached = key === undefined ? undefined : this.constantCache.get(key);
    if (cached) return cached;
    if (raw.length !== byteLength(dataType, dims)) {
      throw new Error(`constant ${hint}: ${raw.length} bytes for dims [${dims}] of type ${dataType}`);
    }
    const name = this.claim(this.fresh(hint));
    this.inlineInitializers.push({ name, dims, dataType, rawData: raw.slice() });
    if (key !== undefined) this.constantCache.set(key, name);
    return name;
  }

  /** int64 constant: a 1-D tensor, or a scalar when `scalar` is set. */
  int64(values: number[] | bigint[], scalar = false): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.constant(DataType.INT64, scalar ? [] : [data.length], data, "i64");
  }

  /** A float scalar (or 1-D tensor) stored as FLOAT or FLOAT16 bits supplied by `encode16`. */
  floatConstant(dataType: DataTypeCode, values: number[], encode16: (v: number) => number, scalar = true): string {
    const dims = scalar ? [] : [values.length];
    if (dataType === DataType.FLOAT16) return this.constant(dataType, dims, Uint16Array.from(values, encode16), "f16");
    return this.constant(DataType.FLOAT, dims, Float32Array.from(values), "f32");
  }

  /** Declares an initializer whose bytes are written to external data later. */
  external(name: string, dataType: DataTypeCode, dims: number[]): string {
    this.externals.push({ name: this.claim(name), dataType, dims });
    return name;
  }

  get externalInitializers(): readonly ExternalInitializer[] {
    return this.externals;
  }

  /**
   * The ModelProto. `locate` gives each external initializer's `external_data` entries
   * (location, offset, length).
   */
  toModel(options: {
    graphName: string;
    opsets: Record<string, number>;
    producerName: string;
    producerVersion: string;
    docString?: string;
    metadata?: Record<string, string>;
    locate: (name: string) => StringStringEntry[];
  }): ModelProtoObject {
    const external: TensorProtoObject[] = this.externals.map((e) => ({
      name: e.name,
      dims: e.dims,
      dataType: e.dataType,
      dataLocation: TENSOR_LOCATION_EXTERNAL,
      externalData: options.locate(e.name),
    }));
    return {
      irVersion: 10,
      opsetImport: Object.entries(options.opsets).map(([domain, version]) => ({ domain, version })),
      producerName: options.producerName,
      producerVersion: options.producerVersion,
      docString: options.docString ?? "",
      metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: options.graphName,
        node: this.nodes,
        initializer: [...this.inlineInitializers, ...external],
        input: this.inputs,
        output: this.outputs,
      },
    };
  }

  /** Operator counts by (domain-qualified) type: for summaries and tests. */
  opCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const n of this.nodes) {
      const key = n.domain ? `${n.domain}.${n.opType}` : n.opType;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }
}

function valueInfo(name: string, elemType: DataTypeCode, dims: Dim[]): ValueInfoProtoObject {
  const dim: DimensionObject[] = dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function attributeProto(name: string, value: AttrValue): AttributeProtoObject {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an int (wrap floats with float())`);
    return { name, type: AttributeType.INT, i: value };
  }
  if (typeof value === "string") return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if ("float" in value) return { name, type: AttributeType.FLOAT, f: value.float };
  return { name, type: AttributeType.TENSOR, t: value };
}
