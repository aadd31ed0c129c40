/**
 * The job machinery's pure rules, run in workerd (whose URL parser is the one that normalises callback
 * URLs in production): the SSRF URL policy, the retry schedule and delivery decisions, Retry-After, the
 * Standard Webhooks signature (checked against WebCrypto and the `standardwebhooks` package), request
 * digests, and configuration errors. Expected values are written out from the rules stated in each test.
 */
import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { ConfigError } from "../../src/edge/config.js";
import { parseJobsConfig } from "../../src/edge/jobs/config.js";
import { backoffDelayMs, decideAfterAttempt, parseRetryAfter, queueDelaySeconds } from "../../src/edge/jobs/retry-policy.js";
import { canonicalJson } from "../../src/edge/jobs/request.js";
import { signDelivery } from "../../src/edge/jobs/signing.js";
import { checkCallbackUrl, isLoopbackHost, parseIPv6 } from "../../src/edge/jobs/url-policy.js";

const prod = { devMode: false };
const dev = { devMode: true };

describe("callback URL policy", () => {
  it("accepts public https URLs and drops the fragment", () => {
    for (const url of ["https://example.com/hook", "https://93.184.216.34/x", "https://[2606:4700::1111]/", "https://hooks.example.co.uk:8443/p?q=1"]) {
      const verdict = checkCallbackUrl(url, prod);
      expect(verdict.ok, url).toBe(true);
    }
    const verdict = checkCallbackUrl("https://example.com/a#secret", prod);
    expect(verdict.ok && verdict.url.href).toBe("https://example.com/a");
  });

  it("refuses every spelling of private, loopback, link-local and metadata addresses", () => {
    const refused: [string, string][] = [
      ["https://127.0.0.1/", "loopback"],
      ["https://127.0.0.1./", "loopback"],
      ["https://2130706433/", "loopback"], // decimal
      ["https://0x7f000001/", "loopback"], // hexadecimal
      ["https://017700000001/", "loopback"], // octal
      ["https://127.1/", "loopback"], // short form
      ["https://0/", "'this network'"],
      ["https://0.0.0.0/", "'this network'"],
      ["https://10.0.0.1/", "private network (10/8)"],
      ["https://172.16.5.4/", "private network (172.16/12)"],
      ["https://172.31.255.255/", "private network (172.16/12)"],
      ["https://192.168.1.1/", "private network (192.168/16)"],
      ["https://100.64.0.1/", "carrier-grade NAT"],
      ["https://169.254.169.254/latest/meta-data/", "link-local"],
      ["https://224.0.0.1/", "multicast"],
      ["https://255.255.255.255/", "reserved"],
      ["https://198.18.0.1/", "benchmarking"],
      ["https://[::]/", "unspecified"],
      ["https://[::1]/", "loopback"],
      ["https://[::ffff:127.0.0.1]/", "IPv4 address embedded in IPv6: the loopback"],
      ["https://[::ffff:169.254.169.254]/", "link-local"],
      ["https://[::ffff:0:7f00:1]/", "embedded"], // IPv4-translated
      ["https://[::127.0.0.1]/", "embedded"], // IPv4-compatible
      ["https://[64:ff9b::7f00:1]/", "NAT64 of the loopback"],
      ["https://[2002:a9fe:a9fe::1]/", "6to4 of link-local"],
      ["https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"],
      ["https://[fe80::1]/", "link-local"],
      ["https://[fd00:ec2::254]/", "unique-local"],
      ["https://[fc00::1]/", "unique-local"],
      ["https://[ff02::1]/", "multicast"],
      ["https://[2001:db8::1]/", "documentation"],
      ["https://localhost/", "loopback"],
      ["https://api.localhost/", "loopback"],
      ["https://metadata.google.internal/", '".internal"'],
      ["https://printer.local/", '".local"'],
      ["https://router.home.arpa/", '".home.arpa"'],
      ["https://intranet/", "single-label"],
    ];
    for (const [url, reason] of refused) {
      const verdict = checkCallbackUrl(url, prod);
      expect(verdict.ok, url).toBe(false);
      if (!verdict.ok) expect(verdict.reason, url).toContain(reason);
    }
  });

  it("refuses plain http, credentials, other schemes and non-URLs", () => {
    const refused: [string, string][] = [
      ["http://example.com/", "must use https"],
      ["https://user:pw@example.com/", "credentials"],
      ["https://user@example.com/", "credentials"],
      ["ftp://example.com/", "must use https, not ftp"],
      ["javascript:alert(1)", "must use https"],
      ["/relative/path", "not an absolute URL"],
      [`https://example.com/${"a".repeat(2100)}`, "longer than 2048"],
    ];
    for (const [url, reason] of refused) {
      const verdict = checkCallbackUrl(url, prod);
      expect(verdict.ok, url).toBe(false);
      if (!verdict.ok) expect(verdict.reason, url).toContain(reason);
    }
  });

  it("in development mode admits loopback (http or https) and still nothing private", () => {
    for (const url of ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9000/", "https://localhost/", "http://[::ffff:127.0.0.1]/"]) {
      expect(checkCallbackUrl(url, dev).ok, url).toBe(true);
    }
    for (const url of ["http://example.com/", "http://10.0.0.1/", "https://192.168.0.1/", "https://169.254.169.254/"]) {
      expect(checkCallbackUrl(url, dev).ok, url).toBe(false);
    }
    expect(isLoopbackHost("[::1]")).toBe(true);
    expect(isLoopbackHost("127.9.9.9")).toBe(true);
    expect(isLoopbackHost("128.0.0.1")).toBe(false);
  });

  it("parses IPv6, compressed and with a dotted-quad tail", () => {
    expect(parseIPv6("1:2:3:4:5:6:7:8")).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(parseIPv6("1::8")).toEqual([1, 0, 0, 0, 0, 0, 0, 8]);
    expect(parseIPv6("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(parseIPv6("::ffff:1.2.3.4")).toEqual([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]);
    expect(parseIPv6("::1.2.3.4")).toEqual([0, 0, 0, 0, 0, 0, 0x0102, 0x0304]);
    expect(parseIPv6("1:2:3:4:5:6:1.2.3.4")).toEqual([1, 2, 3, 4, 5, 6, 0x0102, 0x0304]);
    for (const bad of ["1:::2", "12345::", "1:2:3:4:5:6:7:8:9", "1::2::3", "::1.2.3", "g::1"]) expect(parseIPv6(bad), bad).toBeNull();
  });
});

describe("retry schedule and delivery decisions", () => {
  // delay(n) = c/2 + (c/2)·r with c = min(maxMs, baseMs·2^(n−1), 12 h): "equal jitter".
  const schedule = { baseMs: 5_000, maxMs: 43_200_000 };

  it("doubles per failure, jitters the upper half, and caps at the maximum", () => {
    expect(backoffDelayMs(1, schedule, () => 0)).toBe(2_500);
    expect(backoffDelayMs(1, schedule, () => 1)).toBe(5_000);
    expect(backoffDelayMs(2, schedule, () => 0)).toBe(5_000);
    expect(backoffDelayMs(4, schedule, () => 0.5)).toBe(30_000); // c = 40 000
    expect(backoffDelayMs(20, schedule, () => 0)).toBe(21_600_000); // c capped at 12 h
    expect(backoffDelayMs(3, { baseMs: 1_000, maxMs: 1_000 }, () => 1)).toBe(1_000);
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelayMs(3, schedule)));
    for (const d of spread) expect(d >= 10_000 && d <= 20_000).toBe(true);
    expect(spread.size).toBeGreaterThan(1);
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-11-26T12:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Thu, 26 Nov 2026 12:01:30 GMT", now)).toBe(90_000);
    expect(parseRetryAfter("Thu, 26 Nov 2026 11:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("99999999", now)).toBe(43_200_000);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });

  it("decides: 2xx delivered, 410 gone, other failures retried until the budget is spent", () => {
    const now = Date.now();
    const at = (outcome: Parameters<typeof decideAfterAttempt>[0], attempt: number) => decideAfterAttempt(outcome, attempt, 4, schedule, now, () => 0);
    const response = (status: number, retryAfter: string | null = null) => ({ kind: "response" as const, status, retryAfter });
    expect(at(response(200), 1)).toEqual({ kind: "delivered" });
    expect(at(response(204), 4)).toEqual({ kind: "delivered" });
    expect(at(response(410), 1)).toEqual({ kind: "gone" });
    expect(at(response(410), 4)).toEqual({ kind: "gone" });
    expect(at(response(500), 1)).toEqual({ kind: "retry", delayMs: 2_500 });
    expect(at(response(500), 3)).toEqual({ kind: "retry", delayMs: 10_000 });
    expect(at(response(500), 4)).toEqual({ kind: "exhausted" });
    expect(at(response(301), 1)).toEqual({ kind: "retry", delayMs: 2_500 }); // redirects are not followed
    expect(at(response(400), 1)).toEqual({ kind: "retry", delayMs: 2_500 });
    expect(at({ kind: "timeout" }, 2)).toEqual({ kind: "retry", delayMs: 5_000 });
    expect(at({ kind: "network_error", error: "refused" }, 1)).toEqual({ kind: "retry", delayMs: 2_500 });
    // Retry-After is a lower bound on 429 and 503, ignored elsewhere.
    expect(at(response(429, "60"), 1)).toEqual({ kind: "retry", delayMs: 60_000 });
    expect(at(response(503, "7"), 1)).toEqual({ kind: "retry", delayMs: 7_000 });
    expect(at(response(429, "1"), 3)).toEqual({ kind: "retry", delayMs: 10_000 });
    expect(at(response(500, "60"), 1)).toEqual({ kind: "retry", delayMs: 2_500 });
  });

  it("rounds delays up to the queue's whole seconds", () => {
    expect([0, 1, 999, 1_000, 1_001, 43_200_000].map(queueDelaySeconds)).toEqual([0, 1, 1, 1, 2, 43_200]);
  });
});

describe("Standard Webhooks signatures", () => {
  const secretA = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
  const secretB = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))}`;

  it("signs HMAC-SHA256 over id.timestamp.body with each secret (WebCrypto as the reference)", async () => {
    const at = new Date("2026-11-26T12:00:00.900Z");
    const body = '{"type":"job.succeeded","data":{"x":"ünïcödé"}}';
    const headers = signDelivery([secretA, secretB], "msg_1", at, body);
    expect(headers["webhook-id"]).toBe("msg_1");
    expect(headers["webhook-timestamp"]).toBe(String(Math.floor(at.getTime() / 1000)));
    const expected = await Promise.all(
      [secretA, secretB].map(async (secret) => {
        const raw = Uint8Array.from(atob(secret.slice(6)), (c) => c.charCodeAt(0));
        const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
        const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`msg_1.${headers["webhook-timestamp"]}.${body}`)));
        return `v1,${btoa(String.fromCharCode(...mac))}`;
      }),
    );
    expect(headers["webhook-signature"]).toBe(expected.join(" "));
  });

  it("verifies with the package for either secret, and not after tampering", () => {
    const body = JSON.stringify({ type: "job.succeeded", data: { id: "job_1" } });
    const headers = signDelivery([secretA, secretB], "msg_2", new Date(), body);
    expect(new Webhook(secretA).verify(body, { ...headers })).toEqual(JSON.parse(body));
    expect(new Webhook(secretB).verify(body, { ...headers })).toEqual(JSON.parse(body));
    expect(() => new Webhook(secretA).verify(body.replace("job_1", "job_2"), { ...headers })).toThrow("No matching signature");
    expect(() => new Webhook(secretA).verify(body, { ...headers, "webhook-id": "msg_3" })).toThrow("No matching signature");
  });
});

describe("request digests and configuration", () => {
  it("digests requests independently of key order and whitespace", () => {
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: "x" }, null], e: undefined })).toBe('{"a":[{"c":"x","d":1},null],"b":1}');
    expect(canonicalJson(JSON.parse('{ "z" : 1 ,"y":{"q":[1,2]} }'))).toBe(canonicalJson({ y: { q: [1, 2] }, z: 1 }));
  });

  it("names the variable at fault", () => {
    const bad: [Record<string, string>, string][] = [
      [{ WEBHOOK_MAX_ATTEMPTS: "0" }, "WEBHOOK_MAX_ATTEMPTS"],
      [{ WEBHOOK_DEV_MODE: "yes" }, "WEBHOOK_DEV_MODE"],
      [{ WEBHOOK_SECRETS: '{"default": {"secrets": ["hunter2"], "owners": ["*"]}}' }, "WEBHOOK_SECRETS.default.secrets.0"],
      [{ WEBHOOK_SECRETS: "{not json" }, "WEBHOOK_SECRETS: is not valid JSON"],
      [{ WEBHOOK_HOOKS: '{"h": {"verify": "github", "secret": "S", "template": "x", "destination": {"url": "https://example.com", "secret_id": "nope"}}}' }, "WEBHOOK_HOOKS.h.destination.secret_id"],
      [{ WEBHOOK_HOOKS: '{"h": {"verify": "standard-webhooks", "secret": "S", "template": "x", "replay_window_s": 600, "destination": {"url": "https://example.com"}}}' }, "WEBHOOK_HOOKS.h.replay_window_s"],
    ];
    for (const [vars, message] of bad) {
      expect(() => parseJobsConfig(vars), message).toThrow(ConfigError);
      expect(() => parseJobsConfig(vars), message).toThrow(message);
    }
    const config = parseJobsConfig({});
    expect(config).toMatchObject({ devMode: false, maxDeliveryAttempts: 16, retry: { baseMs: 5_000, maxMs: 43_200_000 }, deliveryTimeoutMs: 15_000 });
  });
});
