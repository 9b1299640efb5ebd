/**
 * The shipped alerts and dashboard, tested for real: every PromQL expression parses with the
 * Prometheus project's Lezer grammar (no error node), and every metric and label they read is on
 * the running proxy's /metrics after real traffic through it: allowed, failing and retried HTTP,
 * gRPC, a TLS verification failure, a denial, a refused address, a TCP tunnel, TLS passthrough
 * and refused client connections. The proxy runs from the synthesised ConfigMap of the same chart.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { Chart, Duration, Testing } from 'cdk8s';
import {
  EgressGateway, ExternalServiceProtocol, GatewayDashboard, TlsOrigination, TrafficPolicy,
} from '../src';
import {
  Closer, grpcCall, leafCert, startChartProxy, startEchoServer, startGrpcServer, type ChartProxy,
} from './e2e/tls-matrix-harness';
import { eventually, scrape, startHttpsUpstream, testPki, viaProxy } from './proxy/helpers';
import { grafanaToPromql, promqlErrors, promqlUses } from './util/promql';
import { alertRules, TARGET_LABELS } from '../src/internal/observability';

const closer = new Closer();

/** Every sample line of a Prometheus exposition: metric name → union of its label names. */
function exposedLabels(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? /.exec(line);
    if (!m) continue;
    const labels = out.get(m[1]) ?? new Set<string>();
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(l[1]);
    out.set(m[1], labels);
  }
  return out;
}

interface Query {
  readonly where: string;
  readonly expr: string;
}

function chart(): { chart: Chart; gateway: EgressGateway } {
  const c = new Chart(Testing.app(), 'observed');
  const gateway = new EgressGateway(c, 'Gateway', {
    name: 'egress-gateway',
    namespace: 'egress',
    trafficPolicy: TrafficPolicy.DENY,
    tlsPassthrough: true,
    maxClientConnections: 4,
    metricsMonitor: {},
    alerts: {},
    dashboard: {},
  });
  const fast = { backoffBase: Duration.millis(1), backoffMax: Duration.millis(2) };
  gateway.addExternalService('Api', {
    name: 'api', host: 'api.test.example', retries: { ...fast, maxRetries: 1, retryOnStatuses: [503] },
  });
  // No retry budget at all: every retry is refused (overflow).
  gateway.addExternalService('Tight', {
    name: 'tight', host: 'tight.test.example', retries: { ...fast, maxRetries: 1, retryOnStatuses: [503], budgetRatio: 0, budgetMinPerSecond: 0 },
  });
  gateway.addExternalService('Bad', { name: 'bad', host: 'bad.test.example', ports: [{ port: 80, targetPort: 8443 }] });
  gateway.addExternalService('Private', { name: 'private', host: 'private.test.example' });
  gateway.addExternalService('Db', { name: 'db', host: 'db.test.example', tls: TlsOrigination.disabled(), ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
  gateway.addExternalService('Grpc', { name: 'grpc', host: 'grpc.test.example', tls: TlsOrigination.disabled(), ports: [{ port: 9000, protocol: ExternalServiceProtocol.GRPC }] });
  return { chart: c, gateway };
}

/** Every PromQL expression the chart's PrometheusRule and dashboard ConfigMap carry. */
function queriesOf(objects: any[]): Query[] {
  const rule = objects.find((o) => o.kind === 'PrometheusRule');
  const dash = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
  const out: Query[] = [];
  for (const r of rule.spec.groups.flatMap((g: any) => g.rules)) out.push({ where: `alert ${r.alert}`, expr: r.expr });
  const d = JSON.parse(dash.data['egress-gateway.json']);
  for (const p of d.panels) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: grafanaToPromql(t.expr) });
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const m = /^label_values\((.*), *([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(v.query.query);
    expect(m).not.toBeNull();
    // label_values(selector, label): the selector is PromQL, the label must be on its metric.
    out.push({ where: `variable ${v.name}`, expr: `sum by (${m![2]}) (${m![1]})` });
  }
  return out;
}

describe('alerts and dashboard PromQL', () => {
  const { chart: c } = chart();
  const objects = Testing.synth(c);
  const queries = queriesOf(objects);

  test('there are queries for every alert and panel', () => {
    expect(queries.filter((q) => q.where.startsWith('alert')).length).toBe(9);
    expect(queries.filter((q) => q.where.startsWith('panel')).length).toBeGreaterThanOrEqual(20);
  });

  test.each(queries.map((q) => [q.where, q.expr]))('%s parses', (_where, expr) => {
    expect(promqlErrors(expr)).toEqual([]);
    expect(promqlUses(expr).selectors.length).toBeGreaterThan(0);
  });

  test('the parser check is not vacuous: broken expressions have error nodes', () => {
    expect(promqlErrors('sum by (hostname (rate(x[5m]))')).not.toEqual([]);
    expect(promqlErrors('rate(x{a="b"}[5m]) >')).not.toEqual([]);
    expect(promqlErrors('sum(rate(x{a="b"}[$__rate_interval]))')).not.toEqual([]);
  });

  test('the dashboard in the ConfigMap is GatewayDashboard.json(), which the package ships', () => {
    const dash = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
    expect(dash.data['egress-gateway.json']).toBe(GatewayDashboard.json());
  });
});

describe('every metric and label the alerts and dashboard read is on /metrics after real traffic', () => {
  let p: ChartProxy;
  let exposition: string;
  let queries: Query[];

  beforeAll(async () => {
    const { chart: c } = chart();
    queries = queriesOf(Testing.synth(c));
    let flaky = 0;
    const api = closer.add(await startHttpsUpstream((req, res) => {
      if (req.url === '/fail') res.writeHead(500).end('broken');
      else if (req.url === '/unavailable') res.writeHead(503).end('unavailable');
      else if (req.url === '/flaky' && flaky++ === 0) res.writeHead(503).end('once');
      else res.writeHead(200).end('ok');
    }));
    const untrusted = leafCert(['bad.test.example'], { untrusted: true });
    const bad = closer.add(await startHttpsUpstream(undefined, { cert: untrusted.cert, key: untrusted.key }));
    const db = closer.add(await startEchoServer());
    const grpcServer = closer.add(await startGrpcServer());
    p = closer.add(await startChartProxy(c, {
      names: {
        'api.test.example': '127.0.0.1',
        'tight.test.example': '127.0.0.1',
        'bad.test.example': '127.0.0.1',
        'db.test.example': '127.0.0.1',
        'grpc.test.example': '127.0.0.1',
        // Vetting refuses it before any dial (and the test dialer refuses anything but loopback).
        'private.test.example': '10.1.2.3',
      },
      ports: { 443: api.port, 8443: bad.port, 5432: db.port, 9000: grpcServer.port },
      systemRootsPem: testPki().caPem,
    }));
    const http = p.proxy.ports.http;
    const get = async (host: string, path: string) => (await viaProxy(http, `${host}.egress.local`, path)).status;
    expect(await get('api.test.example', '/')).toBe(200);
    expect(await get('api.test.example', '/fail')).toBe(500);
    expect(await get('api.test.example', '/flaky')).toBe(200);
    expect(await get('api.test.example', '/unavailable')).toBe(503);
    expect(await get('tight.test.example', '/unavailable')).toBe(503);
    expect(await get('bad.test.example', '/')).toBe(502);
    expect(await get('private.test.example', '/')).toBe(403);
    expect(await get('undeclared.example', '/')).toBe(403);
    expect((await grpcCall(http, 'grpc.test.example.egress.local:9000', 'hi')).reply).toBe('echo:hi');

    // A TCP tunnel, and a TLS passthrough connection to api.test.example, each opened and closed.
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: p.proxy.ports.tcp[0] }, () => s.write('ping'));
      s.on('data', () => s.end());
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: p.proxy.ports.tls!, servername: 'api.test.example', ca: testPki().caPem }, () => {
        s.write('GET / HTTP/1.1\r\nhost: api.test.example\r\nconnection: close\r\n\r\n');
      });
      s.on('data', () => undefined);
      s.on('close', () => resolve());
      s.on('error', reject);
    });

    // More client connections than maxClientConnections (4): the extra ones are refused at accept.
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const s = net.connect({ host: '127.0.0.1', port: http });
      s.on('error', () => undefined);
      sockets.push(s);
    }
    await eventually(async () => /egress_client_connections_refused_total\{[^}]*\} [1-9]/.test(await scrape(p.proxy.ports.admin)), 5_000, 'a refused connection');
    for (const s of sockets) s.destroy();
    exposition = await scrape(p.proxy.ports.admin);
  });
  afterAll(() => closer.run());

  test.each(['job', 'namespace', 'pod'])('target label %s is not one the proxy exports itself (so the allowance below is needed)', (l) => {
    for (const labels of exposedLabels(exposition).values()) expect(labels.has(l)).toBe(false);
  });

  test('each query\'s metrics have samples, and each label it names is on one of them', () => {
    const exposed = exposedLabels(exposition);
    const problems: string[] = [];
    for (const q of queries) {
      const uses = promqlUses(q.expr);
      const union = new Set<string>(TARGET_LABELS);
      for (const s of uses.selectors) {
        const labels = exposed.get(s.metric);
        if (!labels) {
          problems.push(`${q.where}: ${s.metric} has no sample on /metrics`);
          continue;
        }
        for (const l of labels) union.add(l);
        for (const l of s.labels) if (!labels.has(l) && !(TARGET_LABELS as readonly string[]).includes(l)) problems.push(`${q.where}: ${s.metric} has no label ${l}`);
      }
      for (const l of uses.grouping) if (!union.has(l)) problems.push(`${q.where}: groups by ${l}, which none of its metrics carries`);
    }
    expect(problems).toEqual([]);
  });

  test('the label values the queries match on are the ones the proxy writes', () => {
    // error="TLS_FAILED" (TLS alert and panel), http_status 5xx, mode="enforce" (denials).
    expect(exposition).toMatch(/outbound_http_route_request_statuses_total\{[^}]*hostname="bad\.test\.example"[^}]*error="TLS_FAILED"\} 1/);
    expect(exposition).toMatch(/outbound_http_route_request_statuses_total\{[^}]*hostname="api\.test\.example",http_status="500",error=""\} 1/);
    expect(exposition).toMatch(/egress_policy_denials_total\{[^}]*mode="enforce"\} 1/);
    expect(exposition).toMatch(/outbound_http_route_retry_overflow_total\{[^}]*hostname="tight\.test\.example"\} 1/);
    expect(exposition).toMatch(/outbound_grpc_route_request_statuses_total\{[^}]*grpc_status="OK"[^}]*\} 1/);
  });

  test('the error-ratio alert watches exactly the declared hosts, escaped', () => {
    const rules = alertRules({
      selector: 'namespace="egress"',
      hosts: ['api.test.example', '*.wild.example'],
      errorRatio: 0.05,
      minRequestRate: 0.1,
      tlsFailures: 1,
      denialRate: 1,
      denialSpikeFactor: 3,
      saturation: 0.8,
      window: '5m',
      labels: {},
      gateway: { name: 'g', namespace: 'egress' },
    });
    const expr = rules.find((r) => r.alert === 'EgressHostErrorRatioHigh')!.expr;
    expect(expr).toContain('hostname=~"api\\\\.test\\\\.example|\\\\*\\\\.wild\\\\.example"');
    expect(promqlErrors(expr)).toEqual([]);
  });
});

describe('the dashboard JSON in the package', () => {
  test('dashboards/egress-gateway.json is what GatewayDashboard renders (regenerate with `npx projen dashboard`)', () => {
    const shipped = readFileSync(join(__dirname, '..', 'dashboards', 'egress-gateway.json'), 'utf8');
    expect(shipped).toBe(GatewayDashboard.json());
    const d = JSON.parse(shipped);
    expect(d.uid).toBe(GatewayDashboard.UID);
    expect(d.panels.filter((p: any) => p.type !== 'row').map((p: any) => p.title)).toEqual(expect.arrayContaining([
      'Request rate by host', 'Success rate by host', 'Latency p50 by host', 'Latency p99 by host', 'Denials by route', 'TLS failures',
      'Open tunnels', 'Retries', 'Client connections',
    ]));
    // Panels never overlap on Grafana's 24-column grid.
    const cells = new Set<string>();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`)).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });
});
