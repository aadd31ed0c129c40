import { describe, expect, it } from "vitest";
import { createNodeVerifier } from "../../src/gpu/auth.js";
import { signWorkerRequest, verifyWorkerRequest } from "../../src/protocol/index.js";

describe("createNodeVerifier", () => {
  const secrets = ["old-secret-0123456789", "new-secret-0123456789"];
  const verify = createNodeVerifier(secrets);
  const body = JSON.stringify({ version: 1, request_id: "r", prompt: "héllo" });

  it("agrees with the WebCrypto verifier on good, forged, tampered and malformed requests", async () => {
    const good = await signWorkerRequest(secrets[1]!, { method: "POST", path: "/v1/generate?x=1", body });
    const forged = await signWorkerRequest("someone-else-012345", { method: "POST", path: "/v1/generate?x=1", body });
    const cases: Array<[Record<string, string>, string]> = [
      [good, body],
      [good, `${body} `],
      [forged, body],
      [{ ...good, "x-le-signature": "v1=AAAA" }, body],
      [{ ...good, "x-le-signature": "v1=%%%" }, body],
      [{ "x-le-timestamp": good["x-le-timestamp"]! }, body],
    ];
    for (const [headers, raw] of cases) {
      const request = new Request("http://w/v1/generate?x=1", { method: "POST", headers, body: raw });
      expect(verify(request, raw)).toEqual(await verifyWorkerRequest(secrets, request, raw));
    }
    const ok = new Request("http://w/v1/generate?x=1", { method: "POST", headers: good, body });
    expect(verify(ok, body)).toEqual({ ok: true });
  });
});
