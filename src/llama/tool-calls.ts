/**
 * Tool calls in the Llama 3.1 chat format: serialising assistant calls (`ToolUtils.encode_tool_call`,
 * llama-reference.md §2.4) and recognising them in completions (`ToolUtils.maybe_extract_*`,
 * `is_valid_python_list`, `parse_python_list_for_function_calls`, §2.6 step 5 and §6), with the
 * reference's results and the exceptions it raises.
 */

import { dumps, JSONDecodeError, loads, MAX_JSON_DEPTH, PythonError, PythonFloat, pythonNumberRepr } from "./python-json.js";
import {
  isPlainObject,
  literalEval,
  makeDict,
  PyBytes,
  PyDict,
  PySet,
  PyTuple,
  type PyValue,
  pythonStr,
  pythonTypeName,
  pyHashKey,
  toJsValue,
} from "./python-literal.js";
import { parsePythonModule, PythonRecursionError, PythonSyntaxError, type PyNode } from "./python-syntax.js";

export const BUILTIN_TOOLS = ["brave_search", "wolfram_alpha", "photogen", "code_interpreter"] as const;
export type BuiltinTool = (typeof BUILTIN_TOOLS)[number];

export function isBuiltinTool(name: unknown): name is BuiltinTool {
  return typeof name === "string" && (BUILTIN_TOOLS as readonly string[]).includes(name);
}

export type ToolPromptFormat = "json" | "function_tag" | "python_list";
export const TOOL_PROMPT_FORMATS: readonly ToolPromptFormat[] = ["json", "function_tag", "python_list"];

/** An assistant tool call. `toolName` equal to a {@link BuiltinTool} name is that builtin tool. */
export interface ToolCall {
  callId: string;
  toolName: string;
  arguments: Record<string, unknown> | string;
}

/** The Python exception the reference raises at the same point. */
export type PythonErrorKind =
  | "ValueError"
  | "KeyError"
  | "IndexError"
  | "ValidationError"
  | "TypeError"
  | "AttributeError"
  | "SyntaxError"
  | "RecursionError";

/** Thrown where the reference raises; `kind` names the Python exception (as in the golden vectors). */
export class ChatFormatError extends Error {
  override readonly name = "ChatFormatError";
  constructor(
    readonly kind: PythonErrorKind,
    message: string,
  ) {
    super(`${kind}: ${message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// encode_tool_call
// ---------------------------------------------------------------------------------------------

/** Python `args[key]` on a tool call's arguments. */
function getArgument(args: Record<string, unknown> | string, key: string): unknown {
  if (typeof args === "string") throw new ChatFormatError("TypeError", "string indices must be integers");
  if (!Object.prototype.hasOwnProperty.call(args, key)) throw new ChatFormatError("KeyError", `'${key}'`);
  return args[key];
}

function formatted(value: unknown): string {
  const s = asChatFormatError(() => pythonStr(value));
  if (s === null) throw new ChatFormatError("TypeError", `cannot format a value of type ${typeof value}`);
  return s;
}

/** `format_value` of the python_list serialisation: strings quoted without escaping, dicts as `{k=v}`. */
function formatPythonListValue(value: unknown, depth = 0): string {
  if (depth > MAX_JSON_DEPTH) throw new ChatFormatError("RecursionError", "maximum recursion depth exceeded");
  if (typeof value === "string") return `"${value}"`;
  if (value === true) return "True";
  if (value === false) return "False";
  if (value === null) return "None";
  if (typeof value === "number" || typeof value === "bigint" || value instanceof PythonFloat) return pythonNumberRepr(value);
  if (Array.isArray(value)) return `[${value.map((v) => formatPythonListValue(v, depth + 1)).join(", ")}]`;
  if (typeof value === "object" && isPlainObject(value)) {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}=${formatPythonListValue(v, depth + 1)}`)
      .join(", ")}}`;
  }
  throw new ChatFormatError("ValueError", `Unsupported type: ${typeof value}`);
}

function jsonDumps(value: unknown): string {
  return asChatFormatError(() => dumps(value));
}

/**
 * The text of one tool call, or `null` where the reference yields a non-string (code_interpreter
 * `code` that is not a string), which `encode_message` then silently encodes as nothing.
 */
export function encodeToolCallText(toolCall: Pick<ToolCall, "toolName" | "arguments">, format: ToolPromptFormat): string | null {
  const name = toolCall.toolName;
  const args = toolCall.arguments;
  switch (name) {
    case "brave_search":
    case "wolfram_alpha":
    case "photogen":
      // The query goes in raw: quotes inside it are not escaped.
      return `${name}.call(query="${formatted(getArgument(args, "query"))}")`;
    case "code_interpreter": {
      const code = getArgument(args, "code");
      return typeof code === "string" ? code : null;
    }
  }
  switch (format) {
    case "json":
      return jsonDumps({ type: "function", name, parameters: args });
    case "function_tag":
      return `<function=${name}>${jsonDumps(args)}</function>`;
    case "python_list": {
      if (typeof args === "string") throw new ChatFormatError("AttributeError", "'str' object has no attribute 'items'");
      const parts = Object.entries(args).map(([k, v]) => `${k}=${formatPythonListValue(v)}`);
      return `[${name}(${parts.join(", ")})]`;
    }
    default:
      throw new ChatFormatError("ValueError", `Unsupported tool prompt format: ${String(format)}`);
  }
}

/**
 * `ToolUtils.encode_tool_call(toolCall, format)`: builtin tools as `NAME.call(query="Q")` (any
 * format), code_interpreter as its code, custom tools as Python `json.dumps` of
 * `{"type": "function", "name", "parameters"}` (json), `<function=NAME>{…}</function>`
 * (function_tag) or `[NAME(k=v, …)]` (python_list).
 */
export function encodeToolCall(toolCall: Pick<ToolCall, "toolName" | "arguments">, format: ToolPromptFormat): string {
  const text = encodeToolCallText(toolCall, format);
  if (text === null) throw new ChatFormatError("TypeError", "code_interpreter arguments.code must be a string");
  return text;
}

// ---------------------------------------------------------------------------------------------
// Python list of calls
// ---------------------------------------------------------------------------------------------

const LONE_SURROGATE = /\p{Cs}/u;

/**
 * `ast.parse(source).body`, raising like Python: a `SyntaxError` as `PythonSyntaxError`; a lone
 * surrogate as `ValueError` (CPython cannot encode the source to UTF-8, and `UnicodeEncodeError` is a
 * `ValueError` that `is_valid_python_list` does not catch).
 */
function astParseBody(source: string): PyNode[] {
  if (LONE_SURROGATE.test(source)) {
    throw new ChatFormatError("ValueError", "'utf-8' codec can't encode character: surrogates not allowed");
  }
  try {
    return parsePythonModule(source);
  } catch (e) {
    if (e instanceof PythonRecursionError) throw new ChatFormatError("RecursionError", e.message);
    throw e;
  }
}

function isCallOfNameWithKeywordsOnly(node: PyNode): boolean {
  return node.type === "Call" && node.func.type === "Name" && node.args.length === 0;
}

/** `is_valid_python_list(s)`: a single expression statement that is a non-empty list of `name(k=v, …)` calls. */
export function isValidPythonList(source: string): boolean {
  let body: PyNode[];
  try {
    body = astParseBody(source);
  } catch (e) {
    if (e instanceof PythonSyntaxError) return false;
    throw e;
  }
  if (body.length !== 1) return false;
  const expr = body[0];
  return expr.type === "List" && expr.elts.length > 0 && expr.elts.every(isCallOfNameWithKeywordsOnly);
}

function literal(node: PyNode): PyValue {
  return asChatFormatError(() => literalEval(node));
}

/** The calls of a Python list with Python-typed arguments (`function_args` keyed by keyword, `null` for `**`). */
function parsePythonListCalls(source: string): Array<[string, PyDict]> {
  let body: PyNode[];
  try {
    body = astParseBody(source);
  } catch (e) {
    if (e instanceof PythonSyntaxError) throw new ChatFormatError("SyntaxError", e.message);
    throw e;
  }
  if (body.length === 0) throw new ChatFormatError("IndexError", "list index out of range");
  const list = body[0];
  if (list.type !== "List") throw new ChatFormatError("ValueError", "Input must be a list of function calls");
  const result: Array<[string, PyDict]> = [];
  for (const node of list.elts) {
    if (node.type !== "Call") continue;
    if (node.func.type !== "Name") {
      throw new ChatFormatError("AttributeError", `'${node.func.type}' object has no attribute 'id'`);
    }
    const pairs: Array<[PyValue, PyValue]> = node.keywords.map((kw) => [kw.arg, literal(kw.value)]);
    result.push([node.func.id, asChatFormatError(() => makeDict(pairs))]);
  }
  return result;
}

/** Runs `f`, turning the Python exceptions of python-json and python-literal into {@link ChatFormatError}. */
function asChatFormatError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PythonError) throw new ChatFormatError(e.pythonType, e.message);
    throw e;
  }
}

/**
 * `parse_python_list_for_function_calls(s)`: every call of the list as `[name, { keyword: value }]`,
 * values through `ast.literal_eval` (non-literals raise ValueError). Positional arguments are ignored
 * and non-call elements skipped, as in the reference.
 */
export function parsePythonListForFunctionCalls(source: string): Array<[string, Record<string, unknown>]> {
  return parsePythonListCalls(source).map(([name, args]) => [name, toJsValue(args) as Record<string, unknown>]);
}

// ---------------------------------------------------------------------------------------------
// Recognising calls in completions
// ---------------------------------------------------------------------------------------------

const FUNCTION_TAG = "<function=";

/**
 * `re.search(r"<function=(?P<function_name>[^}]+)>(?P<args>{.*?})", body)` as `[name, args]`, in linear
 * time (the backtracking regex is quadratic on input such as `<function=a>{a>{a>{…`).
 *
 * For a tag at p, let q be the first `}` after it. The name `[^}]+` cannot pass q, and the args
 * `{.*?}` end at q, so the greedy name ends at the last `>{` before q, and that candidate alone decides:
 * a shorter name would only add text, and so any newline, to the args (`.` stops only at `\n`, while
 * `[^}]` crosses lines and `>`).
 */
function searchFunctionTag(body: string): [string, string] | null {
  for (let p = body.indexOf(FUNCTION_TAG); p !== -1; p = body.indexOf(FUNCTION_TAG, p + 1)) {
    const nameStart = p + FUNCTION_TAG.length;
    const q = body.indexOf("}", nameStart);
    if (q === -1) return null; // no later tag has a closing brace either
    const g = body.lastIndexOf(">{", q - 2);
    if (g > nameStart && !body.slice(g + 2, q).includes("\n")) return [body.slice(nameStart, g), body.slice(g + 1, q + 1)];
  }
  return null;
}

/** `\b(\w+)\.call\(query="([^"]*)"\)` with Python's Unicode `\w` (= letters, numbers, `_`) and `\b`. */
const BUILTIN_TOOL_PATTERN = /(?<![\p{L}\p{N}_])([\p{L}\p{N}_]+)\.call\(query="([^"]*)"\)/u;

/** JSON value → Python value (ints and floats told apart via {@link PythonFloat}). */
function jsonToPy(v: unknown): PyValue {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") return BigInt(v);
  if (v instanceof PythonFloat) return v.value;
  if (Array.isArray(v)) return v.map(jsonToPy);
  return new PyDict(Object.entries(v as Record<string, unknown>).map(([k, val]) => [k, jsonToPy(val)]));
}

/** `json.loads` with Python's exceptions: JSONDecodeError passes through, other ValueErrors are wrapped. */
function pythonJsonLoads(text: string): PyValue {
  return asChatFormatError(() => jsonToPy(loads(text, { floats: "PythonFloat" })));
}

function dictGet(d: PyDict, key: string): PyValue | undefined {
  const entry = d.entries.find(([k]) => k === key);
  return entry === undefined ? undefined : entry[1];
}

/** `maybe_extract_custom_tool_call` with Python-typed results; `null` is the reference's None. */
function extractCustomToolCall(body: string): [PyValue, PyValue] | null {
  const match = searchFunctionTag(body);
  if (match) {
    try {
      return [match[0], pythonJsonLoads(match[1].replaceAll("'", '"'))];
    } catch {
      return null; // the reference catches every exception here and prints it
    }
  }
  let parsed: PyValue | undefined;
  try {
    parsed = pythonJsonLoads(body);
  } catch (e) {
    if (!(e instanceof JSONDecodeError)) throw e;
  }
  if (parsed instanceof PyDict) {
    const type = dictGet(parsed, "type");
    if (type === "function" || dictGet(parsed, "name") !== undefined) {
      const name = dictGet(parsed, "name");
      if (name === undefined) throw new ChatFormatError("KeyError", "'name'");
      const parameters = dictGet(parsed, "parameters");
      if (parameters === undefined) throw new ChatFormatError("KeyError", "'parameters'");
      return [name, parameters];
    }
    return null;
  }
  if (isValidPythonList(body)) {
    const [name, args] = parsePythonListCalls(body)[0]; // only the first call is used (reference FIXME)
    return [name, args];
  }
  return null;
}

/**
 * `ToolUtils.maybe_extract_custom_tool_call(body)`: `[name, arguments]` from a `<function=…>{…}` tag,
 * a whole-content JSON object with `"type": "function"` or a `"name"`, or the first call of a Python
 * list of calls; `null` otherwise. Raises KeyError, ValueError, … where the reference does.
 */
export function maybeExtractCustomToolCall(body: string): [unknown, unknown] | null {
  const result = extractCustomToolCall(body);
  return result === null ? null : [toJsValue(result[0]), toJsValue(result[1])];
}

/** `ToolUtils.maybe_extract_builtin_tool_call(body)`: the first `NAME.call(query="Q")` anywhere, as `[name, query]`. */
export function maybeExtractBuiltinToolCall(body: string): [string, string] | null {
  const match = BUILTIN_TOOL_PATTERN.exec(body);
  return match ? [match[1], match[2]] : null;
}

// ---------------------------------------------------------------------------------------------
// pydantic validation of ToolCall (models/datatypes.py)
// ---------------------------------------------------------------------------------------------

const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true });

function invalid(message: string): never {
  throw new ChatFormatError("ValidationError", `1 validation error for ToolCall: ${message}`);
}

/** pydantic lax `str`: str, or bytes that decode as UTF-8. */
function asStr(v: PyValue, where: string): string | undefined {
  if (typeof v === "string") return v;
  if (v instanceof PyBytes) {
    try {
      return UTF8_STRICT.decode(v.bytes);
    } catch {
      invalid(`${where}: invalid UTF-8 bytes`);
    }
  }
  return undefined;
}

/** `Primitive = str | int | float | bool | None` (bytes become str). */
function validatePrimitive(v: PyValue, where: string): PyValue {
  if (v === null || typeof v === "boolean" || typeof v === "bigint" || typeof v === "number" || typeof v === "string") return v;
  const s = asStr(v, where);
  if (s !== undefined) return s;
  return invalid(`${where}: input should be a primitive, got ${pythonTypeName(v)}`);
}

/** `Dict[str, Primitive]`. */
function validatePrimitiveDict(d: PyDict, where: string): PyDict {
  return new PyDict(
    d.entries.map(([k, v]) => {
      const key = asStr(k, `${where} key`);
      if (key === undefined) invalid(`${where}: dict keys must be strings, got ${pythonTypeName(k)}`);
      return [key!, validatePrimitive(v, `${where}.${key}`)];
    }),
  );
}

/** `RecursiveType = Primitive | List[Primitive] | Dict[str, Primitive]` (tuples and sets become lists). */
function validateRecursive(v: PyValue, where: string): PyValue {
  if (Array.isArray(v)) return v.map((x, i) => validatePrimitive(x, `${where}[${i}]`));
  if (v instanceof PyTuple || v instanceof PySet) return v.items.map((x, i) => validatePrimitive(x, `${where}[${i}]`));
  if (v instanceof PyDict) return validatePrimitiveDict(v, where);
  return validatePrimitive(v, where);
}

/** `arguments: str | Dict[str, RecursiveType]`. */
function validateArguments(args: PyValue): PyValue {
  const s = asStr(args, "arguments");
  if (s !== undefined) return s;
  if (!(args instanceof PyDict)) return invalid(`arguments: input should be a string or a dict, got ${pythonTypeName(args)}`);
  return new PyDict(
    args.entries.map(([k, v]) => {
      const key = asStr(k, "arguments key");
      if (key === undefined) invalid(`arguments: dict keys must be strings, got ${pythonTypeName(k)}`);
      return [key!, validateRecursive(v, `arguments.${key}`)];
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Steps 5–9 of decode_assistant_message_from_content
// ---------------------------------------------------------------------------------------------

/**
 * The tool call found in assistant content whose header, python_tag and eot/eom suffix are already
 * removed (llama-reference.md §2.6 steps 5–9), or `null`. `ipython` says whether the content began with
 * `<|python_tag|>`.
 */
export function extractToolCall(content: string, ipython: boolean): ToolCall | null {
  let toolName: PyValue = null;
  let toolArguments: PyValue = new PyDict([]);

  const custom = extractCustomToolCall(content);
  if (custom !== null) {
    [toolName, toolArguments] = custom;
    // `tool_name in BuiltinTool.__members__` hashes the name first.
    asChatFormatError(() => pyHashKey(toolName));
    if (isBuiltinTool(toolName)) {
      // The model answered a builtin tool in the custom format: keep only the first value, as "query".
      if (!(toolArguments instanceof PyDict)) {
        throw new ChatFormatError("AttributeError", `'${pythonTypeName(toolArguments)}' object has no attribute 'values'`);
      }
      if (toolArguments.entries.length === 0) throw new ChatFormatError("IndexError", "list index out of range");
      toolArguments = new PyDict([["query", toolArguments.entries[0][1]]]);
    }
  } else {
    const builtin = maybeExtractBuiltinToolCall(content);
    if (builtin !== null) {
      toolName = builtin[0];
      toolArguments = new PyDict([["query", builtin[1]]]);
    } else if (ipython) {
      toolName = "code_interpreter";
      toolArguments = new PyDict([["code", content]]);
    }
  }

  if (toolName === null || toolArguments === null) return null;
  if (typeof toolName !== "string") invalid(`tool_name: input should be a string, got ${pythonTypeName(toolName)}`);
  const validated = validateArguments(toolArguments);
  return {
    callId: crypto.randomUUID(),
    toolName: toolName as string,
    arguments: toJsValue(validated) as Record<string, unknown> | string,
  };
}
