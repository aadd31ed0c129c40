/**
 * Jinja rendering with Python jinja2 semantics where they decide the output text, on top of
 * @huggingface/jinja (llama-reference.md §3.1 and §3.3).
 *
 * @huggingface/jinja parses and runs templates, but prints and serialises values the JavaScript way:
 * `{{ none }}` prints nothing (jinja2: `None`), `{{ true }}` prints `true` (`True`), `tojson` uses
 * `JSON.stringify` (`1.0` becomes `1`, keys sort by locale, NaN becomes null), `trim` is JS `trim()`
 * (not `str.strip()`), `"a" + 1` concatenates (jinja2 raises), and a dict is not `iterable`. This module
 * keeps its parser and interpreter and replaces exactly those behaviours:
 *
 * - expression output and `~` use Python `str()`; `trim` is `str(x).strip(chars)`;
 * - `tojson` is Python `json.dumps`, either jinja2's built-in flavour (sorted keys, HTML-escaped) or
 *   transformers' override (`ensure_ascii=False`, key order kept, `indent`/`separators`/`sort_keys`);
 * - `+` follows Python: str+str, number+number, list+list, anything else raises;
 * - values passed in keep Python types: a {@link PythonFloat} is a float, an integral number an int.
 *
 * The interpreter's methods are TypeScript-private, so the overrides are installed on each interpreter
 * instance; the module checks at load time that the methods it wraps exist, so a library upgrade that
 * renames them fails loudly instead of silently rendering differently.
 */

import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";
import { isPythonSpace } from "./whitespace.js";
import { dumps, PythonFloat, pythonFloatRepr, isPythonIntLike, PythonError } from "./python-json.js";
import { isPlainObject, pythonStrRepr } from "./python-literal.js";

/** A template error: `raise_exception(...)` from the template, or a failure while rendering. */
export class ChatTemplateError extends Error {
  override readonly name = "ChatTemplateError";
}

// Runtime value classes are not exported by @huggingface/jinja; take their constructors from values
// it creates itself.
interface RuntimeValue {
  type: string;
  value: any;
  toString(): string;
}
type RuntimeCtor = new (value?: any) => RuntimeValue;
const probe = new Environment();
const ctor = (name: string, value: unknown): RuntimeCtor => probe.set(name, value).constructor as RuntimeCtor;
const IntegerValue = ctor("i", 1);
const FloatValue = ctor("f", 1.5);
const StringValue = ctor("s", "");
const BooleanValue = ctor("b", true);
const NullValue = ctor("n", null);
const UndefinedValue = ctor("u", undefined);
const ArrayValue = ctor("a", []);
const ObjectValue = ctor("o", {});
const FunctionValue = ctor("fn", () => null);

const ORIGINAL = Interpreter.prototype as unknown as Record<string, (...args: any[]) => any>;
for (const method of ["applyFilter", "evaluateBinaryExpression", "evaluateBlock", "evaluateArguments", "evaluate"]) {
  if (typeof ORIGINAL[method] !== "function") {
    throw new Error(`@huggingface/jinja no longer has Interpreter.${method}; update src/llama/jinja-env.ts`);
  }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/** A JavaScript value as a jinja runtime value, keeping Python's int/float distinction. */
export function toRuntime(v: unknown): RuntimeValue {
  if (v instanceof PythonFloat) return new FloatValue(v.value);
  if (typeof v === "number") return isPythonIntLike(v) ? new IntegerValue(v === 0 ? 0 : v) : new FloatValue(v);
  if (typeof v === "bigint") return new IntegerValue(Number(v));
  if (typeof v === "string") return new StringValue(v);
  if (typeof v === "boolean") return new BooleanValue(v);
  if (v === null) return new NullValue(null);
  if (v === undefined) return new UndefinedValue();
  if (Array.isArray(v)) return new ArrayValue(v.map(toRuntime));
  if (typeof v === "function") {
    return new FunctionValue((args: RuntimeValue[]) => toRuntime(v(...args.map(fromRuntime))));
  }
  if (typeof v === "object" && isPlainObject(v)) {
    // A key whose value is undefined is absent, as it would be in JSON.
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    return new ObjectValue(new Map(entries.map(([k, x]) => [k, toRuntime(x)])));
  }
  throw new ChatTemplateError(`cannot pass a ${v?.constructor?.name ?? typeof v} to a template`);
}

/** A jinja runtime value as JavaScript data (ints as `bigint` when not safe, floats as {@link PythonFloat}). */
export function fromRuntime(v: RuntimeValue): unknown {
  switch (v.type) {
    case "IntegerValue":
      return Number.isSafeInteger(v.value) ? v.value : BigInt(v.value);
    case "FloatValue":
      return new PythonFloat(v.value);
    case "StringValue":
    case "BooleanValue":
      return v.value;
    case "NullValue":
      return null;
    case "UndefinedValue":
      return undefined;
    case "ArrayValue":
    case "TupleValue":
      return (v.value as RuntimeValue[]).map(fromRuntime);
    case "ObjectValue":
    case "KeywordArgumentsValue":
    case "NamespaceValue": {
      const out: Record<string, unknown> = {};
      for (const [k, x] of v.value as Map<string, RuntimeValue>) out[k] = fromRuntime(x);
      return out;
    }
    default:
      return v;
  }
}

/** Python `repr()` of a runtime value (what `str()` of a container shows for its items). */
function pyRepr(v: RuntimeValue): string {
  switch (v.type) {
    case "StringValue":
      return pythonStrRepr(v.value);
    case "ArrayValue":
      return "[" + (v.value as RuntimeValue[]).map(pyRepr).join(", ") + "]";
    case "TupleValue": {
      const items = (v.value as RuntimeValue[]).map(pyRepr);
      return items.length === 1 ? `(${items[0]},)` : `(${items.join(", ")})`;
    }
    case "ObjectValue":
    case "KeywordArgumentsValue":
      return "{" + [...(v.value as Map<string, RuntimeValue>)].map(([k, x]) => `${pythonStrRepr(k)}: ${pyRepr(x)}`).join(", ") + "}";
    default:
      return pyStr(v);
  }
}

/** Python `str()` of a runtime value, as jinja2 prints `{{ value }}`. Undefined prints as "". */
export function pyStr(v: RuntimeValue): string {
  switch (v.type) {
    case "StringValue":
      return v.value;
    case "IntegerValue":
      return String(v.value);
    case "FloatValue":
      return pythonFloatRepr(v.value);
    case "BooleanValue":
      return v.value ? "True" : "False";
    case "NullValue":
      return "None";
    case "UndefinedValue":
      return "";
    case "ArrayValue":
    case "TupleValue":
    case "ObjectValue":
    case "KeywordArgumentsValue":
      return pyRepr(v);
    default:
      return v.toString();
  }
}

/** Python `str.strip(chars)`; `chars` null strips `str.isspace()` characters. */
export function pythonStrip(s: string, chars: string | null = null): string {
  const strip = chars === null ? (c: string) => isPythonSpace(c.codePointAt(0)!) : (c: string) => chars.includes(c);
  const cps = Array.from(s);
  let start = 0;
  let end = cps.length;
  while (start < end && strip(cps[start])) start++;
  while (end > start && strip(cps[end - 1])) end--;
  return cps.slice(start, end).join("");
}

// ---------------------------------------------------------------------------------------------
// Interpreter
// ---------------------------------------------------------------------------------------------

export type ToJsonFlavour = "jinja2" | "transformers";

export interface JinjaOptions {
  trimBlocks: boolean;
  lstripBlocks: boolean;
  /** Which `tojson` filter the environment has. */
  tojson: ToJsonFlavour;
}

/** Statement nodes whose value is rendered text already (or nothing); everything else is an expression. */
const STATEMENT_TYPES = new Set(["Program", "If", "For", "Set", "Macro", "CallStatement", "FilterStatement", "Break", "Continue", "Comment"]);

function templateData(value: RuntimeValue): unknown {
  if (value.type === "UndefinedValue") throw new ChatTemplateError("Object of type Undefined is not JSON serializable");
  return fromRuntime(value);
}

function jsonOrTemplateError(f: () => string): string {
  try {
    return f();
  } catch (e) {
    if (e instanceof PythonError) throw new ChatTemplateError(e.message);
    throw e;
  }
}

/** jinja2's built-in `tojson` (`htmlsafe_json_dumps`): `json.dumps(sort_keys=True)`, then `<`, `>`, `&`, `'` escaped. */
export function jinja2ToJson(value: unknown, indent: number | string | null = null): string {
  return dumps(value, { sortKeys: true, indent })
    .replaceAll("<", "\\u003c")
    .replaceAll(">", "\\u003e")
    .replaceAll("&", "\\u0026")
    .replaceAll("'", "\\u0027");
}

/** `tojson` with its keyword and positional arguments, per flavour. */
function toJson(flavour: ToJsonFlavour, operand: RuntimeValue, args: RuntimeValue[], kwargs: Map<string, RuntimeValue>): string {
  const arg = (name: string, position: number): unknown => {
    const v = kwargs.get(name) ?? args[position];
    return v === undefined ? undefined : fromRuntime(v);
  };
  const indentArg = (value: unknown): number | string | null => {
    if (value === undefined || value === null) return null;
    if (typeof value === "number" || typeof value === "string") return value;
    if (typeof value === "bigint") return Number(value);
    throw new ChatTemplateError("tojson: indent must be an integer or a string");
  };
  if (flavour === "jinja2") {
    const indent = indentArg(arg("indent", 0));
    return jsonOrTemplateError(() => jinja2ToJson(templateData(operand), indent));
  }
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  const separators = arg("separators", 2);
  const options = {
    ensureAscii: Boolean(arg("ensure_ascii", 0) ?? false),
    indent: indentArg(arg("indent", 1)),
    separators: Array.isArray(separators) ? ([String(separators[0]), String(separators[1])] as const) : null,
    sortKeys: Boolean(arg("sort_keys", 3) ?? false),
  };
  return jsonOrTemplateError(() => dumps(templateData(operand), options));
}

/** The interpreter methods replaced on each instance (they are TypeScript-private in the library). */
type Overrides = Record<string, (this: Record<string, any>, ...args: any[]) => unknown>;

function createInterpreter(env: Environment, flavour: ToJsonFlavour): Interpreter {
  const interpreter = new Interpreter(env);
  const overrides: Overrides = {
    applyFilter(operand: RuntimeValue, filterNode: any, environment: Environment) {
      return applyFilter.call(this, flavour, operand, filterNode, environment);
    },
    evaluateBinaryExpression,
    evaluateBlock,
  };
  return Object.assign(interpreter, overrides);
}

function applyFilter(this: Record<string, any>, flavour: ToJsonFlavour, operand: RuntimeValue, filterNode: any, environment: Environment) {
  const isCall = filterNode.type === "CallExpression";
  const name = isCall ? (filterNode.callee.type === "Identifier" ? filterNode.callee.value : undefined) : filterNode.value;
  if (name === "tojson" || name === "trim") {
    const [args, kwargs] = isCall ? this.evaluateArguments(filterNode.args, environment) : [[], new Map()];
    if (name === "tojson") return new StringValue(toJson(flavour, operand, args, kwargs));
    const chars = kwargs.get("chars") ?? args[0];
    return new StringValue(pythonStrip(pyStr(operand), chars === undefined || chars.type === "NullValue" ? null : pyStr(chars)));
  }
  if (name === "string") return new StringValue(pyStr(operand));
  if (name === "select" || name === "reject" || name === "join") {
    const [args, kwargs] = isCall ? this.evaluateArguments(filterNode.args, environment) : [[], new Map()];
    const items = iterate(operand);
    if (name === "join") {
      const separator = kwargs.get("d") ?? args[0];
      return new StringValue(items.map(pyStr).join(separator === undefined ? "" : pyStr(separator)));
    }
    // select/reject(test, *args): keep the items for which the test passes (or fails).
    const [testName, ...testArgs] = args;
    const test =
      testName === undefined
        ? (v: RuntimeValue) => truthy(v)
        : (v: RuntimeValue) => {
            const t = (environment as unknown as { tests: ReadonlyMap<string, (...v: RuntimeValue[]) => boolean> }).tests.get(pyStr(testName));
            if (!t) throw new ChatTemplateError(`No test named '${pyStr(testName)}'`);
            return t(v, ...testArgs);
          };
    return new ArrayValue(items.filter((v) => test(v) === (name === "select")));
  }
  return ORIGINAL.applyFilter.call(this, operand, filterNode, environment);
}

/** The items of an iterable as jinja2 iterates them (a dict yields its keys, a string its characters). */
function iterate(v: RuntimeValue): RuntimeValue[] {
  switch (v.type) {
    case "ArrayValue":
    case "TupleValue":
      return v.value;
    case "StringValue":
      return Array.from(v.value as string, (c) => new StringValue(c));
    case "ObjectValue":
      return [...(v.value as Map<string, RuntimeValue>).keys()].map((k) => new StringValue(k));
    default:
      throw new ChatTemplateError(`'${v.type}' object is not iterable`);
  }
}

/** Python truthiness of a runtime value. */
function truthy(v: RuntimeValue): boolean {
  switch (v.type) {
    case "ArrayValue":
    case "TupleValue":
    case "StringValue":
      return v.value.length > 0;
    case "ObjectValue":
      return v.value.size > 0;
    case "NullValue":
    case "UndefinedValue":
      return false;
    default:
      return Boolean(v.value);
  }
}

function evaluateBinaryExpression(this: Record<string, any>, node: any, environment: Environment) {
  const op = node.operator.value;
  if (op !== "+" && op !== "~") return ORIGINAL.evaluateBinaryExpression.call(this, node, environment);
  const left: RuntimeValue = this.evaluate(node.left, environment);
  const right: RuntimeValue = this.evaluate(node.right, environment);
  if (op === "~") return new StringValue(pyStr(left) + pyStr(right));
  const numeric = (v: RuntimeValue) => v.type === "IntegerValue" || v.type === "FloatValue" || v.type === "BooleanValue";
  if (left.type === "StringValue" && right.type === "StringValue") return new StringValue(left.value + right.value);
  if (numeric(left) && numeric(right)) {
    const sum = Number(left.value) + Number(right.value);
    return left.type === "FloatValue" || right.type === "FloatValue" ? new FloatValue(sum) : new IntegerValue(sum);
  }
  if ((left.type === "ArrayValue" || left.type === "TupleValue") && left.type === right.type) {
    return new ArrayValue([...left.value, ...right.value]);
  }
  throw new ChatTemplateError(`unsupported operand type(s) for +: ${describe(left)} and ${describe(right)}`);
}

function describe(v: RuntimeValue): string {
  return v.type === "UndefinedValue" ? "an undefined value" : `'${v.type.replace(/Value$/, "").toLowerCase()}'`;
}

function evaluateBlock(this: Record<string, any>, statements: any[], environment: Environment) {
  let result = "";
  for (const statement of statements) {
    const value: RuntimeValue = this.evaluate(statement, environment);
    if (STATEMENT_TYPES.has(statement.type)) {
      if (value.type !== "NullValue" && value.type !== "UndefinedValue") result += value.toString();
    } else {
      result += pyStr(value);
    }
  }
  return new StringValue(result);
}

/** jinja2's `iterable` test is true for dicts too; the other tests are unchanged. */
function pythonTests(env: Environment): void {
  const tests = new Map((env as unknown as { tests: ReadonlyMap<string, (...v: RuntimeValue[]) => boolean> }).tests);
  tests.set("iterable", (v) => ["ArrayValue", "TupleValue", "StringValue", "ObjectValue", "NamespaceValue"].includes(v.type));
  (env as unknown as { tests: ReadonlyMap<string, unknown> }).tests = tests;
}

/** Python `range(start, stop, step)` over ints. */
function range(...args: number[]): number[] {
  const [start, stop, step] = args.length === 1 ? [0, args[0], 1] : [args[0], args[1], args[2] ?? 1];
  if (step === 0) throw new ChatTemplateError("range() arg 3 must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** A compiled template: parse once, render many times. */
export class JinjaTemplate {
  private readonly program: ReturnType<typeof parse>;

  constructor(
    source: string,
    private readonly options: JinjaOptions,
  ) {
    // jinja2 reads \r\n and \r as \n; @huggingface/jinja drops the one trailing newline itself.
    const text = source.replace(/\r\n?/g, "\n");
    try {
      this.program = parse(tokenize(text, { trim_blocks: options.trimBlocks, lstrip_blocks: options.lstripBlocks }));
    } catch (e) {
      throw new ChatTemplateError(`template syntax error: ${(e as Error).message}`);
    }
  }

  /**
   * Renders with the given variables (JavaScript values; functions become callables) on top of the
   * jinja globals `true`/`false`/`none` (any case), `range`, `namespace` and `raise_exception`.
   */
  render(variables: Record<string, unknown>): string {
    const env = new Environment();
    pythonTests(env);
    const globals: Record<string, unknown> = {
      true: true,
      false: false,
      none: null,
      True: true,
      False: false,
      None: null,
      range,
      raise_exception: (message: unknown) => {
        throw new ChatTemplateError(String(message));
      },
    };
    for (const [name, value] of Object.entries({ ...globals, ...variables })) env.setVariable(name, toRuntime(value) as never);
    try {
      const result = createInterpreter(env, this.options.tojson).run(this.program) as unknown as RuntimeValue;
      return result.value as string;
    } catch (e) {
      if (e instanceof ChatTemplateError) throw e;
      throw new ChatTemplateError((e as Error).message);
    }
  }
}
