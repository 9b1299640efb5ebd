// Series families against prom-client itself: the same observations give the same /metrics text,
// the same JSON the cluster supervisor gathers and the same sums across workers; series are found
// by label object and by label values (a reload's new objects keep the counts).
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { CounterFamily, HistogramFamily, type SeriesLabels } from '../../src/proxy/series';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const LABEL_NAMES = ['route_name', 'hostname', 'caller', 'http_status', 'error'];

const A: SeriesLabels = Object.freeze({ route_name: 'api', hostname: 'api.example', http_status: '200', error: '' });
const B: SeriesLabels = Object.freeze({ route_name: 'api', hostname: 'api.example', http_status: '502', error: 'CONNECT_FAILED' });
/** Same values as A plus a caller: another series. */
const WITH_CALLER: SeriesLabels = Object.freeze({ ...A, caller: 'ns/app' });
/** Label values the exposition must escape. */
const ODD: SeriesLabels = Object.freeze({ route_name: 'q"uote', hostname: 'back\\slash', http_status: 'new\nline', error: '' });

/** Durations on, between and beyond the bucket bounds, zero, and a sample above every bound. */
const DURATIONS = [0, 0.001, 0.005, 0.0050001, 0.01, 0.07, 0.1, 0.3, 1, 1.7, 2.5, 4.2, 10, 29.9, 60, 61, 1234.5];

interface Pair {
  readonly ours: Registry;
  readonly theirs: Registry;
}

function registries(): Pair {
  return { ours: new Registry(), theirs: new Registry() };
}

/** The exposition must be equal text, JSON (as it crosses the worker IPC) and summed across two workers. */
async function expectSameExposition(p: Pair): Promise<string> {
  const text = await p.ours.metrics();
  expect(text).toBe(await p.theirs.metrics());
  const ours = JSON.parse(JSON.stringify(await p.ours.getMetricsAsJSON()));
  const theirs = JSON.parse(JSON.stringify(await p.theirs.getMetricsAsJSON()));
  expect(ours).toEqual(theirs);
  const summed = await AggregatorRegistry.aggregate([ours, ours]).metrics();
  expect(summed).toBe(await AggregatorRegistry.aggregate([theirs, theirs]).metrics());
  return text;
}

describe('CounterFamily', () => {
  test('the same increments render exactly as a prom-client Counter, alone and summed across workers', async () => {
    const p = registries();
    const options = { name: 'requests_total', help: 'Requests', labelNames: LABEL_NAMES };
    const ours = new CounterFamily({ ...options, registers: [p.ours] });
    const theirs = new Counter({ ...options, registers: [p.theirs] });
    const steps: Array<[SeriesLabels, number]> = [[A, 1], [B, 3], [A, 1], [WITH_CALLER, 2], [ODD, 1], [A, 0], [B, 1]];
    for (const [labels, n] of steps) {
      ours.series(labels).inc(n);
      theirs.inc(labels, n);
    }
    const text = await expectSameExposition(p);
    // And the values are the sums of the steps, not only equal to prom-client's.
    expect(text).toContain('requests_total{route_name="api",hostname="api.example",http_status="200",error=""} 2\n');
    expect(text).toContain('requests_total{route_name="api",hostname="api.example",http_status="502",error="CONNECT_FAILED"} 4\n');
    expect(text).toContain('requests_total{route_name="api",hostname="api.example",http_status="200",error="",caller="ns/app"} 2\n');
    expect(text).toContain('requests_total{route_name="q\\"uote",hostname="back\\\\slash",http_status="new\\nline",error=""} 1\n');
  });

  test('an empty family renders its HELP and TYPE lines like prom-client', async () => {
    const p = registries();
    new CounterFamily({ name: 'none_total', help: 'Nothing yet', labelNames: LABEL_NAMES, registers: [p.ours] });
    new Counter({ name: 'none_total', help: 'Nothing yet', labelNames: LABEL_NAMES, registers: [p.theirs] });
    expect(await expectSameExposition(p)).toBe('# HELP none_total Nothing yet\n# TYPE none_total counter\n');
  });

  test('inc ignores negative, NaN and infinite amounts (a counter never goes down)', () => {
    const f = new CounterFamily({ name: 'c_total', help: 'c', labelNames: LABEL_NAMES, registers: [] });
    const s = f.series(A);
    s.inc(2);
    s.inc(-1);
    s.inc(NaN);
    s.inc(Infinity);
    s.inc();
    expect(s.value).toBe(3);
  });
});

describe('HistogramFamily', () => {
  test('the same observations render exactly as a prom-client Histogram: buckets, +Inf, sum and count', async () => {
    const p = registries();
    const options = { name: 'duration_seconds', help: 'Duration', labelNames: LABEL_NAMES, buckets: BUCKETS };
    const ours = new HistogramFamily({ ...options, registers: [p.ours] });
    const theirs = new Histogram({ ...options, registers: [p.theirs] });
    const series = [A, B, WITH_CALLER, ODD];
    DURATIONS.forEach((d, i) => {
      const labels = series[i % series.length];
      ours.series(labels).observe(d);
      theirs.observe(labels, d);
      // A second sample for A, so one series has several in one bucket.
      if (labels === A) {
        ours.series(A).observe(d / 3);
        theirs.observe(A, d / 3);
      }
    });
    const text = await expectSameExposition(p);
    // A's samples: 0, 0, 0.01, 0.0033…, 1, 0.333…, 10, 3.33…, 1234.5, 411.5.
    const a = 'route_name="api",hostname="api.example",http_status="200",error=""';
    expect(text).toContain(`duration_seconds_bucket{le="0.005",${a}} 3\n`);
    expect(text).toContain(`duration_seconds_bucket{le="0.01",${a}} 4\n`);
    expect(text).toContain(`duration_seconds_bucket{le="0.5",${a}} 5\n`);
    expect(text).toContain(`duration_seconds_bucket{le="1",${a}} 6\n`);
    expect(text).toContain(`duration_seconds_bucket{le="5",${a}} 7\n`);
    expect(text).toContain(`duration_seconds_bucket{le="60",${a}} 8\n`);
    expect(text).toContain(`duration_seconds_bucket{le="+Inf",${a}} 10\n`);
    expect(text).toContain(`duration_seconds_count{${a}} 10\n`);
    const sum = text.match(new RegExp(`^duration_seconds_sum\\{${a.replace(/[.]/g, '\\.')}\\} (.+)$`, 'm'));
    expect(Number(sum?.[1])).toBeCloseTo(1660.68, 6);
  });

  test('a value on a bound counts in that bucket; one above every bound only in +Inf', () => {
    const f = new HistogramFamily({ name: 'h', help: 'h', labelNames: LABEL_NAMES, buckets: [0.1, 1], registers: [] });
    const s = f.series(A);
    for (const v of [0.1, 1, 1.0000001, NaN, Infinity]) s.observe(v);
    expect([...s.counts]).toEqual([1, 1, 1]);
    expect(s.count).toBe(3);
    expect(s.sum).toBeCloseTo(2.1000001, 9);
  });

  test('throws when a family declares the bucket label le', () => {
    expect(() => new HistogramFamily({ name: 'h', help: 'h', labelNames: ['le'], buckets: [1], registers: [] })).toThrow(/"le" is the bucket label/);
  });
});

describe('series lookup', () => {
  test('a label object resolves once; a new object with the same values (a reload) keeps the counts', async () => {
    const registry = new Registry();
    const f = new CounterFamily({ name: 'r_total', help: 'r', labelNames: LABEL_NAMES, registers: [registry] });
    const first = f.series(A);
    expect(f.series(A)).toBe(first);
    first.inc(5);
    // The next config's label cache builds its own frozen objects, in another key order even.
    const reloaded = Object.freeze({ error: '', http_status: '200', hostname: 'api.example', route_name: 'api' });
    expect(f.series(reloaded)).toBe(first);
    f.series(reloaded).inc();
    // The same values plus a caller: another series, which exists (at 0) once looked up.
    expect(f.series(WITH_CALLER)).not.toBe(first);
    const text = await registry.metrics();
    expect(text.match(/^r_total\{/gm)).toHaveLength(2);
    expect(text).toContain('r_total{route_name="api",hostname="api.example",http_status="200",error=""} 6\n');
    expect(text).toContain('r_total{route_name="api",hostname="api.example",http_status="200",error="",caller="ns/app"} 0\n');
  });

  test('throws when a label is not one of the family\'s, naming the family and its labels', () => {
    const f = new CounterFamily({ name: 'x_total', help: 'x', labelNames: ['route_name'], registers: [] });
    expect(() => f.inc({ route_name: 'a', hostname: 'h' })).toThrow('x_total: label "hostname" is not one of the family\'s labels (route_name)');
  });

  test('Registry.resetMetrics forgets every series, and later increments land in new ones', async () => {
    const registry = new Registry();
    const f = new CounterFamily({ name: 'z_total', help: 'z', labelNames: LABEL_NAMES, registers: [registry] });
    f.inc(A, 4);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toMatch(/^z_total\{/m);
    f.inc(A);
    expect(await registry.metrics()).toContain('z_total{route_name="api",hostname="api.example",http_status="200",error=""} 1\n');
  });
});
