// Micro-benchmark: the five metric updates of one allowed HTTP request (route status and duration,
// route-backend requests, status and duration) on prom-client's Counter and Histogram against the
// series families (src/proxy/series.ts). Both get the same label objects and samples, must render
// the same /metrics text, then each one's time per request is printed. No I/O, bounded loops.
// Usage: npx projen bench:metrics [requests]   (default 200000)
// eslint-disable-next-line import/no-extraneous-dependencies
import { Counter, Histogram, Registry } from 'prom-client';
import { LabelCache, OutcomeLabels, ProxyMetrics } from '../src/proxy/metrics';
import type { ParentSpec } from '../src/model/proxy-config';

const REQUESTS = Number(process.argv[2] ?? 200_000);
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const PARENT: ParentSpec = { group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'egress', namespace: 'egress', trafficPolicy: 'Allow', networks: [], mode: 'Enforce' };
const ROUTE = { group: 'egress.cdk8s.io', kind: 'ExternalService', namespace: 'egress', name: 'api' };
const HOSTS = ['api.github.com', 'api.stripe.com', 'hooks.slack.com'];
const STATUSES = ['200', '200', '200', '201', '404', '503'];
const names = {
  statuses: 'outbound_http_route_request_statuses_total',
  duration: 'outbound_http_route_request_duration_seconds',
  backendRequests: 'outbound_http_route_backend_requests_total',
  backendStatuses: 'outbound_http_route_backend_response_statuses_total',
  backendDuration: 'outbound_http_route_backend_response_duration_seconds',
};

/** The families as the proxy declared them before series.ts, on prom-client. */
function promClientFamilies(registry: Registry) {
  const registers = [registry];
  const route = ['parent_group', 'parent_kind', 'parent_namespace', 'parent_name', 'parent_port', 'parent_section_name',
    'route_group', 'route_kind', 'route_namespace', 'route_name', 'hostname', 'caller'];
  const backend = [...route.filter((l) => l !== 'hostname' && l !== 'caller'),
    'backend_group', 'backend_kind', 'backend_namespace', 'backend_name', 'backend_port', 'backend_section_name'];
  const m = new ProxyMetrics();
  const f = (name: string) => (m.registry.getSingleMetric(name) as unknown as { help: string }).help;
  return {
    statuses: new Counter({ name: names.statuses, help: f(names.statuses), labelNames: [...route, 'http_status', 'error'], registers }),
    duration: new Histogram({ name: names.duration, help: f(names.duration), labelNames: [...route, 'http_status', 'error'], buckets: BUCKETS, registers }),
    backendRequests: new Counter({ name: names.backendRequests, help: f(names.backendRequests), labelNames: backend, registers }),
    backendStatuses: new Counter({ name: names.backendStatuses, help: f(names.backendStatuses), labelNames: [...backend, 'http_status', 'error'], registers }),
    backendDuration: new Histogram({ name: names.backendDuration, help: f(names.backendDuration), labelNames: backend, buckets: BUCKETS, registers }),
  };
}

/** Durations spread over the buckets, the same sequence for both. */
function seconds(i: number): number {
  return ((i * 7919) % 10_000) / 2_000;
}

async function main(): Promise<void> {
  const cache = new LabelCache(PARENT);
  const outcomes = new OutcomeLabels('http_status');
  const ours = new ProxyMetrics();
  const theirsRegistry = new Registry();
  const theirs = promClientFamilies(theirsRegistry);
  const op = ours.operate;

  // Per request, both do the same label-cache lookups the proxy does, then their five updates.
  function lookups(i: number) {
    const base = cache.get(80, ROUTE, HOSTS[i % HOSTS.length]);
    const status = STATUSES[i % STATUSES.length];
    const labels = outcomes.get(base, status, '');
    const backend = op.backendLabels(base, undefined);
    return { labels, backend, backendOutcome: op.outcomeLabels(backend, 'http_status', status, ''), s: seconds(i) };
  }
  let sink = 0;
  const runs = {
    'lookups only': (from: number, to: number) => {
      for (let i = from; i < to; i++) sink += lookups(i).s;
    },
    'prom-client': (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const x = lookups(i);
        theirs.statuses.inc(x.labels);
        theirs.duration.observe(x.labels, x.s);
        theirs.backendRequests.inc(x.backend, 1);
        theirs.backendStatuses.inc(x.backendOutcome);
        theirs.backendDuration.observe(x.backend, x.s);
      }
    },
    'series': (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const x = lookups(i);
        ours.httpStatuses.inc(x.labels);
        ours.httpDuration.observe(x.labels, x.s);
        op.httpBackendRequests.inc(x.backend, 1);
        op.httpBackendStatuses.inc(x.backendOutcome);
        op.httpBackendDuration.observe(x.backend, x.s);
      }
    },
  };
  const warmup = Math.min(20_000, REQUESTS);
  const results: Record<string, number> = {};
  for (const [name, run] of Object.entries(runs)) {
    run(0, warmup);
    const t0 = process.hrtime.bigint();
    run(warmup, warmup + REQUESTS);
    results[name] = Number(process.hrtime.bigint() - t0) / 1_000 / REQUESTS;
  }

  // Same updates, same exposition: the five families must render identically.
  const text = async (r: Registry) => (await Promise.all(Object.values(names).map((n) => r.getSingleMetricAsString(n)))).join('\n');
  if (await text(ours.registry) !== await text(theirsRegistry)) throw new Error('the two expositions differ');

  const lookup = results['lookups only'];
  for (const [name, us] of Object.entries(results)) {
    const updates = name === 'lookups only' ? '' : `; the 5 updates alone ${(us - lookup).toFixed(3)} µs`;
    console.log(`${name.padEnd(12)} ${us.toFixed(3)} µs per request${updates}`);
  }
  const ratio = (results.series - lookup) / (results['prom-client'] - lookup);
  console.log(`updates, series / prom-client: ${ratio.toFixed(3)}  (${REQUESTS} requests, same /metrics text; checksum ${sink.toFixed(0)})`);
}

void main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
