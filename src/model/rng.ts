/**
 * Seeded pseudo-random numbers: xoshiro128** (Blackman & Vigna) seeded through splitmix64.
 *
 * Only 32-bit integer arithmetic (`Math.imul`, shifts) drives the state, so a seed gives the same
 * stream in Node, workerd and browsers. `nextNormal` also uses `Math.log`/`Math.sqrt`/`Math.cos`,
 * which are identical across V8-based runtimes (Node and workerd) but not guaranteed by the ECMAScript
 * specification across engines.
 */

const MASK64 = (1n << 64n) - 1n;

function splitmix64(state: bigint): [next: bigint, output: bigint] {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return [next, z ^ (z >> 31n)];
}

function seedToBigInt(seed: number | bigint): bigint {
  if (typeof seed === "bigint") return BigInt.asUintN(64, seed);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed: expected a safe integer or a bigint, got ${seed}`);
  return BigInt.asUintN(64, BigInt(seed));
}

/** FNV-1a (64-bit) of a string's UTF-8 bytes; used to derive independent streams from labels. */
function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & MASK64;
  }
  return h;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

export class Rng {
  // Int32Array rather than four number fields: V8 would box 32-bit values that do not fit a small
  // integer, allocating on every step.
  private readonly s = new Int32Array(4);

  constructor(seed: number | bigint) {
    let state = seedToBigInt(seed);
    const words: number[] = [];
    for (let i = 0; i < 2; i++) {
      const [next, out] = splitmix64(state);
      state = next;
      words.push(Number(out & 0xffffffffn), Number(out >> 32n));
    }
    this.s.set(words);
    // splitmix64 never yields four zero words in practice, but an all-zero state would be a fixed point.
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  /** An independent generator for `(seed, label)`, e.g. one stream per weight tensor name. */
  static derive(seed: number | bigint, label: string): Rng {
    return new Rng(seedToBigInt(seed) ^ fnv1a64(label));
  }

  /** Uniform integer in [0, 2^32). */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2] ^= s[0]!;
    s[3] ^= s[1]!;
    s[1] ^= s[2]!;
    s[0] ^= s[3]!;
    s[2] ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / TWO_POW_53;
  }

  /** Standard normal deviate (Box–Muller; one of the pair). */
  nextNormal(): number {
    const u1 = (this.nextUint32() + 0.5) / TWO_POW_32; // in (0, 1): log is finite
    const u2 = this.nextUint32() / TWO_POW_32;
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /**
   * Fills `out` with `mean + std · N(0, 1)` by Marsaglia's polar method, which yields two deviates
   * per accepted pair with one log and one square root (no trigonometry): the bulk path for weight
   * initialisation, several times faster than calling `nextNormal` per value.
   */
  fillNormal(out: Float32Array, std = 1, mean = 0): Float32Array {
    const n = out.length;
    for (let i = 0; i < n; ) {
      const u = (this.nextUint32() / TWO_POW_32) * 2 - 1;
      const v = (this.nextUint32() / TWO_POW_32) * 2 - 1;
      const s = u * u + v * v;
      if (s >= 1 || s === 0) continue;
      const scale = std * Math.sqrt((-2 * Math.log(s)) / s);
      out[i++] = mean + u * scale;
      if (i < n) out[i++] = mean + v * scale;
    }
    return out;
  }

  /** The internal state, to persist a stream (e.g. across requests of one session). */
  getState(): [number, number, number, number] {
    return [this.s[0]! >>> 0, this.s[1]! >>> 0, this.s[2]! >>> 0, this.s[3]! >>> 0];
  }

  static fromState(state: readonly [number, number, number, number]): Rng {
    if (state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32))
      throw new RangeError("state: expected four unsigned 32-bit integers");
    if (state.every((w) => w === 0)) throw new RangeError("state: must not be all zero");
    const rng = new Rng(0);
    rng.s.set(state.map((w) => w | 0));
    return rng;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
