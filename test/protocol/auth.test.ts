import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  MAX_CLOCK_SKEW_S,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  signWorkerRequest,
  verifyWorkerRequest,
} from "../../src/protocol/index.js";

const secret = "s3cret-for-tests";
const body = JSON.stringify({ version: 1, request_id: "r1", prompt_token_ids: [1, 2, 3] });
const now = 1_800_000_000;

function request(headers: Record<string, string>, init: { method?: string; url?: string; body?: string } = {}) {
  const method = init.method ?? "POST";
  return new Request(init.url ?? "http://worker.local/v1/generate", {
    method,
    headers,
    body: method === "GET" ? undefined : (init.body ?? body),
  });
}

describe("signWorkerRequest", () => {
  it("produces the HMAC that node:crypto computes over timestamp.METHOD.path.body", async () => {
    const headers = await signWorkerRequest(secret, { method: "post", path: "/v1/generate?x=1", body }, now);
    const expected = createHmac("sha256", secret).update(`${now}.POST./v1/generate?x=1.${body}`).digest("base64");
    expect(headers[TIMESTAMP_HEADER]).toBe(String(now));
    expect(headers[SIGNATURE_HEADER]).toBe(`v1=${expected}`);
  });

  it("refuses an empty secret", async () => {
    await expect(signWorkerRequest("", { method: "GET", path: "/", body: "" })).rejects.toThrow(/empty/);
  });
});

describe("verifyWorkerRequest", () => {
  it("accepts what signWorkerRequest signed, including query and multibyte bodies", async () => {
    const b = JSON.stringify({ prompt: "héllo — 你好" });
    const headers = await signWorkerRequest(secret, { method: "POST", path: "/v1/tokenize?a=b", body: b }, now);
    const res = await verifyWorkerRequest(secret, request(headers, { url: "http://w/v1/tokenize?a=b", body: b }), b, now);
    expect(res).toEqual({ ok: true });
  });

  it("accepts any of several secrets (rotation)", async () => {
    const headers = await signWorkerRequest("new-secret", { method: "GET", path: "/readyz", body: "" }, now);
    const req = request(headers, { method: "GET", url: "http://w/readyz" });
    expect(await verifyWorkerRequest(["old-secret", "new-secret"], req, "", now)).toEqual({ ok: true });
    expect((await verifyWorkerRequest(["old-secret"], req, "", now)).ok).toBe(false);
  });

  it.each<[string, { method?: string; url?: string; body?: string }]>([
    ["the body", { body: body.replace("r1", "r2") }],
    ["the path", { url: "http://worker.local/v1/tokenize" }],
    ["the method", { method: "PUT" }],
  ])("rejects a request whose %s was changed after signing", async (_what, change) => {
    const headers = await signWorkerRequest(secret, { method: "POST", path: "/v1/generate", body }, now);
    const req = request(headers, change);
    const raw = change.body ?? body;
    expect(await verifyWorkerRequest(secret, req, raw, now)).toEqual({ ok: false, reason: "signature mismatch" });
  });

  it("rejects a wrong secret, missing headers, garbage and a stale timestamp", async () => {
    const headers = await signWorkerRequest(secret, { method: "POST", path: "/v1/generate", body }, now);
    expect((await verifyWorkerRequest("other", request(headers), body, now)).ok).toBe(false);
    expect(await verifyWorkerRequest(secret, request({}), body, now)).toMatchObject({ ok: false, reason: /missing/ });
    const garbage = { ...headers, [SIGNATURE_HEADER]: "v1=@@@" };
    expect(await verifyWorkerRequest(secret, request(garbage), body, now)).toMatchObject({ reason: /base64/ });
    const scheme = { ...headers, [SIGNATURE_HEADER]: headers[SIGNATURE_HEADER]!.replace("v1=", "v0=") };
    expect(await verifyWorkerRequest(secret, request(scheme), body, now)).toMatchObject({ reason: /v1=/ });
    const late = now + MAX_CLOCK_SKEW_S + 1;
    expect(await verifyWorkerRequest(secret, request(headers), body, late)).toMatchObject({ reason: /300 s/ });
    expect((await verifyWorkerRequest(secret, request(headers), body, now + MAX_CLOCK_SKEW_S)).ok).toBe(true);
  });
});
