/**
 * Just enough of CPython 3.11's tokenizer and PEG expression grammar to answer what the reference's
 * `ast.parse` answers for model completions (llama-reference.md §2.6 step 5c): is this text one
 * expression statement, is it syntactically valid, and what is its AST.
 *
 * Covered: the whole expression grammar (literals of every kind, displays and comprehensions, calls,
 * attribute/subscript/slices, operators, comparisons, boolean ops, conditional expressions, lambda,
 * walrus, await, parenthesised yield), comments, line continuations, implicit string concatenation,
 * indentation errors, and expression statements separated by newlines or `;`. Statements other than
 * expression statements (`x = 1`, `def`, `import`, …) are not judged: parsing stops there and the
 * body ends with an {@link UNSUPPORTED_STATEMENT} node. Not covered: `\N{name}` escapes are accepted but left unexpanded (no Unicode name table),
 * and f-string replacement fields are checked loosely.
 */

import {
  PY_ELLIPSIS,
  PyBytes,
  PyComplex,
  type PyValue,
} from "./python-literal.js";

/**
 * CPython's tokenizer refuses more than 200 nested brackets ("too many nested parentheses", MAXLEVEL).
 */
const MAX_BRACKET_DEPTH = 200;

/**
 * Expression nesting (counted from a keyword value inside `[f(...)]`) beyond which CPython 3.11 raises
 * `RecursionError: maximum recursion depth exceeded during ast construction` (3000 levels minus the
 * caller's stack; measured: 2973 chained unary operators, `+1` terms or `.attr` trailers parse, 2974
 * raise). Also keeps pathological input from overflowing the JavaScript stack.
 */
const MAX_AST_DEPTH = 2977;

/** Python's `RecursionError` while building the AST of deeply nested input. */
export class PythonRecursionError extends Error {
  override readonly name = "PythonRecursionError";
}

/** Python's `SyntaxError` (including `IndentationError`) from `ast.parse`. */
export class PythonSyntaxError extends Error {
  override readonly name = "PythonSyntaxError";
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// AST (the subset of Python's `ast` node types that callers inspect; the rest is `Other`)
// ---------------------------------------------------------------------------------------------

export interface PyKeyword {
  /** `null` for `**mapping`. */
  arg: string | null;
  value: PyNode;
}

export type PyNode =
  | { type: "Constant"; value: PyValue }
  | { type: "Name"; id: string }
  | { type: "List" | "Tuple" | "Set"; elts: PyNode[] }
  | { type: "Dict"; keys: (PyNode | null)[]; values: PyNode[] }
  | { type: "Call"; func: PyNode; args: PyNode[]; keywords: PyKeyword[] }
  | { type: "UnaryOp"; op: "UAdd" | "USub" | "Not" | "Invert"; operand: PyNode }
  | { type: "BinOp"; op: string; left: PyNode; right: PyNode }
  | { type: "Starred"; value: PyNode }
  | { type: "Attribute"; value: PyNode; attr: string }
  | { type: "Subscript"; value: PyNode; slice: PyNode }
  /** Any other expression (comparison, lambda, comprehension, f-string, …): never a literal. */
  | { type: "Other"; kind: string };

/** Ends a module body where a statement that is not an expression statement begins (not judged). */
export const UNSUPPORTED_STATEMENT: PyNode = Object.freeze({ type: "Other", kind: "UnsupportedStatement" });

class UnsupportedStatement extends Error {}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

type TokenType = "NAME" | "NUMBER" | "STRING" | "OP" | "NEWLINE" | "EOF";

interface Token {
  type: TokenType;
  /** Raw source text (for NAME: as written; keywords are matched on this). */
  text: string;
  start: number;
  /** NAME: the NFKC-normalised identifier. */
  name?: string;
  /** NUMBER and STRING: the literal value (an f-string has none). */
  value?: PyValue;
  /** STRING pieces: bytes vs str, and whether it was an f-string. */
  isBytes?: boolean;
  isFString?: boolean;
}

const KEYWORDS = new Set([
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def",
  "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is",
  "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
]);

/** Keywords that may directly follow a number literal (CPython 3.11 `verify_end_of_number` warns only). */
const KEYWORDS_AFTER_NUMBER = ["and", "else", "for", "if", "in", "is", "not", "or"];

const OPERATORS = [
  "**=", "//=", ">>=", "<<=", "...", "!=", "%=", "&=", "**", "*=", "+=", "-=", "->", "//", "/=", ":=",
  "<<", "<=", "==", ">=", ">>", "@=", "^=", "|=", "(", ")", "[", "]", "{", "}", ":", ",", ";", "+", "-",
  "*", "/", "|", "&", "<", ">", "=", ".", "%", "~", "^", "@",
];

const STRING_PREFIXES = new Set(["r", "u", "f", "b", "br", "rb", "fr", "rf"]);

/** CPython 3.11 refuses decimal int literals longer than this (`sys.get_int_max_str_digits()`). */
const INT_MAX_STR_DIGITS = 4300;

// Number literals (sticky: matched in place, without slicing the source).
const HEX_INT = /0[xX](?:_?[0-9a-fA-F])+/y;
const OCT_INT = /0[oO](?:_?[0-7])+/y;
const BIN_INT = /0[bB](?:_?[01])+/y;
const DECIMAL = /(?:(?:[0-9](?:_?[0-9])*)?\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*\.?)(?:[eE][-+]?[0-9](?:_?[0-9])*)?[jJ]?/y;
const XID_START = /^[\p{XID_Start}_]$/u;
const XID_CONTINUE = /^[\p{XID_Continue}]$/u;

function isAsciiIdentChar(c: string): boolean {
  return /[A-Za-z0-9_]/.test(c);
}

function isIdentifier(s: string): boolean {
  const chars = Array.from(s);
  if (chars.length === 0 || !XID_START.test(chars[0])) return false;
  return chars.every((c) => XID_CONTINUE.test(c));
}

const HEX = /^[0-9a-fA-F]+$/;

/** Decodes the body of a non-raw string literal (Python escape rules), or throws. */
function decodeEscapes(body: string, isBytes: boolean, at: number): string {
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = body[++i];
    if (e === undefined) throw new PythonSyntaxError("unterminated string literal", at);
    switch (e) {
      case "\n":
        break;
      case "\\":
      case "'":
      case '"':
        out += e;
        break;
      case "a":
        out += "\x07";
        break;
      case "b":
        out += "\b";
        break;
      case "f":
        out += "\f";
        break;
      case "n":
        out += "\n";
        break;
      case "r":
        out += "\r";
        break;
      case "t":
        out += "\t";
        break;
      case "v":
        out += "\v";
        break;
      case "x": {
        const h = body.slice(i + 1, i + 3);
        if (h.length < 2 || !HEX.test(h)) throw new PythonSyntaxError("(unicode error) truncated \\xXX escape", at);
        out += String.fromCharCode(parseInt(h, 16));
        i += 2;
        break;
      }
      case "u":
      case "U": {
        if (isBytes) {
          out += "\\" + e;
          break;
        }
        const len = e === "u" ? 4 : 8;
        const h = body.slice(i + 1, i + 1 + len);
        if (h.length < len || !HEX.test(h)) throw new PythonSyntaxError(`(unicode error) truncated \\${e} escape`, at);
        const cp = parseInt(h, 16);
        if (cp > 0x10ffff) throw new PythonSyntaxError("(unicode error) illegal Unicode character", at);
        out += String.fromCodePoint(cp);
        i += len;
        break;
      }
      case "N": {
        if (isBytes) {
          out += "\\N";
          break;
        }
        const close = body.indexOf("}", i);
        if (body[i + 1] !== "{" || close === -1 || close === i + 2) {
          throw new PythonSyntaxError("(unicode error) malformed \\N character escape", at);
        }
        // No Unicode name table here: keep the escape as written.
        out += body.slice(i - 1, close + 1);
        i = close;
        break;
      }
      default:
        if (e >= "0" && e <= "7") {
          let j = i;
          while (j < i + 3 && body[j] >= "0" && body[j] <= "7") j++;
          out += String.fromCharCode(parseInt(body.slice(i, j), 8));
          i = j - 1;
        } else {
          out += "\\" + e; // unknown escapes are kept (a DeprecationWarning in Python)
        }
    }
  }
  return out;
}

class Tokenizer {
  private pos = 0;
  private depth = 0;
  private atLineStart = true;
  readonly tokens: Token[] = [];

  constructor(private readonly src: string) {}

  run(): Token[] {
    const src = this.src;
    while (this.pos < src.length) {
      if (this.atLineStart && this.depth === 0) {
        if (this.lineStart()) continue;
      }
      const c = src[this.pos];
      if (c === " " || c === "\t" || c === "\f") {
        this.pos++;
      } else if (c === "#") {
        while (this.pos < src.length && src[this.pos] !== "\n") this.pos++;
      } else if (c === "\n") {
        this.pos++;
        if (this.depth === 0) {
          this.push("NEWLINE", "\n", this.pos - 1);
          this.atLineStart = true;
        }
      } else if (c === "\\") {
        if (src[this.pos + 1] !== "\n") throw new PythonSyntaxError("unexpected character after line continuation character", this.pos);
        this.pos += 2;
        if (this.pos >= src.length) throw new PythonSyntaxError("unexpected EOF while parsing", this.pos);
      } else if (c === '"' || c === "'") {
        this.string("", this.pos);
      } else if ((c >= "0" && c <= "9") || (c === "." && src[this.pos + 1] >= "0" && src[this.pos + 1] <= "9")) {
        this.number();
      } else if (isAsciiIdentChar(c) || c.charCodeAt(0) >= 0x80) {
        this.nameOrPrefixedString();
      } else {
        this.operator();
      }
    }
    if (this.depth > 0) throw new PythonSyntaxError("'(' was never closed", this.src.length);
    if (!this.atLineStart) this.push("NEWLINE", "", this.src.length);
    this.push("EOF", "", this.src.length);
    return this.tokens;
  }

  /** Handles indentation and blank lines at the start of a logical line; true if it consumed a line. */
  private lineStart(): boolean {
    const src = this.src;
    let p = this.pos;
    let column = 0;
    while (p < src.length) {
      const c = src[p];
      if (c === " ") column++;
      else if (c === "\t") column = (Math.floor(column / 8) + 1) * 8;
      else if (c === "\f") column = 0;
      else break;
      p++;
    }
    if (p >= src.length) {
      this.pos = p;
      return true;
    }
    const c = src[p];
    if (c === "#" || c === "\n") {
      // blank or comment-only line: no NEWLINE token, indentation irrelevant
      while (p < src.length && src[p] !== "\n") p++;
      this.pos = p < src.length ? p + 1 : p;
      return true;
    }
    this.pos = p;
    this.atLineStart = false;
    if (column !== 0) throw new PythonSyntaxError("unexpected indent", p);
    return false;
  }

  private push(type: TokenType, text: string, start: number, extra: Partial<Token> = {}): void {
    this.tokens.push({ type, text, start, ...extra });
  }

  private operator(): void {
    const src = this.src;
    const start = this.pos;
    for (const op of OPERATORS) {
      if (src.startsWith(op, start)) {
        this.pos += op.length;
        if (op === "(" || op === "[" || op === "{") {
          if (this.depth >= MAX_BRACKET_DEPTH) throw new PythonSyntaxError("too many nested parentheses", start);
          this.depth++;
        }
        if (op === ")" || op === "]" || op === "}") {
          if (this.depth === 0) throw new PythonSyntaxError(`unmatched '${op}'`, start);
          this.depth--;
        }
        this.push("OP", op, start);
        return;
      }
    }
    const cp = src.codePointAt(start)!;
    throw new PythonSyntaxError(`invalid character U+${cp.toString(16).toUpperCase().padStart(4, "0")}`, start);
  }

  private nameOrPrefixedString(): void {
    const src = this.src;
    const start = this.pos;
    let p = start;
    while (p < src.length) {
      const c = src[p];
      if (isAsciiIdentChar(c) || c.charCodeAt(0) >= 0x80) p++;
      else break;
    }
    const text = src.slice(start, p);
    if ((src[p] === '"' || src[p] === "'") && STRING_PREFIXES.has(text.toLowerCase())) {
      this.pos = p;
      this.string(text.toLowerCase(), start);
      return;
    }
    if (!isIdentifier(text)) {
      const bad = Array.from(text).find((c, i) => !(i === 0 ? XID_START : XID_CONTINUE).test(c)) ?? text;
      throw new PythonSyntaxError(`invalid character '${bad}'`, start);
    }
    this.pos = p;
    this.push("NAME", text, start, { name: text.normalize("NFKC") });
  }

  private string(prefix: string, start: number): void {
    const src = this.src;
    const quote = src[this.pos];
    const triple = src.startsWith(quote.repeat(3), this.pos);
    const delim = triple ? quote.repeat(3) : quote;
    let p = this.pos + delim.length;
    const bodyStart = p;
    for (;;) {
      if (p >= src.length) throw new PythonSyntaxError(triple ? "unterminated triple-quoted string literal" : "unterminated string literal", start);
      const c = src[p];
      if (c === "\\") {
        p += 2;
        continue;
      }
      if (!triple && c === "\n") throw new PythonSyntaxError("unterminated string literal", start);
      if (src.startsWith(delim, p)) break;
      p++;
    }
    const body = src.slice(bodyStart, p);
    this.pos = p + delim.length;
    const raw = prefix.includes("r");
    const isBytes = prefix.includes("b");
    const isFString = prefix.includes("f");
    if (isBytes && /[^\x00-\x7f]/.test(body)) throw new PythonSyntaxError("bytes can only contain ASCII literal characters", start);
    if (isFString) {
      checkFStringBody(body, start);
      this.push("STRING", src.slice(start, this.pos), start, { isFString: true, isBytes: false });
      return;
    }
    const text = raw ? body : decodeEscapes(body, isBytes, start);
    if (isBytes) {
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i);
        if (code > 0xff) throw new PythonSyntaxError("(value error) bytes escape out of range", start);
        bytes[i] = code;
      }
      this.push("STRING", src.slice(start, this.pos), start, { value: new PyBytes(bytes), isBytes: true });
    } else {
      this.push("STRING", src.slice(start, this.pos), start, { value: text, isBytes: false });
    }
  }

  private number(): void {
    const src = this.src;
    const start = this.pos;
    let m: RegExpExecArray | null;
    let value: PyValue;
    const digits = (s: string) => s.replace(/_/g, "");
    const at = (re: RegExp) => {
      re.lastIndex = start;
      return re.exec(src);
    };
    if ((m = at(HEX_INT))) {
      value = BigInt("0x" + digits(m[0].slice(2)));
    } else if ((m = at(OCT_INT))) {
      value = BigInt("0o" + digits(m[0].slice(2)));
    } else if ((m = at(BIN_INT))) {
      value = BigInt("0b" + digits(m[0].slice(2)));
    } else if ((m = at(DECIMAL))) {
      const t = m[0];
      const isImag = /[jJ]$/.test(t);
      const body = isImag ? t.slice(0, -1) : t;
      if (isImag) value = new PyComplex(0, Number(digits(body)));
      else if (/[.eE]/.test(body)) value = Number(digits(body));
      else {
        if (body.startsWith("0") && /[1-9]/.test(body)) {
          throw new PythonSyntaxError("leading zeros in decimal integer literals are not permitted", start);
        }
        const decimal = digits(body);
        if (decimal.length > INT_MAX_STR_DIGITS) {
          throw new PythonSyntaxError(`Exceeds the limit (${INT_MAX_STR_DIGITS} digits) for integer string conversion`, start);
        }
        value = BigInt(decimal);
      }
    } else {
      throw new PythonSyntaxError("invalid decimal literal", start);
    }
    const end = start + m![0].length;
    // A number glued to an identifier character is an error, except before a few keywords (1if x else y).
    const next = src[end];
    if (next !== undefined && (isAsciiIdentChar(next) || next.charCodeAt(0) >= 0x80)) {
      if (!KEYWORDS_AFTER_NUMBER.some((k) => src.startsWith(k, end))) {
        throw new PythonSyntaxError("invalid decimal literal", end);
      }
    }
    this.pos = end;
    this.push("NUMBER", m![0], start, { value });
  }
}

/** Loose check of f-string replacement fields: balanced braces and non-empty, parseable expressions. */
function checkFStringBody(body: string, at: number): void {
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "{") {
      if (body[i + 1] === "{") {
        i++;
        continue;
      }
      let depth = 1;
      let j = i + 1;
      let exprEnd = -1;
      for (; j < body.length && depth > 0; j++) {
        const d = body[j];
        if (d === "{" || d === "[" || d === "(") depth++;
        else if (d === "}" || d === "]" || d === ")") depth--;
        else if (depth === 1 && exprEnd === -1 && (d === "!" || d === ":") && body[j + 1] !== "=") exprEnd = j;
      }
      if (depth !== 0) throw new PythonSyntaxError("f-string: expecting '}'", at);
      let expr = body.slice(i + 1, exprEnd === -1 ? j - 1 : exprEnd).replace(/=\s*$/, "");
      if (expr.trim() === "") throw new PythonSyntaxError("f-string: empty expression not allowed", at);
      expr = expr.replace(/\n/g, " ");
      parseFStringExpression(expr, at);
      i = j - 1;
    } else if (c === "}") {
      if (body[i + 1] !== "}") throw new PythonSyntaxError("f-string: single '}' is not allowed", at);
      i++;
    }
  }
}

function parseFStringExpression(expr: string, at: number): void {
  try {
    const tokens = new Tokenizer("(" + expr + ")").run();
    const parser = new Parser(tokens);
    parser.parseStarExpressions();
    parser.expectEndOfStatement();
  } catch (e) {
    if (e instanceof PythonSyntaxError) throw new PythonSyntaxError(`f-string: ${e.message}`, at);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

const OTHER = (kind: string): PyNode => ({ type: "Other", kind });

const STATEMENT_KEYWORDS = new Set([
  "assert", "async", "break", "class", "continue", "def", "del", "for", "from", "global", "if", "import",
  "nonlocal", "pass", "raise", "return", "try", "while", "with",
]);

const AUGMENTED_ASSIGN = new Set(["+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=", "^=", ">>=", "<<=", "**="]);

class Parser {
  private i = 0;
  /** Current AST nesting, see {@link MAX_AST_DEPTH}. */
  private level = 0;
  constructor(private readonly tokens: Token[]) {}

  /** Enters `n` levels of AST nesting (left by {@link leave}; an exception abandons the parse anyway). */
  private enter(n = 1): void {
    this.level += n;
    if (this.level > MAX_AST_DEPTH) throw new PythonRecursionError("maximum recursion depth exceeded during ast construction");
  }
  private leave(n = 1): void {
    this.level -= n;
  }

  private get tok(): Token {
    return this.tokens[this.i];
  }
  private peek(offset = 1): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)];
  }
  private isOp(text: string, t: Token = this.tok): boolean {
    return t.type === "OP" && t.text === text;
  }
  private isKeyword(text: string, t: Token = this.tok): boolean {
    return t.type === "NAME" && t.text === text;
  }
  private isPlainName(t: Token = this.tok): boolean {
    return t.type === "NAME" && !KEYWORDS.has(t.text);
  }
  private error(message = "invalid syntax"): never {
    throw new PythonSyntaxError(message, this.tok.start);
  }
  private expectOp(text: string): void {
    if (!this.isOp(text)) this.error(`expected '${text}'`);
    this.i++;
  }
  private acceptOp(text: string): boolean {
    if (this.isOp(text)) {
      this.i++;
      return true;
    }
    return false;
  }
  private acceptKeyword(text: string): boolean {
    if (this.isKeyword(text)) {
      this.i++;
      return true;
    }
    return false;
  }

  /** The expression statements of a module, up to the first statement of another kind. */
  parseModule(): PyNode[] {
    const body: PyNode[] = [];
    try {
      this.parseStatements(body);
    } catch (e) {
      if (!(e instanceof UnsupportedStatement)) throw e;
      body.push(UNSUPPORTED_STATEMENT);
    }
    return body;
  }

  private at(type: TokenType): boolean {
    return this.tok.type === type;
  }

  private parseStatements(body: PyNode[]): void {
    while (!this.at("EOF")) {
      if (this.at("NEWLINE")) {
        this.i++;
        continue;
      }
      body.push(this.parseSimpleStatement());
      while (this.acceptOp(";")) {
        if (this.at("NEWLINE") || this.at("EOF")) break;
        body.push(this.parseSimpleStatement());
      }
      if (this.at("NEWLINE")) this.i++;
      else if (!this.at("EOF")) this.error();
    }
  }

  private parseSimpleStatement(): PyNode {
    const t = this.tok;
    if (t.type === "NAME" && STATEMENT_KEYWORDS.has(t.text)) throw new UnsupportedStatement();
    if (this.isOp("@")) throw new UnsupportedStatement();
    const node = this.isKeyword("yield") ? this.parseYield() : this.parseStarExpressions();
    if (this.isOp("=") || this.isOp(":") || (this.tok.type === "OP" && AUGMENTED_ASSIGN.has(this.tok.text))) {
      throw new UnsupportedStatement();
    }
    return node;
  }

  expectEndOfStatement(): void {
    if (this.tok.type === "NEWLINE") this.i++;
    if (this.tok.type !== "EOF") this.error();
  }

  /** star_expressions: a bare tuple when commas appear. */
  parseStarExpressions(): PyNode {
    const first = this.parseStarExpression();
    if (!this.isOp(",")) return first;
    const elts = [first];
    while (this.acceptOp(",")) {
      if (!this.startsExpression()) break;
      elts.push(this.parseStarExpression());
    }
    return { type: "Tuple", elts };
  }

  private parseStarExpression(): PyNode {
    if (this.acceptOp("*")) return { type: "Starred", value: this.parseBitwiseOr() };
    return this.parseExpression();
  }

  private startsExpression(): boolean {
    const t = this.tok;
    if (t.type === "NUMBER" || t.type === "STRING") return true;
    if (t.type === "NAME") {
      return !KEYWORDS.has(t.text) || ["None", "True", "False", "not", "lambda", "await"].includes(t.text);
    }
    return t.type === "OP" && ["(", "[", "{", "-", "+", "~", "*", "..."].includes(t.text);
  }

  /** expression: disjunction ['if' disjunction 'else' expression] | lambdef */
  parseExpression(): PyNode {
    if (this.isKeyword("lambda")) return this.parseLambda();
    const body = this.parseDisjunction();
    if (this.acceptKeyword("if")) {
      this.parseDisjunction();
      if (!this.acceptKeyword("else")) this.error("expected 'else' after 'if' expression");
      this.enter();
      this.parseExpression();
      this.leave();
      return OTHER("IfExp");
    }
    return body;
  }

  /** named_expression: NAME ':=' expression | expression !':=' */
  private parseNamedExpression(): PyNode {
    if (this.isPlainName() && this.isOp(":=", this.peek())) {
      this.i += 2;
      this.parseExpression();
      return OTHER("NamedExpr");
    }
    const node = this.parseExpression();
    if (this.isOp(":=")) this.error("cannot use assignment expressions with this expression");
    return node;
  }

  private parseStarNamedExpression(): PyNode {
    if (this.acceptOp("*")) return { type: "Starred", value: this.parseBitwiseOr() };
    return this.parseNamedExpression();
  }

  private parseLambda(): PyNode {
    this.i++; // lambda
    this.parseParameters(":");
    this.expectOp(":");
    this.enter();
    this.parseExpression();
    this.leave();
    return OTHER("Lambda");
  }

  /** lambda parameters (no annotations), up to `close`. */
  private parseParameters(close: string): void {
    let sawDefault = false;
    let sawStar = false;
    let sawDoubleStar = false;
    let sawSlash = false;
    while (!this.isOp(close)) {
      if (sawDoubleStar) this.error("arguments cannot follow var-keyword argument");
      if (this.acceptOp("/")) {
        if (sawSlash || sawStar) this.error("/ must be ahead of *");
        sawSlash = true;
      } else if (this.acceptOp("**")) {
        if (!this.isPlainName()) this.error();
        this.i++;
        sawDoubleStar = true;
      } else if (this.acceptOp("*")) {
        if (sawStar) this.error("* argument may appear only once");
        sawStar = true;
        if (this.isPlainName()) this.i++;
      } else if (this.isPlainName()) {
        this.i++;
        if (this.acceptOp("=")) {
          this.parseExpression();
          sawDefault = true;
        } else if (sawDefault && !sawStar) {
          this.error("non-default argument follows default argument");
        }
      } else {
        this.error();
      }
      if (!this.acceptOp(",")) break;
    }
  }

  private parseDisjunction(): PyNode {
    const first = this.parseConjunction();
    if (!this.isKeyword("or")) return first;
    while (this.acceptKeyword("or")) this.parseConjunction();
    return OTHER("BoolOp");
  }

  private parseConjunction(): PyNode {
    const first = this.parseInversion();
    if (!this.isKeyword("and")) return first;
    while (this.acceptKeyword("and")) this.parseInversion();
    return OTHER("BoolOp");
  }

  private parseInversion(): PyNode {
    if (this.acceptKeyword("not")) {
      this.enter();
      const operand = this.parseInversion();
      this.leave();
      return { type: "UnaryOp", op: "Not", operand };
    }
    return this.parseComparison();
  }

  private compareOperatorLength(): number {
    const t = this.tok;
    if (t.type === "OP" && ["==", "!=", "<", "<=", ">", ">="].includes(t.text)) return 1;
    if (this.isKeyword("in")) return 1;
    if (this.isKeyword("not") && this.isKeyword("in", this.peek())) return 2;
    if (this.isKeyword("is")) return this.isKeyword("not", this.peek()) ? 2 : 1;
    return 0;
  }

  private parseComparison(): PyNode {
    const first = this.parseBitwiseOr();
    let n = this.compareOperatorLength();
    if (n === 0) return first;
    while (n > 0) {
      this.i += n;
      this.parseBitwiseOr();
      n = this.compareOperatorLength();
    }
    return OTHER("Compare");
  }

  /** A left-associative chain: n operators nest the first operand n levels deep. */
  private parseBinary(ops: readonly string[], next: () => PyNode): PyNode {
    let left = next();
    let chain = 0;
    while (this.tok.type === "OP" && ops.includes(this.tok.text)) {
      const op = this.tok.text;
      this.i++;
      this.enter();
      chain++;
      const right = next();
      left = { type: "BinOp", op, left, right };
    }
    this.leave(chain);
    return left;
  }

  parseBitwiseOr(): PyNode {
    return this.parseBinary(["|"], () =>
      this.parseBinary(["^"], () =>
        this.parseBinary(["&"], () => this.parseBinary(["<<", ">>"], () => this.parseBinary(["+", "-"], () => this.parseTerm()))),
      ),
    );
  }

  private parseTerm(): PyNode {
    return this.parseBinary(["*", "/", "//", "%", "@"], () => this.parseFactor());
  }

  private parseFactor(): PyNode {
    const t = this.tok;
    if (t.type === "OP" && (t.text === "+" || t.text === "-" || t.text === "~")) {
      this.i++;
      const op = t.text === "+" ? "UAdd" : t.text === "-" ? "USub" : "Invert";
      this.enter();
      const operand = this.parseFactor();
      this.leave();
      return { type: "UnaryOp", op, operand };
    }
    return this.parsePower();
  }

  private parsePower(): PyNode {
    const base = this.acceptKeyword("await") ? this.parseAwait() : this.parsePrimary();
    if (!this.acceptOp("**")) return base;
    this.enter();
    const right = this.parseFactor();
    this.leave();
    return { type: "BinOp", op: "**", left: base, right };
  }

  private parseAwait(): PyNode {
    this.enter();
    this.parsePrimary();
    this.leave();
    return OTHER("Await");
  }

  private parsePrimary(): PyNode {
    let node = this.parseAtom();
    let chain = 0;
    for (;;) {
      if (this.isOp(".") || this.isOp("(") || this.isOp("[")) {
        this.enter();
        chain++;
      }
      if (this.acceptOp(".")) {
        if (this.tok.type !== "NAME" || KEYWORDS.has(this.tok.text)) this.error();
        node = { type: "Attribute", value: node, attr: this.tok.name! };
        this.i++;
      } else if (this.isOp("(")) {
        node = this.parseCall(node);
      } else if (this.acceptOp("[")) {
        const slice = this.parseSlices();
        this.expectOp("]");
        node = { type: "Subscript", value: node, slice };
      } else {
        this.leave(chain);
        return node;
      }
    }
  }

  private parseSlices(): PyNode {
    const first = this.parseSlice();
    if (!this.isOp(",")) return first;
    while (this.acceptOp(",")) {
      if (this.isOp("]")) break;
      this.parseSlice();
    }
    return OTHER("Tuple");
  }

  private parseSlice(): PyNode {
    if (this.acceptOp("*")) return { type: "Starred", value: this.parseBitwiseOr() };
    let node: PyNode | null = null;
    if (!this.isOp(":")) {
      node = this.parseNamedExpression();
      if (!this.isOp(":")) return node;
    }
    this.expectOp(":");
    if (!this.isOp(":") && !this.isOp(",") && !this.isOp("]")) this.parseExpression();
    if (this.acceptOp(":")) {
      if (!this.isOp(",") && !this.isOp("]")) this.parseExpression();
    }
    return OTHER("Slice");
  }

  private parseCall(func: PyNode): PyNode {
    this.expectOp("(");
    // Call -> keyword -> value. Unchecked: bracket nesting is bounded separately, and the nodes inside
    // check as they nest further.
    this.level += 2;
    try {
      return this.parseCallArguments(func);
    } finally {
      this.leave(2);
    }
  }

  private parseCallArguments(func: PyNode): PyNode {
    const args: PyNode[] = [];
    const keywords: PyKeyword[] = [];
    let sawKeyword = false;
    let sawDoubleStar = false;
    while (!this.isOp(")")) {
      if (this.acceptOp("**")) {
        keywords.push({ arg: null, value: this.parseExpression() });
        sawDoubleStar = true;
      } else if (this.acceptOp("*")) {
        if (sawDoubleStar) this.error("iterable argument unpacking follows keyword argument unpacking");
        args.push({ type: "Starred", value: this.parseExpression() });
      } else if (this.isPlainName() && this.isOp("=", this.peek())) {
        const arg = this.tok.name!;
        this.i += 2;
        keywords.push({ arg, value: this.parseExpression() });
        sawKeyword = true;
      } else if (this.tok.type === "NAME" && ["True", "False", "None"].includes(this.tok.text) && this.isOp("=", this.peek())) {
        this.error(`cannot assign to ${this.tok.text}`);
      } else {
        const value = this.parseNamedExpression();
        if (this.isOp("=")) this.error('expression cannot contain assignment, perhaps you meant "=="?');
        if (this.isKeyword("for") || this.isKeyword("async")) {
          this.parseComprehensionClauses();
          if (args.length > 0 || keywords.length > 0 || !this.isOp(")")) this.error("Generator expression must be parenthesized");
          args.push(OTHER("GeneratorExp"));
          break;
        }
        if (sawDoubleStar) this.error("positional argument follows keyword argument unpacking");
        if (sawKeyword) this.error("positional argument follows keyword argument");
        args.push(value);
      }
      if (!this.acceptOp(",")) break;
    }
    this.expectOp(")");
    return { type: "Call", func, args, keywords };
  }

  /** for_if_clauses: ('async'? 'for' star_targets 'in' disjunction ('if' disjunction)*)+ */
  private parseComprehensionClauses(): void {
    let any = false;
    for (;;) {
      const isAsync = this.isKeyword("async") && this.isKeyword("for", this.peek());
      if (!this.isKeyword("for") && !isAsync) break;
      this.i += isAsync ? 2 : 1;
      this.parseTargets();
      if (!this.acceptKeyword("in")) this.error("expected 'in'");
      this.parseDisjunction();
      while (this.acceptKeyword("if")) this.parseDisjunction();
      any = true;
    }
    if (!any) this.error();
  }

  /** star_targets of a comprehension: assignable primaries, optionally starred, comma-separated. */
  private parseTargets(): void {
    do {
      if (this.isKeyword("in")) break;
      const starred = this.acceptOp("*");
      const node = this.parsePrimary();
      this.checkTarget(starred ? { type: "Starred", value: node } : node);
    } while (this.acceptOp(","));
  }

  private checkTarget(node: PyNode): void {
    switch (node.type) {
      case "Name":
      case "Attribute":
      case "Subscript":
        return;
      case "Starred":
        return this.checkTarget(node.value);
      case "Tuple":
      case "List":
        for (const e of node.elts) this.checkTarget(e);
        return;
      default:
        this.error("cannot assign to expression");
    }
  }

  private parseYield(): PyNode {
    this.i++; // yield
    if (this.acceptKeyword("from")) {
      this.parseExpression();
    } else if (this.startsExpression()) {
      this.parseStarExpressions();
    }
    return OTHER("Yield");
  }

  private parseAtom(): PyNode {
    const t = this.tok;
    switch (t.type) {
      case "NUMBER":
        this.i++;
        return { type: "Constant", value: t.value! };
      case "STRING":
        return this.parseStrings();
      case "NAME":
        if (t.text === "None" || t.text === "True" || t.text === "False") {
          this.i++;
          return { type: "Constant", value: t.text === "None" ? null : t.text === "True" };
        }
        if (KEYWORDS.has(t.text)) this.error();
        this.i++;
        return { type: "Name", id: t.name! };
      case "OP":
        if (t.text === "(") return this.parseParenthesised();
        if (t.text === "[") return this.parseListDisplay();
        if (t.text === "{") return this.parseBraceDisplay();
        if (t.text === "...") {
          this.i++;
          return { type: "Constant", value: PY_ELLIPSIS };
        }
        return this.error();
      default:
        return this.error(t.type === "EOF" ? "unexpected EOF while parsing" : "invalid syntax");
    }
  }

  /** Adjacent string literals concatenate; bytes and str may not mix. */
  private parseStrings(): PyNode {
    let isBytes: boolean | undefined;
    let fString = false;
    let text = "";
    const bytes: number[] = [];
    while (this.tok.type === "STRING") {
      const t = this.tok;
      if (isBytes !== undefined && isBytes !== t.isBytes) this.error("cannot mix bytes and nonbytes literals");
      isBytes = t.isBytes;
      if (t.isFString) fString = true;
      else if (t.value instanceof PyBytes) bytes.push(...t.value.bytes);
      else text += t.value as string;
      this.i++;
    }
    if (fString) return OTHER("JoinedStr");
    return { type: "Constant", value: isBytes ? new PyBytes(Uint8Array.from(bytes)) : text };
  }

  private parseParenthesised(): PyNode {
    this.expectOp("(");
    if (this.acceptOp(")")) return { type: "Tuple", elts: [] };
    if (this.isKeyword("yield")) {
      this.parseYield();
      this.expectOp(")");
      return OTHER("Yield");
    }
    const first = this.parseStarNamedExpression();
    if (this.isKeyword("for") || this.isKeyword("async")) {
      if (first.type === "Starred") this.error("iterable unpacking cannot be used in comprehension");
      this.parseComprehensionClauses();
      this.expectOp(")");
      return OTHER("GeneratorExp");
    }
    if (this.acceptOp(")")) {
      if (first.type === "Starred") this.error("cannot use starred expression here");
      return first;
    }
    const elts = [first];
    this.expectOp(",");
    while (!this.isOp(")")) {
      elts.push(this.parseStarNamedExpression());
      if (!this.acceptOp(",")) break;
    }
    this.expectOp(")");
    return { type: "Tuple", elts };
  }

  private parseListDisplay(): PyNode {
    this.expectOp("[");
    this.level++;
    try {
      return this.parseListElements();
    } finally {
      this.leave();
    }
  }

  private parseListElements(): PyNode {
    const elts: PyNode[] = [];
    if (this.acceptOp("]")) return { type: "List", elts };
    const first = this.parseStarNamedExpression();
    if (this.isKeyword("for") || this.isKeyword("async")) {
      if (first.type === "Starred") this.error("iterable unpacking cannot be used in comprehension");
      this.parseComprehensionClauses();
      this.expectOp("]");
      return OTHER("ListComp");
    }
    elts.push(first);
    while (this.acceptOp(",")) {
      if (this.isOp("]")) break;
      elts.push(this.parseStarNamedExpression());
    }
    this.expectOp("]");
    return { type: "List", elts };
  }

  private parseBraceDisplay(): PyNode {
    this.expectOp("{");
    this.level++;
    try {
      return this.parseBraceElements();
    } finally {
      this.leave();
    }
  }

  private parseBraceElements(): PyNode {
    if (this.acceptOp("}")) return { type: "Dict", keys: [], values: [] };
    // dict (with ** unpacking) or dict comprehension
    if (this.isOp("**")) return this.parseDictRest();
    const first = this.parseStarNamedExpression();
    if (this.isOp(":") && first.type !== "Starred") {
      this.i++;
      const value = this.parseExpression();
      if (this.isKeyword("for") || this.isKeyword("async")) {
        this.parseComprehensionClauses();
        this.expectOp("}");
        return OTHER("DictComp");
      }
      return this.parseDictRest(first, value);
    }
    if (this.isKeyword("for") || this.isKeyword("async")) {
      if (first.type === "Starred") this.error("iterable unpacking cannot be used in comprehension");
      this.parseComprehensionClauses();
      this.expectOp("}");
      return OTHER("SetComp");
    }
    const elts = [first];
    while (this.acceptOp(",")) {
      if (this.isOp("}")) break;
      elts.push(this.parseStarNamedExpression());
    }
    this.expectOp("}");
    return { type: "Set", elts };
  }

  private parseDictRest(firstKey?: PyNode, firstValue?: PyNode): PyNode {
    const keys: (PyNode | null)[] = [];
    const values: PyNode[] = [];
    if (firstKey && firstValue) {
      keys.push(firstKey);
      values.push(firstValue);
      if (!this.acceptOp(",")) {
        this.expectOp("}");
        return { type: "Dict", keys, values };
      }
    }
    while (!this.isOp("}")) {
      if (this.acceptOp("**")) {
        keys.push(null);
        values.push(this.parseBitwiseOr());
      } else {
        keys.push(this.parseExpression());
        this.expectOp(":");
        values.push(this.parseExpression());
      }
      if (!this.acceptOp(",")) break;
    }
    this.expectOp("}");
    return { type: "Dict", keys, values };
  }
}

/**
 * `ast.parse(source).body` for a module made of expression statements: the statements' expression
 * nodes. Throws {@link PythonSyntaxError} where CPython 3.11 raises `SyntaxError`; a statement of
 * another kind ends the body with {@link UNSUPPORTED_STATEMENT}.
 */
export function parsePythonModule(source: string): PyNode[] {
  if (source.includes("\0")) throw new PythonSyntaxError("source code string cannot contain null bytes", source.indexOf("\0"));
  const normalised = source.replace(/\r\n?/g, "\n");
  const tokens = new Tokenizer(normalised).run();
  return new Parser(tokens).parseModule();
}
