/**
 * Callback URLs come from untrusted callers, and the gateway will POST to them from inside the provider's
 * network: a URL that points at a private service, the loopback interface or a cloud metadata endpoint
 * turns the gateway into a proxy (SSRF). A URL passes only if it is https, carries no credentials, and its
 * host is a public DNS name or a public IP address.
 *
 * IP literals are judged after the WHATWG URL parser has normalised them, which turns the decimal, octal,
 * hexadecimal and short forms (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) into dotted quads and
 * IPv6 into its canonical hex form; IPv6 addresses that embed an IPv4 address (mapped, compatible, NAT64,
 * 6to4) are judged by the embedded address. Names are refused when they are single-label or end in a
 * suffix that only resolves inside a network (`localhost`, `.internal`, `.local`, …).
 *
 * What this cannot see: a public name whose DNS answer is a private address (rebinding). On Cloudflare,
 * outbound fetches leave from Cloudflare's network, which cannot reach the customer's private ranges
 * anyway; deployments that route Workers into a private network must add a resolver check.
 */

export interface UrlPolicyOptions {
  /** Development mode: `http://` is allowed, and only for loopback hosts (which are allowed at all only here). */
  devMode: boolean;
}

export type UrlVerdict = { ok: true; url: URL } | { ok: false; reason: string };

const MAX_URL_LENGTH = 2048;

/** Name suffixes that never resolve to a public address. */
const PRIVATE_SUFFIXES = [".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".intranet", ".lan", ".corp"];

interface Cidr4 {
  base: number;
  bits: number;
  label: string;
}

const cidr4 = (text: string, label: string): Cidr4 => {
  const [addr, bits] = text.split("/");
  return { base: parseDottedQuad(addr!)!, bits: Number(bits), label };
};

/** IPv4 ranges that are not publicly routable (RFC 6890 special-purpose registry and friends). */
const BLOCKED_V4: Cidr4[] = [
  cidr4("0.0.0.0/8", "the 'this network' range"),
  cidr4("10.0.0.0/8", "a private network (10/8)"),
  cidr4("100.64.0.0/10", "carrier-grade NAT space"),
  cidr4("127.0.0.0/8", "the loopback interface"),
  cidr4("169.254.0.0/16", "link-local space (cloud metadata endpoints live here)"),
  cidr4("172.16.0.0/12", "a private network (172.16/12)"),
  cidr4("192.0.0.0/24", "IETF protocol assignments"),
  cidr4("192.0.2.0/24", "documentation space"),
  cidr4("192.88.99.0/24", "6to4 relay anycast"),
  cidr4("192.168.0.0/16", "a private network (192.168/16)"),
  cidr4("198.18.0.0/15", "benchmarking space"),
  cidr4("198.51.100.0/24", "documentation space"),
  cidr4("203.0.113.0/24", "documentation space"),
  cidr4("224.0.0.0/4", "multicast space"),
  cidr4("240.0.0.0/4", "reserved space (and broadcast)"),
];

function parseDottedQuad(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

function v4Label(addr: number): string | null {
  for (const range of BLOCKED_V4) {
    const size = 2 ** (32 - range.bits);
    if (addr >= range.base && addr < range.base + size) return range.label;
  }
  return null;
}

const isLoopbackV4 = (addr: number) => addr >>> 24 === 127;

/** Eight 16-bit groups, or null if `text` (without brackets) is not an IPv6 address. */
export function parseIPv6(text: string): number[] | null {
  let head = text;
  let tailV4: number[] = [];
  if (text.includes(".")) {
    // A dotted-quad tail stands for the last two groups.
    const lastColon = text.lastIndexOf(":");
    const v4 = parseDottedQuad(text.slice(lastColon + 1));
    if (v4 === null || lastColon < 1) return null;
    tailV4 = [v4 >>> 16, v4 & 0xffff];
    head = text.endsWith("::", lastColon + 1) ? text.slice(0, lastColon + 1) : text.slice(0, lastColon);
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const toGroups = (s: string): number[] | null => {
    if (s === "") return [];
    const groups: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      groups.push(parseInt(g, 16));
    }
    return groups;
  };
  const left = toGroups(halves[0]!);
  const right = halves.length === 2 ? toGroups(halves[1]!) : [];
  if (left === null || right === null) return null;
  const explicit = left.length + right.length + tailV4.length;
  if (halves.length === 1) return explicit === 8 ? [...left, ...tailV4] : null;
  if (explicit > 7) return null;
  return [...left, ...new Array<number>(8 - explicit).fill(0), ...right, ...tailV4];
}

const v4From = (hi: number, lo: number) => hi * 65536 + lo;

/** Why an IPv6 address is refused (null: it is public). `allowLoopback` admits ::1 (development). */
function v6Refusal(g: number[], allowLoopback: boolean): string | null {
  const zeroPrefix = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (g.every((x) => x === 0)) return "the unspecified address";
  if (zeroPrefix(7) && g[7] === 1) return allowLoopback ? null : "the loopback interface";
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d) and IPv4-compatible (::a.b.c.d).
  if ((zeroPrefix(5) && g[5] === 0xffff) || (zeroPrefix(4) && g[4] === 0xffff && g[5] === 0) || zeroPrefix(6)) {
    return v4Refusal(v4From(g[6]!, g[7]!), allowLoopback, "an IPv4 address embedded in IPv6: ");
  }
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) {
    return v4Refusal(v4From(g[6]!, g[7]!), false, "NAT64 of ");
  }
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return "local-use NAT64 space";
  if (g[0] === 0x2002) return v4Refusal(v4From(g[1]!, g[2]!), false, "6to4 of ");
  if (g[0] === 0x2001 && g[1] === 0) return "Teredo space (embeds an obfuscated IPv4 address)";
  if (g[0] === 0x2001 && g[1] === 0xdb8) return "documentation space";
  if (g[0] === 0x100 && g[1] === 0 && g[2] === 0 && g[3] === 0) return "the discard prefix";
  if ((g[0]! & 0xfe00) === 0xfc00) return "a unique-local (private) network";
  if ((g[0]! & 0xffc0) === 0xfe80) return "link-local space";
  if ((g[0]! & 0xffc0) === 0xfec0) return "site-local space";
  if ((g[0]! & 0xff00) === 0xff00) return "multicast space";
  return null;
}

function v4Refusal(addr: number, allowLoopback: boolean, prefix = ""): string | null {
  if (allowLoopback && isLoopbackV4(addr)) return null;
  const label = v4Label(addr);
  return label === null ? null : prefix + label;
}

/** Hostnames that name this machine. */
function isLoopbackName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost");
}

/** Whether the host (as `URL.hostname` gives it) is the loopback interface. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (isLoopbackName(host)) return true;
  const v4 = parseDottedQuad(host);
  if (v4 !== null) return isLoopbackV4(v4);
  if (host.startsWith("[") && host.endsWith("]")) {
    const g = parseIPv6(host.slice(1, -1));
    if (g === null) return false;
    if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return true;
    return g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff && isLoopbackV4(v4From(g[6]!, g[7]!));
  }
  return false;
}

const unreachable = (what: string) => `points at ${what}, which callbacks may not reach`;

/** Why `hostname` may not receive callbacks (completing "webhook.url …"), or null if it may. */
function hostRefusal(hostname: string, devMode: boolean): string | null {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host === "") return "has no host";
  if (host.startsWith("[")) {
    const g = parseIPv6(host.slice(1, -1));
    if (g === null) return "has an invalid IPv6 address";
    const refusal = v6Refusal(g, devMode);
    return refusal === null ? null : unreachable(refusal);
  }
  const v4 = parseDottedQuad(host);
  if (v4 !== null) {
    const refusal = v4Refusal(v4, devMode);
    return refusal === null ? null : unreachable(refusal);
  }
  if (/^[0-9.]+$/.test(host) || /^0x[0-9a-f.x]*$/i.test(host)) return "has a malformed IP address";
  if (isLoopbackName(host)) return devMode ? null : unreachable("the loopback interface");
  if (!host.includes(".")) return unreachable("a single-label name (resolvable only inside a private network)");
  const suffix = PRIVATE_SUFFIXES.find((s) => host.endsWith(s));
  if (suffix !== undefined) return unreachable(`a "${suffix}" name (resolvable only inside a private network)`);
  return null;
}

/** Judges a callback URL; the reason completes the sentence "webhook.url …". */
export function checkCallbackUrl(raw: string, options: UrlPolicyOptions): UrlVerdict {
  if (raw.length > MAX_URL_LENGTH) return { ok: false, reason: `is longer than ${MAX_URL_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: "is not an absolute URL" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return { ok: false, reason: `must use https, not ${url.protocol.slice(0, -1)}` };
  if (url.username !== "" || url.password !== "") {
    return { ok: false, reason: "must not contain credentials (user:password@); authenticate the payload with the webhook signature instead" };
  }
  const refusal = hostRefusal(url.hostname, options.devMode);
  if (refusal !== null) return { ok: false, reason: refusal };
  if (url.protocol === "http:" && !(options.devMode && isLoopbackHost(url.hostname))) {
    return { ok: false, reason: options.devMode ? "must use https (http is allowed only for loopback hosts in development mode)" : "must use https" };
  }
  url.hash = "";
  return { ok: true, url };
}
