// Counter and histogram families for the per-request metrics: a series is resolved once per label
// object and then updated with plain arithmetic, without prom-client's per-call label hashing.
// Scrapes render them through a prom-client Registry in the shape its Counter and Histogram give.
// eslint-disable-next-line import/no-extraneous-dependencies
import type { Metric, Registry } from 'prom-client';

/** Label values by label name, as prom-client takes them. */
export type SeriesLabels = Readonly<Record<string, string>>;

export interface FamilyOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly registers: readonly Registry[];
}

/** One sample as prom-client's get() gives it; `exemplar` is null on buckets, undefined elsewhere. */
export interface SeriesSample {
  readonly value: number;
  readonly metricName?: string;
  readonly exemplar?: null;
  readonly labels: Readonly<Record<string, string | number>>;
}

/** A family as prom-client's get() gives it: what a Registry renders and the cluster sums. */
export interface FamilyExposition {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly values: SeriesSample[];
  readonly aggregator: 'sum';
}

/**
 * One family: its series by label object (the callers' label objects are cached and reused, so
 * after the first request this is the only lookup) and by label values (a reload builds new label
 * objects for the same series; they must land on the same counts, which never go down).
 */
abstract class Family<S extends { readonly labels: SeriesLabels }> {
  public readonly name: string;
  public readonly help: string;
  public readonly labelNames: readonly string[];
  /** How the cluster supervisor sums workers (prom-client's AggregatorRegistry reads it). */
  public readonly aggregator = 'sum' as const;
  private byObject = new WeakMap<SeriesLabels, S>();
  private byValues = new Map<string, S>();

  constructor(options: FamilyOptions) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...options.labelNames];
    // The registry renders anything with prom-client's get() contract, as its own
    // AggregatorRegistry does with the summed families it registers.
    for (const r of options.registers) r.registerMetric(this as unknown as Metric);
  }

  /** The series of `labels`: a lookup when this label object was seen before. */
  public series(labels: SeriesLabels): S {
    let s = this.byObject.get(labels);
    if (s === undefined) {
      s = this.resolve(labels);
      this.byObject.set(labels, s);
    }
    return s;
  }

  /** Forgets every series, as prom-client's reset() does (Registry.resetMetrics). */
  public reset(): void {
    this.byObject = new WeakMap();
    this.byValues = new Map();
  }

  protected all(): IterableIterator<S> {
    return this.byValues.values();
  }

  protected abstract create(labels: SeriesLabels): S;

  private resolve(labels: SeriesLabels): S {
    for (const name of Object.keys(labels)) {
      if (!this.labelNames.includes(name)) {
        throw new Error(`${this.name}: label "${name}" is not one of the family's labels (${this.labelNames.join(', ')})`);
      }
    }
    // An absent label (null) is another series than an empty one, as in prom-client.
    const key = JSON.stringify(this.labelNames.map((n) => labels[n] ?? null));
    let s = this.byValues.get(key);
    if (s === undefined) {
      // A copy of our own: the label order of the first object is the exposition's order.
      s = this.create({ ...labels });
      this.byValues.set(key, s);
    }
    return s;
  }
}

export class CounterSeries {
  public value = 0;
  constructor(public readonly labels: SeriesLabels) {}

  /** Adds `n` (a count: finite and not negative; anything else is ignored). */
  public inc(n = 1): void {
    if (n >= 0 && n !== Infinity) this.value += n;
  }
}

export class CounterFamily extends Family<CounterSeries> {
  public readonly type = 'counter' as const;

  /** Adds `n` to the series of `labels`; callers on a hot path keep series(labels) instead. */
  public inc(labels: SeriesLabels, n = 1): void {
    this.series(labels).inc(n);
  }

  public async get(): Promise<FamilyExposition> {
    const values: SeriesSample[] = [];
    for (const s of this.all()) values.push({ value: s.value, labels: s.labels });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected create(labels: SeriesLabels): CounterSeries {
    return new CounterSeries(labels);
  }
}

export class HistogramSeries {
  /** Samples per bucket (not cumulative), the last one above the highest bound. */
  public readonly counts: Float64Array;
  public sum = 0;
  public count = 0;
  constructor(public readonly labels: SeriesLabels, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Counts one sample (a finite number; anything else is ignored). */
  public observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

export class HistogramFamily extends Family<HistogramSeries> {
  public readonly type = 'histogram' as const;
  public readonly buckets: readonly number[];

  constructor(options: FamilyOptions & { readonly buckets: readonly number[] }) {
    if (options.labelNames.includes('le')) throw new Error(`${options.name}: "le" is the bucket label and cannot be a family label`);
    super(options);
    this.buckets = Object.freeze([...options.buckets].sort((a, b) => a - b));
  }

  /** Counts `value` in the series of `labels`; callers on a hot path keep series(labels) instead. */
  public observe(labels: SeriesLabels, value: number): void {
    this.series(labels).observe(value);
  }

  /** Per series: cumulative buckets by `le`, `+Inf`, `_sum` and `_count`, as prom-client lists them. */
  public async get(): Promise<FamilyExposition> {
    const bucket = `${this.name}_bucket`;
    const values: SeriesSample[] = [];
    for (const s of this.all()) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i];
        values.push({ value: acc, metricName: bucket, exemplar: null, labels: { le: this.buckets[i], ...s.labels } });
      }
      values.push({ value: s.count, metricName: bucket, exemplar: null, labels: { le: '+Inf', ...s.labels } });
      values.push({ value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined, labels: { ...s.labels } });
      values.push({ value: s.count, metricName: `${this.name}_count`, exemplar: undefined, labels: { ...s.labels } });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected create(labels: SeriesLabels): HistogramSeries {
    return new HistogramSeries(labels, this.buckets);
  }
}
