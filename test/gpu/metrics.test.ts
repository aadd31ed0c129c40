import { describe, expect, it } from "vitest";
import { Counter, Gauge, Histogram, Registry } from "../../src/gpu/metrics.js";

describe("Prometheus registry", () => {
  it("renders counters, gauges and cumulative histogram buckets in text format 0.0.4", () => {
    const r = new Registry();
    const c = r.register(new Counter("x_total", "Things."));
    c.inc({ kind: 'a"b' });
    c.inc({ kind: 'a"b' }, 2);
    r.register(new Gauge("depth", "Depth.", () => 3));
    const h = r.register(new Histogram("lat_seconds", "Latency.", [0.1, 1]));
    h.observe(0.05);
    h.observe(0.5);
    h.observe(2);
    expect(r.render()).toBe(
      [
        "# HELP x_total Things.",
        "# TYPE x_total counter",
        'x_total{kind="a\\"b"} 3',
        "# HELP depth Depth.",
        "# TYPE depth gauge",
        "depth 3",
        "# HELP lat_seconds Latency.",
        "# TYPE lat_seconds histogram",
        'lat_seconds_bucket{le="0.1"} 1',
        'lat_seconds_bucket{le="1"} 2',
        'lat_seconds_bucket{le="+Inf"} 3',
        "lat_seconds_sum 2.55",
        "lat_seconds_count 3",
        "",
      ].join("\n"),
    );
  });
});
