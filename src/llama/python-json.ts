/**
 * Python's `json` module, as the Llama reference uses it (llama-reference.md §2.4, §2.6, §3).
 *
 * `JSON.stringify`/`JSON.parse` differ from Python's `json.dumps`/`json.loads` in every detail that shows
 * up in prompts: separators (`", "`, `": "`), `ensure_ascii` escaping, float spelling (`1.0`, `1e+20`,
 * `NaN`), and what counts as surrounding whitespace. Tool-call text is fed to the model token for token,
 * so these must match Python byte for byte.
 *
 * Numbers: JavaScript has one number type, Python two. A JS `number` is written as a Python `int` when it
 * is integral and below 1e16 in magnitude (the point where Python's float repr switches to exponent
 * notation), otherwise as a Python `float`. Wrap a value in {@link PythonFloat} to force float spelling
 * (`new PythonFloat(1)` → `1.0`); a `bigint` is always an `int`.
 */

/** A number that Python would hold as a `float`: serialises as `1.0` rather than `1`. */
export class PythonFloat {
  constructor(readonly value: number) {}
  valueOf(): number {
    return this.value;
  }
  toJSON(): number {
    return this.value;
  }
}

/** Python's `json.JSONDecodeError` (a `ValueError`), with the same message format. */
export class JSONDecodeError extends Error {
  override readonly name = "JSONDecodeError";
  readonly lineno: number;
  readonly colno: number;
  constructor(
    readonly msg: string,
    readonly doc: string,
    readonly pos: number,
  ) {
    const lineno = countNewlines(doc, pos) + 1;
    const colno = pos - (doc.lastIndexOf("\n", pos - 1) + 1) + 1;
    super(`${msg}: line ${lineno} column ${colno} (char ${pos})`);
    this.lineno = lineno;
    this.colno = colno;
  }
}

/**
 * A Python exception other than `JSONDecodeError` (`ValueError`, `TypeError`, `RecursionError`) raised by the
 * Python-semantics helpers (json.dumps/loads here, literal_eval and hashing in python-literal), named after it.
 */
export class PythonError extends Error {
  override readonly name = "PythonError";
  constructor(
    readonly pythonType: "ValueError" | "TypeError" | "RecursionError",
    message: string,
  ) {
    super(message);
  }
}

function countNewlines(s: string, end: number): number {
  let n = 0;
  for (let i = s.indexOf("\n"); i !== -1 && i < end; i = s.indexOf("\n", i + 1)) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Number spelling
// ---------------------------------------------------------------------------------------------

/**
 * `repr(float)` in Python 3: shortest round-trip digits; fixed notation when the decimal exponent is
 * in [-4, 16), else `d.ddde±XX` with at least two exponent digits; integral values get `.0`.
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  // toExponential() without an argument yields the shortest round-trip digits, like repr.
  const [mantissa, expText] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const exp = Number(expText); // value = d.ddd × 10^exp
  const decpt = exp + 1; // value = 0.dddd × 10^decpt
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${"0".repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${"0".repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const mant = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
  const e = Math.abs(exp);
  return `${sign}${mant}e${exp < 0 ? "-" : "+"}${e < 10 ? "0" : ""}${e}`;
}

/** Whether a plain JS number is spelled as a Python int (see the module comment). */
export function isPythonIntLike(x: number): boolean {
  return Number.isInteger(x) && Math.abs(x) < 1e16;
}

/** Python `str()`/`repr()` of a JS number under the int/float convention of this module. */
export function pythonNumberRepr(x: number | bigint | PythonFloat): string {
  if (typeof x === "bigint") return x.toString();
  if (x instanceof PythonFloat) return pythonFloatRepr(x.value);
  return isPythonIntLike(x) ? String(x === 0 ? 0 : x) : pythonFloatRepr(x);
}

function jsonFloat(x: number, allowNan: boolean): string {
  if (!Number.isFinite(x)) {
    if (!allowNan) throw new PythonError("ValueError", `Out of range float values are not JSON compliant: ${pythonFloatRepr(x)}`);
    return Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
  }
  return pythonFloatRepr(x);
}

// ---------------------------------------------------------------------------------------------
// dumps
// ---------------------------------------------------------------------------------------------

export interface DumpsOptions {
  /** Escape every non-ASCII code unit as `\uXXXX` (Python's default: true). */
  ensureAscii?: boolean;
  /** Pretty-print: a number of spaces or an indent string; `null` for one line (default). */
  indent?: number | string | null;
  /** `[itemSeparator, keySeparator]`; default `[", ", ": "]`, or `[",", ": "]` when indenting. */
  separators?: readonly [string, string] | null;
  /** Sort object keys by code point (Python's `sort_keys`). */
  sortKeys?: boolean;
  /** Write NaN and ±Infinity as `NaN`/`Infinity` (Python's default: true). */
  allowNan?: boolean;
}

const SHORT_ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  '"': '\\"',
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

function hex4(code: number): string {
  return "\\u" + code.toString(16).padStart(4, "0");
}

/** Python's `py_encode_basestring_ascii` (ensureAscii) or `py_encode_basestring`. */
export function encodeJsonString(s: string, ensureAscii = true): string {
  // ensure_ascii escapes everything outside ' '..'~'; otherwise only controls, '"' and '\'.
  const pattern = ensureAscii ? /[\\"]|[^ -~]/g : /[\\"\x00-\x1f]/g;
  return (
    '"' +
    s.replace(pattern, (c) => SHORT_ESCAPES[c] ?? hex4(c.charCodeAt(0))) + // per UTF-16 unit, like Python
    '"'
  );
}

/** Python `sorted()` order for strings: by code point, not by UTF-16 code unit. */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx - cy;
  }
}

function pythonTypeName(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "function";
  if (typeof value === "symbol") return "symbol";
  if (typeof value === "object" && value !== null) return value.constructor?.name ?? "object";
  return typeof value;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * `json.dumps(value, ...)` with Python's defaults. Accepts JSON-like JS values plus `bigint` and
 * {@link PythonFloat}; anything else raises like Python's `TypeError: Object of type X is not JSON
 * serializable`.
 */
export function dumps(value: unknown, options: DumpsOptions = {}): string {
  const ensureAscii = options.ensureAscii ?? true;
  const allowNan = options.allowNan ?? true;
  const sortKeys = options.sortKeys ?? false;
  const indentUnit =
    options.indent === undefined || options.indent === null
      ? null
      : typeof options.indent === "number"
        ? " ".repeat(Math.max(0, options.indent))
        : options.indent;
  const [itemSep, keySep] = options.separators ?? (indentUnit === null ? [", ", ": "] : [",", ": "]);
  const active = new Set<object>();

  const encode = (v: unknown, level: number): string => {
    if (v === null) return "null";
    if (v === true) return "true";
    if (v === false) return "false";
    if (typeof v === "string") return encodeJsonString(v, ensureAscii);
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number") return isPythonIntLike(v) ? String(v === 0 ? 0 : v) : jsonFloat(v, allowNan);
    if (v instanceof PythonFloat) return jsonFloat(v.value, allowNan);
    if (typeof v !== "object" || !(Array.isArray(v) || isPlainObject(v))) {
      throw new PythonError("TypeError", `Object of type ${pythonTypeName(v)} is not JSON serializable`);
    }
    if (active.has(v)) throw new PythonError("ValueError", "Circular reference detected");
    if (level >= MAX_JSON_DEPTH) throw new PythonError("RecursionError", "maximum recursion depth exceeded while encoding a JSON object");
    active.add(v);
    try {
      const parts: string[] = [];
      if (Array.isArray(v)) {
        if (v.length === 0) return "[]";
        for (const item of v) parts.push(encode(item, level + 1));
        return wrap("[", "]", parts, level);
      }
      let keys = Object.keys(v);
      if (keys.length === 0) return "{}";
      if (sortKeys) keys = [...keys].sort(compareCodePoints);
      for (const key of keys) parts.push(encodeJsonString(key, ensureAscii) + keySep + encode(v[key], level + 1));
      return wrap("{", "}", parts, level);
    } finally {
      active.delete(v);
    }
  };

  const wrap = (open: string, close: string, parts: string[], level: number): string => {
    if (indentUnit === null) return open + parts.join(itemSep) + close;
    const inner = "\n" + indentUnit.repeat(level + 1);
    return open + inner + parts.join(itemSep + inner) + "\n" + indentUnit.repeat(level) + close;
  };

  return encode(value, 0);
}

// ---------------------------------------------------------------------------------------------
// loads
// ---------------------------------------------------------------------------------------------

export interface LoadsOptions {
  /**
   * How to return Python floats (numbers with a fraction or exponent, NaN, ±Infinity): as plain numbers
   * (default) or wrapped in {@link PythonFloat} so that a later {@link dumps} spells them as Python did.
   */
  floats?: "number" | "PythonFloat";
}

/**
 * Containers nested deeper than this raise `RecursionError` in CPython's json (the C scanner and
 * encoder count against the default recursion limit of 1000; measured: 990 nested arrays decode, 991
 * raise when called from a shallow stack). Also keeps deep input from overflowing the JS stack.
 */
export const MAX_JSON_DEPTH = 990;

/** Python 3.11's default limit on decimal digits in `int(str)` (`sys.get_int_max_str_digits()`). */
const INT_MAX_STR_DIGITS = 4300;

/** Set a key on a plain object without invoking the `__proto__` setter. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

function isJsonWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * `json.loads(text)` with Python's defaults (`strict=True`, NaN/Infinity accepted, surrounding JSON
 * whitespace — space, tab, LF, CR only — allowed, duplicate keys: last value wins at the first key's
 * position). Integers that are not safe JS integers come back as (rounded) numbers.
 */
export function loads(text: string, options: LoadsOptions = {}): unknown {
  const wrapFloats = options.floats === "PythonFloat";
  const n = text.length;
  let pos = 0;

  const fail = (msg: string, at: number): never => {
    throw new JSONDecodeError(msg, text, at);
  };
  const skipWs = () => {
    while (pos < n && isJsonWhitespace(text.charCodeAt(pos))) pos++;
  };
  const float = (x: number): unknown => (wrapFloats ? new PythonFloat(x) : x);

  const parseString = (): string => {
    // pos is just after the opening quote
    const start = pos - 1;
    let out = "";
    let chunkStart = pos;
    for (;;) {
      if (pos >= n) fail("Unterminated string starting at", start);
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(chunkStart, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail("Invalid control character at", pos);
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(chunkStart, pos);
      pos++;
      if (pos >= n) fail("Unterminated string starting at", start);
      const e = text[pos];
      if (e === "u") {
        const code = parseHex4(pos + 1, pos - 1);
        pos += 5;
        if (code >= 0xd800 && code <= 0xdbff && text.startsWith("\\u", pos)) {
          const low = parseHex4(pos + 2, pos);
          if (low >= 0xdc00 && low <= 0xdfff) {
            out += String.fromCharCode(code, low);
            pos += 6;
          } else {
            out += String.fromCharCode(code);
          }
        } else {
          out += String.fromCharCode(code);
        }
      } else {
        const simple = ({ '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" } as Record<string, string>)[e];
        if (simple === undefined) fail("Invalid \\escape", pos - 1);
        out += simple;
        pos++;
      }
      chunkStart = pos;
    }
  };

  const parseHex4 = (at: number, escapeStart: number): number => {
    const h = text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("Invalid \\uXXXX escape", escapeStart);
    return parseInt(h, 16);
  };

  const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;

  const parseValue = (depth: number): unknown => {
    if (pos >= n) fail("Expecting value", pos);
    const c = text[pos];
    switch (c) {
      case '"':
        pos++;
        return parseString();
      case "{":
      case "[":
        if (depth >= MAX_JSON_DEPTH) {
          throw new PythonError("RecursionError", `maximum recursion depth exceeded while decoding a JSON ${c === "[" ? "array" : "object"}`);
        }
        return c === "[" ? parseArray(depth) : parseObject(depth);
      case "n":
        if (text.startsWith("null", pos)) return (pos += 4), null;
        break;
      case "t":
        if (text.startsWith("true", pos)) return (pos += 4), true;
        break;
      case "f":
        if (text.startsWith("false", pos)) return (pos += 5), false;
        break;
      case "N":
        if (text.startsWith("NaN", pos)) return (pos += 3), float(NaN);
        break;
      case "I":
        if (text.startsWith("Infinity", pos)) return (pos += 8), float(Infinity);
        break;
      case "-":
        if (text.startsWith("-Infinity", pos)) return (pos += 9), float(-Infinity);
        break;
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m) fail("Expecting value", pos);
    const literal = m![0];
    pos += literal.length;
    if (m![1] === undefined && m![2] === undefined) {
      const digits = literal.length - (literal[0] === "-" ? 1 : 0);
      if (digits > INT_MAX_STR_DIGITS) {
        throw new PythonError(
          "ValueError",
          `Exceeds the limit (${INT_MAX_STR_DIGITS} digits) for integer string conversion: value has ${digits} digits`,
        );
      }
      const x = Number(literal);
      return x === 0 ? 0 : x; // Python ints have no negative zero
    }
    return float(Number(literal));
  };

  const parseObject = (depth: number): Record<string, unknown> => {
    const obj: Record<string, unknown> = {};
    pos++;
    skipWs();
    if (text[pos] === "}") {
      pos++;
      return obj;
    }
    for (;;) {
      if (text[pos] !== '"') fail("Expecting property name enclosed in double quotes", pos);
      pos++;
      const key = parseString();
      skipWs();
      if (text[pos] !== ":") fail("Expecting ':' delimiter", pos);
      pos++;
      skipWs();
      setOwn(obj, key, parseValue(depth + 1));
      skipWs();
      if (text[pos] === "}") {
        pos++;
        return obj;
      }
      if (text[pos] !== ",") fail("Expecting ',' delimiter", pos);
      pos++;
      skipWs();
    }
  };

  const parseArray = (depth: number): unknown[] => {
    const arr: unknown[] = [];
    pos++;
    skipWs();
    if (text[pos] === "]") {
      pos++;
      return arr;
    }
    for (;;) {
      arr.push(parseValue(depth + 1));
      skipWs();
      if (text[pos] === "]") {
        pos++;
        return arr;
      }
      if (text[pos] !== ",") fail("Expecting ',' delimiter", pos);
      pos++;
      skipWs();
    }
  };

  if (text.startsWith("\ufeff")) fail("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0);
  skipWs();
  const value = parseValue(0);
  skipWs();
  if (pos !== n) fail("Extra data", pos);
  return value;
}
