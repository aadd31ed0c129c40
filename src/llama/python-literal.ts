/**
 * Python literal values: the value model of `ast.literal_eval` results, `literal_eval` itself over the
 * AST of `python-syntax.ts`, and Python `repr()`/`str()` of values (llama-reference.md §2.4 `python_list`
 * serialisation and §2.6 step 5c).
 *
 * Inside this module values keep their Python types (`int` as `bigint`, `float` as `number`, tuples,
 * sets, bytes, complex numbers, dicts with non-string keys); {@link toJsValue} turns them into the plain
 * JavaScript the public API returns.
 */

import type { PyNode } from "./python-syntax.js";
import { PythonError, PythonFloat, pythonFloatRepr, pythonNumberRepr, setOwn } from "./python-json.js";

export class PyBytes {
  constructor(readonly bytes: Uint8Array) {}
}

export class PyComplex {
  constructor(
    readonly real: number,
    readonly imag: number,
  ) {}
}

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export class PySet {
  constructor(readonly items: PyValue[]) {}
}

/** A dict with Python keys (any hashable value), in insertion order. */
export class PyDict {
  constructor(readonly entries: Array<[PyValue, PyValue]>) {}
}

class PyEllipsis {
  toString(): string {
    return "Ellipsis";
  }
}
export const PY_ELLIPSIS = new PyEllipsis();

/**
 * A Python value: `null` is None, `boolean` bool, `bigint` int, `number` float, `string` str, a JS array
 * a list, and the classes above the rest.
 */
export type PyValue =
  | null
  | boolean
  | bigint
  | number
  | string
  | PyBytes
  | PyComplex
  | PyTuple
  | PySet
  | PyDict
  | PyEllipsis
  | PyValue[];


export function pythonTypeName(v: PyValue): string {
  if (v === null) return "NoneType";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "bigint") return "int";
  if (typeof v === "number") return "float";
  if (typeof v === "string") return "str";
  if (Array.isArray(v)) return "list";
  if (v instanceof PyBytes) return "bytes";
  if (v instanceof PyComplex) return "complex";
  if (v instanceof PyTuple) return "tuple";
  if (v instanceof PySet) return "set";
  if (v instanceof PyDict) return "dict";
  return "ellipsis";
}

/**
 * A string that is equal for equal Python keys (`1`, `1.0`, `True` and `1+0j` are one key) or throws
 * `TypeError: unhashable type` like Python.
 */
export function pyHashKey(v: PyValue): string {
  if (v === null) return "None";
  if (typeof v === "string") return "s" + v;
  if (typeof v === "boolean") return numericKey(v ? 1n : 0n);
  if (typeof v === "bigint") return numericKey(v);
  if (typeof v === "number") return numericKey(v);
  if (v instanceof PyComplex) return v.imag === 0 ? numericKey(v.real) : `c${v.real},${v.imag}`;
  if (v instanceof PyBytes) return "b" + Array.from(v.bytes).join(",");
  if (v instanceof PyTuple) return "t(" + v.items.map(pyHashKey).join("|") + ")";
  if (v === PY_ELLIPSIS) return "Ellipsis";
  throw new PythonError("TypeError", `unhashable type: '${pythonTypeName(v)}'`);
}

function numericKey(x: bigint | number): string {
  if (typeof x === "bigint") return "n" + x.toString();
  if (Number.isInteger(x)) return "n" + BigInt(x).toString();
  return "f" + String(x);
}

// ---------------------------------------------------------------------------------------------
// literal_eval
// ---------------------------------------------------------------------------------------------

function malformed(node: PyNode | null): never {
  throw new PythonError("ValueError", `malformed node or string: ${node ? describe(node) : "None"}`);
}

function describe(node: PyNode): string {
  return node.type === "Other" ? `<ast.${node.kind}>` : `<ast.${node.type}>`;
}

function convertNum(node: PyNode): bigint | number | PyComplex {
  if (node.type === "Constant") {
    const v = node.value;
    if (typeof v === "bigint" || typeof v === "number" || v instanceof PyComplex) return v;
  }
  return malformed(node);
}

function negate(v: bigint | number | PyComplex): bigint | number | PyComplex {
  if (v instanceof PyComplex) return new PyComplex(-v.real, -v.imag);
  return -v;
}

function convertSignedNum(node: PyNode): bigint | number | PyComplex {
  if (node.type === "UnaryOp" && (node.op === "UAdd" || node.op === "USub")) {
    const operand = convertNum(node.operand);
    return node.op === "UAdd" ? operand : negate(operand);
  }
  return convertNum(node);
}

function toFloat(x: bigint | number): number {
  return typeof x === "bigint" ? Number(x) : x;
}

/** `ast.literal_eval(node)` (Python 3.11), including its `ValueError`/`TypeError` cases. */
export function literalEval(node: PyNode | null): PyValue {
  if (node === null) return malformed(node);
  switch (node.type) {
    case "Constant":
      return node.value;
    case "Tuple":
      return new PyTuple(node.elts.map(literalEval));
    case "List":
      return node.elts.map(literalEval);
    case "Set":
      // set(map(_convert, elts)): each element is hashed before the next one is converted.
      return makeSet(node.elts.map((e) => () => literalEval(e)));
    case "Call":
      if (node.func.type === "Name" && node.func.id === "set" && node.args.length === 0 && node.keywords.length === 0) {
        return new PySet([]);
      }
      break;
    case "Dict":
      // dict(zip(map(_convert, keys), map(_convert, values))): key, value, insert, then the next pair.
      return makeDict(node.keys.map((k, i) => () => [literalEval(k), literalEval(node.values[i])]));
    case "BinOp":
      if (node.op === "+" || node.op === "-") {
        const left = convertSignedNum(node.left);
        const right = convertNum(node.right);
        if (!(left instanceof PyComplex) && right instanceof PyComplex) {
          const l = toFloat(left);
          return node.op === "+" ? new PyComplex(l + right.real, right.imag) : new PyComplex(l - right.real, -right.imag);
        }
      }
      break;
  }
  return convertSignedNum(node);
}

type Lazy<T> = T | (() => T);
const force = <T,>(x: Lazy<T>): T => (typeof x === "function" ? (x as () => T)() : x);

/**
 * `set(items)`: duplicates (by Python equality) collapse, the first one is kept. Items may be thunks,
 * evaluated one at a time in order, so that errors surface in Python's order.
 */
export function makeSet(items: Array<Lazy<PyValue>>): PySet {
  const seen = new Set<string>();
  const out: PyValue[] = [];
  for (const lazy of items) {
    const item = force(lazy);
    const key = pyHashKey(item);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(item);
    }
  }
  return new PySet(out);
}

/** `dict(pairs)`: a repeated key keeps its first position and takes the last value (pairs may be thunks). */
export function makeDict(pairs: Array<Lazy<[PyValue, PyValue]>>): PyDict {
  const index = new Map<string, number>();
  const entries: Array<[PyValue, PyValue]> = [];
  for (const lazy of pairs) {
    const [k, v] = force(lazy);
    const key = pyHashKey(k);
    const at = index.get(key);
    if (at === undefined) {
      index.set(key, entries.length);
      entries.push([k, v]);
    } else {
      entries[at] = [entries[at][0], v];
    }
  }
  return new PyDict(entries);
}

// ---------------------------------------------------------------------------------------------
// Conversion to plain JavaScript
// ---------------------------------------------------------------------------------------------

/**
 * The JavaScript value the public API returns for a Python value: int and float → number (ints beyond
 * 2^53 are rounded, so that results always survive `JSON.stringify`), list/tuple/set → array, dict → object (non-string keys spelled with `str()`),
 * bytes → latin-1 string, complex → `{ real, imag }`, Ellipsis → the string "Ellipsis".
 */
export function toJsValue(v: PyValue): unknown {
  if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string") return v;
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(toJsValue);
  if (v instanceof PyTuple || v instanceof PySet) return v.items.map(toJsValue);
  if (v instanceof PyDict) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of v.entries) setOwn(out, typeof k === "string" ? k : pyValueStr(k), toJsValue(val));
    return out;
  }
  if (v instanceof PyBytes) return String.fromCharCode(...v.bytes);
  if (v instanceof PyComplex) return { real: v.real, imag: v.imag };
  return "Ellipsis";
}

// ---------------------------------------------------------------------------------------------
// repr / str
// ---------------------------------------------------------------------------------------------

/** Characters `str.isprintable()` rejects (other than U+0020), which repr escapes. */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python `repr(str)`: single quotes unless the text has `'` and no `"`. */
export function pythonStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && NON_PRINTABLE.test(ch)) {
      const cp = ch.codePointAt(0)!;
      out += cp < 0x100 ? "\\x" + cp.toString(16).padStart(2, "0") : cp < 0x10000 ? "\\u" + cp.toString(16).padStart(4, "0") : "\\U" + cp.toString(16).padStart(8, "0");
    } else out += ch;
  }
  return out + quote;
}

function bytesRepr(b: Uint8Array): string {
  const hasSingle = b.includes(0x27);
  const quote = hasSingle && !b.includes(0x22) ? '"' : "'";
  let out = "b" + quote;
  for (const c of b) {
    const ch = String.fromCharCode(c);
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c < 0x20 || c >= 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

function complexRepr(c: PyComplex): string {
  const part = (x: number) => {
    const r = pythonFloatRepr(x);
    return r.endsWith(".0") ? r.slice(0, -2) : r;
  };
  if (c.real === 0 && !Object.is(c.real, -0)) return part(c.imag) + "j";
  const sign = c.imag < 0 || Object.is(c.imag, -0) ? "-" : "+";
  return `(${part(c.real)}${sign}${part(Math.abs(c.imag))}j)`;
}

/** Python `repr()` of a Python value. */
export function pyValueRepr(v: PyValue): string {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return pythonFloatRepr(v);
  if (typeof v === "string") return pythonStrRepr(v);
  if (Array.isArray(v)) return "[" + v.map(pyValueRepr).join(", ") + "]";
  if (v instanceof PyTuple) return v.items.length === 1 ? `(${pyValueRepr(v.items[0])},)` : "(" + v.items.map(pyValueRepr).join(", ") + ")";
  if (v instanceof PySet) return v.items.length === 0 ? "set()" : "{" + v.items.map(pyValueRepr).join(", ") + "}";
  if (v instanceof PyDict) return "{" + v.entries.map(([k, val]) => `${pyValueRepr(k)}: ${pyValueRepr(val)}`).join(", ") + "}";
  if (v instanceof PyBytes) return bytesRepr(v.bytes);
  if (v instanceof PyComplex) return complexRepr(v);
  return "Ellipsis";
}

/** Python `str()` of a Python value (differs from repr only for str itself). */
export function pyValueStr(v: PyValue): string {
  return typeof v === "string" ? v : pyValueRepr(v);
}

/** Nesting beyond which `repr()` raises RecursionError (Python's default limit is 1000 frames). */
const MAX_REPR_DEPTH = 990;

/**
 * Python `repr()` of a JavaScript value seen as Python data: number per the int/float convention of
 * `python-json.ts`, `bigint` int, {@link PythonFloat} float, array list, plain object dict.
 * Returns `null` for values Python could not hold (undefined, functions, class instances).
 */
export function pythonRepr(v: unknown, depth = 0): string | null {
  if (depth > MAX_REPR_DEPTH) throw new PythonError("RecursionError", "maximum recursion depth exceeded while getting the repr of an object");
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return pythonStrRepr(v);
  if (typeof v === "number" || typeof v === "bigint" || v instanceof PythonFloat) return pythonNumberRepr(v);
  if (Array.isArray(v)) {
    const items = v.map((x) => pythonRepr(x, depth + 1));
    return items.includes(null) ? null : "[" + items.join(", ") + "]";
  }
  if (typeof v === "object" && isPlainObject(v)) {
    const parts: string[] = [];
    for (const [k, val] of Object.entries(v)) {
      const r = pythonRepr(val, depth + 1);
      if (r === null) return null;
      parts.push(`${pythonStrRepr(k)}: ${r}`);
    }
    return "{" + parts.join(", ") + "}";
  }
  return null;
}

/** Python `str()` of a JavaScript value seen as Python data (see {@link pythonRepr}). */
export function pythonStr(v: unknown): string | null {
  return typeof v === "string" ? v : pythonRepr(v);
}

export function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
