/**
 * A small Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms with labels.
 * The worker's series are declared in `createWorkerMetrics` so their names live in one place.
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]!.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
    .join(",");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ""} ${formatValue(v)}`);
    return lines;
  }
}

/** A gauge read at scrape time from the component that owns the value. */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}
  render(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${formatValue(this.read())}`];
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${formatValue(b)}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ""} ${formatValue(s.sum)}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return lines;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  register<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }
  render(): string {
    return `${this.metrics.flatMap((m) => m.render()).join("\n")}\n`;
  }
}

/** Seconds; spans a fast GPU step (ms) to a long CPU prefill. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface WorkerGauges {
  queueDepth: () => number;
  running: () => number;
  kvSessions: () => number;
  kvBytes: () => number;
  liveKvCaches: () => number;
}

export function createWorkerMetrics(gauges: WorkerGauges) {
  const registry = new Registry();
  return {
    registry,
    requests: registry.register(
      new Counter("le_worker_requests_total", "Generate requests by outcome (finish_reason or HTTP error code)."),
    ),
    generations: registry.register(
      new Counter(
        "le_worker_generations_total",
        "Generations started, by engine: static_kv (the fast greedy decoder) or transformers (transformers.js step by step).",
      ),
    ),
    tokens: registry.register(
      new Counter("le_worker_tokens_total", "Tokens by kind: prompt, cached (prompt tokens served from a session cache), completion."),
    ),
    modelTokens: registry.register(
      new Counter("le_worker_model_tokens_total", "Token positions fed to the model, by phase (prefill, decode)."),
    ),
    kvLookups: registry.register(
      new Counter("le_worker_kv_cache_lookups_total", "Session cache lookups by result: hit (whole cache reused), partial (cropped to the common prefix), miss."),
    ),
    kvEvictions: registry.register(new Counter("le_worker_kv_cache_evictions_total", "Session caches evicted to stay within the byte budget.")),
    queueWait: registry.register(new Histogram("le_worker_queue_wait_seconds", "Time from receipt to start of prefill.", LATENCY_BUCKETS)),
    ttft: registry.register(new Histogram("le_worker_ttft_seconds", "Time from receipt to the first token.", LATENCY_BUCKETS)),
    prefill: registry.register(new Histogram("le_worker_prefill_seconds", "Duration of the prefill forward pass.", LATENCY_BUCKETS)),
    decodeStep: registry.register(
      new Histogram("le_worker_decode_step_seconds", "Duration of one decode step (forward + sampling).", LATENCY_BUCKETS),
    ),
    decodeBatchRows: registry.register(
      new Histogram("le_worker_decode_batch_rows", "Sequences per decode forward pass (1 unless generations run side by side).", [1, 2, 4, 8, 16, 32, 64]),
    ),
    queueDepth: registry.register(new Gauge("le_worker_queue_depth", "Requests waiting in the queue.", gauges.queueDepth)),
    running: registry.register(new Gauge("le_worker_running", "Generations running now.", gauges.running)),
    kvSessions: registry.register(new Gauge("le_worker_kv_sessions", "Session KV caches held in the LRU.", gauges.kvSessions)),
    kvBytes: registry.register(new Gauge("le_worker_kv_bytes", "Bytes of KV cache held in the LRU.", gauges.kvBytes)),
    liveKvCaches: registry.register(
      new Gauge("le_worker_kv_live_caches", "KV caches allocated and not yet disposed (LRU + running).", gauges.liveKvCaches),
    ),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
