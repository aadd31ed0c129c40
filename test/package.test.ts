// The published entry points: after `npm run build`, a Node program imports the library by its package name.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

function runNode(source: string): string {
  return execFileSync(process.execPath, ["--input-type=module", "-e", source], { cwd: root, encoding: "utf8" });
}

describe("package entry points", () => {
  it("builds dist/ and exposes Tokenizer, ChatFormat and encodeToolCall as `llama-edge`", () => {
    execFileSync(process.execPath, [fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url)), "-p", "tsconfig.build.json"], {
      cwd: root,
      stdio: "pipe",
    });
    const out = runNode(`
      import { Tokenizer, ChatFormat, encodeToolCall, PRESETS } from "llama-edge";
      import { loadDefaultTokenizer, buildModelFolder } from "llama-edge/node";
      import { generateRequestSchema } from "llama-edge/protocol";
      const tok = await loadDefaultTokenizer();
      const chat = new ChatFormat(tok);
      const ids = chat.encodeDialogPrompt([{ role: "user", content: "This is a test sentence." }]);
      const call = encodeToolCall({ callId: "1", toolName: "brave_search", arguments: { query: "q" } }, "json");
      console.log(JSON.stringify({ ids, call, enc: tok.encode("This is a test sentence.", { bos: true, eos: true }),
        tokenizerClass: typeof Tokenizer, builder: typeof buildModelFolder, schema: typeof generateRequestSchema?.parse,
        dim8b: PRESETS["llama-3.1-8b"].dim }));
    `);
    const result = JSON.parse(out);
    // Expected ids: the reference test vectors of llama-models (test_encode, test_encode_message; llama-reference.md section 6).
    expect(result.enc).toEqual([128000, 2028, 374, 264, 1296, 11914, 13, 128001]);
    expect(result.ids).toEqual([128000, 128006, 882, 128007, 271, 2028, 374, 264, 1296, 11914, 13, 128009, 128006, 78191, 128007, 271]);
    expect(result.call).toBe('brave_search.call(query="q")');
    expect(result).toMatchObject({ tokenizerClass: "function", builder: "function", schema: "function", dim8b: 4096 });
  });
});
