// The subset of the ONNX protobuf schema that the builder writes (and tests read back).
//
// Message and field names and numbers are copied from the official schema, onnx/onnx.proto3 in
// https://github.com/onnx/onnx (Copyright (c) ONNX Project Contributors, Apache-2.0). Only the
// fields used here are declared; the field numbers and wire types are what make the bytes
// identical to what the full schema would produce, and decoders skip fields they do not know.
import protobuf from "protobufjs";

const ONNX_SUBSET_PROTO = `
syntax = "proto3";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10;
    SPARSE_TENSOR = 11; SPARSE_TENSORS = 12; TYPE_PROTO = 13; TYPE_PROTOS = 14;
  }
  string name = 1;
  AttributeType type = 20;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
}

message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
  string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  string domain = 7;
  repeated AttributeProto attribute = 5;
  string doc_string = 6;
}

message ModelProto {
  int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  string doc_string = 6;
  GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}

message StringStringEntryProto {
  string key = 1;
  string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  string name = 8;
  string doc_string = 12;
  bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  enum DataLocation { DEFAULT = 0; EXTERNAL = 1; }
  DataLocation data_location = 14;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  string denotation = 6;
}

message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}
`;

/** `TensorProto.DataType` values (official numbering). */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  UINT4: 21,
  INT4: 22,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** `AttributeProto.AttributeType` values used by the builder. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** `TensorProto.DataLocation.EXTERNAL`. */
export const TENSOR_LOCATION_EXTERNAL = 1;

// Plain-object mirrors of the messages, as protobufjs' `fromObject` takes them (field names are
// the camel-cased proto names, protobufjs' default).
export interface StringStringEntry {
  key: string;
  value: string;
}
export interface TensorProtoObject {
  name: string;
  dims: number[];
  dataType: DataTypeCode;
  rawData?: Uint8Array;
  externalData?: StringStringEntry[];
  dataLocation?: number;
}
export interface AttributeProtoObject {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProtoObject;
  floats?: number[];
  ints?: number[];
}
export interface NodeProtoObject {
  name: string;
  opType: string;
  domain: string;
  input: string[];
  output: string[];
  attribute: AttributeProtoObject[];
}
export interface DimensionObject {
  dimValue?: number;
  dimParam?: string;
}
export interface ValueInfoProtoObject {
  name: string;
  type: { tensorType: { elemType: DataTypeCode; shape: { dim: DimensionObject[] } } };
}
export interface GraphProtoObject {
  name: string;
  node: NodeProtoObject[];
  initializer: TensorProtoObject[];
  input: ValueInfoProtoObject[];
  output: ValueInfoProtoObject[];
  docString?: string;
}
export interface ModelProtoObject {
  irVersion: number;
  opsetImport: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: GraphProtoObject;
  metadataProps?: StringStringEntry[];
}

let modelType: protobuf.Type | undefined;
function modelProtoType(): protobuf.Type {
  modelType ??= protobuf.parse(ONNX_SUBSET_PROTO).root.lookupType("onnx.ModelProto");
  return modelType;
}

/** Serialises a model; throws with protobufjs' description when a field has the wrong type. */
export function encodeModel(model: ModelProtoObject): Uint8Array {
  const type = modelProtoType();
  const problem = type.verify(model);
  if (problem) throw new Error(`invalid ONNX ModelProto: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}

/** Parses a serialised model back into plain objects (int64 fields as numbers). */
export function decodeModel(bytes: Uint8Array): ModelProtoObject {
  const type = modelProtoType();
  return type.toObject(type.decode(bytes), { longs: Number, enums: Number, arrays: true, defaults: true }) as ModelProtoObject;
}
