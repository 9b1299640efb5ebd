// The access line written as a string (httpAccessFields, tunnelAccessFields through writeAccessLine)
// against the line pino wrote for the same record before: the record built as an AccessRecord
// object and logged with logger.info(record, msg), the way observe.ts did it.
import * as net from 'node:net';
import type { DestinationStream } from 'pino';
import { httpRecordObject, tunnelRecordObject } from './access-reference';
import {
  eventually, startHttpsUpstream, startTestProxy, testConfig, testService, viaProxy, type TestProxy, type TestUpstream,
} from './helpers';
import type { CallerResolution } from '../../src/proxy/caller';
import type { Decision, Target } from '../../src/proxy/decide';
import { createLogger, writeAccessLine, type AccessRecord, type Logger } from '../../src/proxy/log';
import { httpAccessFields, tunnelAccessFields, type HttpRecord, type TunnelRecord } from '../../src/proxy/observe';
import type { RouteRef } from '../../src/proxy/policy';
import type { Candidate, OpenedUpstream, UpstreamPlan } from '../../src/proxy/upstream';

/* ---------------------------------------------------------------- records */

const httpRoute: RouteRef = { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'egress', name: 'api' };
const defaultRoute: RouteRef = { group: '', kind: 'default', namespace: '', name: 'http-egress-allow' };
const decision = (over: Partial<Decision> = {}): Decision => ({ action: 'allow', reason: 'route-matched', route: httpRoute, reportOnly: false, ...over });
const target = (host: string, path?: string, port = 80): Target => ({ protocol: 'http', host, port, path }) as Target;
const plan = (host: string, tls: boolean, port = 443): UpstreamPlan => ({ host, port, tls: tls ? {} : undefined }) as unknown as UpstreamPlan;
const candidate = (host: string, dnsMs = 0.04): Candidate => ({ host, address: '127.0.0.1', port: 8443, dnsMs });
const known = (identity: string, trustedPeer = true): CallerResolution => ({
  caller: { identity, namespace: 'shop', serviceAccount: 'web', keys: { id: '', sa: '', ns: '' } }, trustedPeer,
});
const unknownCaller: CallerResolution = { caller: undefined, trustedPeer: false, unknown: 'no-header' };

function http(over: Omit<Partial<HttpRecord>, 'outcome'> & { outcome?: Partial<HttpRecord['outcome']> } = {}): HttpRecord {
  const { outcome, ...rest } = over;
  return { parentPort: 80, grpc: false, started: 0, method: 'GET', ...rest, outcome: { status: 200, bytesIn: 0, bytesOut: 95, attempts: 1, ...outcome } };
}

const LONG = '/a"b\\c'.repeat(2000);
const LONE_HIGH = '\ud83d';
const LONE_LOW = '\ude00';

/** Strings that need every kind of care: each goes into the path, the host, an error detail and a caller identity. */
const NASTY: Array<[string, string]> = [
  ['plain', '/v1/items'],
  ['double quotes', '/say/"hi"/"there"'],
  ['backslashes', '/C:\\dir\\file\\'],
  ['newline and tab', '/a\nb\tc\r'],
  ['NUL and other control characters', '/\u0000\u0001\u001f\u007f'],
  ['latin-1 as node:http decodes raw bytes', '/caf\u00c3\u00a9/\u00ff'],
  ['unicode', '/café/日本語/ü'],
  ['emoji (a surrogate pair)', '/😀/🚀x'],
  ['U+2028 and U+2029', '/\u2028\u2029'],
  ['a 12 000-character path with quotes and backslashes', LONG],
  ['a long path with a lone surrogate', `${LONG}${LONE_HIGH}`],
  ['every escape at once', '"\\\n\u0000😀é\u2028'],
];

/** Lone surrogates in a short string: see the test below. */
const LONE: Array<[string, string]> = [
  ['a lone high surrogate', `/x${LONE_HIGH}y`],
  ['a lone low surrogate', `/${LONE_LOW}`],
  ['a reversed pair', `/${LONE_LOW}${LONE_HIGH}`],
];

function httpCases(strings: Array<[string, string]>): Array<[string, HttpRecord, number]> {
  return strings.flatMap(([name, s]): Array<[string, HttpRecord, number]> => [
    [`path: ${name}`, http({
      decision: decision(),
      target: target('api.example.com', s),
      plan: plan('api.example.com', true),
      caller: known('web.shop'),
      outcome: { candidate: candidate('api.example.com'), connectMs: 1.26, tlsMs: 3.04, ttfbMs: 7.55 },
    }), 12.345],
    [`host: ${name}`, http({ target: target(s, '/'), outcome: { status: 400, error: 'BAD_REQUEST', attempts: 0, bytesOut: 0 } }), 0.2],
    [`errorDetail: ${name}`, http({
      decision: decision(),
      target: target('api.example.com', '/'),
      plan: plan('api.example.com', false),
      outcome: { status: 502, error: 'CONNECT_FAILED', errorDetail: s, bytesOut: 0 },
    }), 5],
    [`caller identity: ${name}`, http({ decision: decision(), target: target('api.example.com', '/x'), caller: known(s, false) }), 1],
  ]);
}

const HTTP_CASES: Array<[string, HttpRecord, number]> = [
  ['refused before a decision (no target, no method)', http({ method: undefined, outcome: { status: 400, error: 'BAD_REQUEST', errorDetail: 'no Host header', bytesOut: 0, attempts: 0 } }), 0.04],
  ['allowed, every member present, retried', http({
    decision: decision(),
    target: target('api.example.com', '/v1/items', 8080),
    plan: plan('api.example.com', true),
    caller: known('web.shop.serviceaccount.identity.linkerd.cluster.local'),
    outcome: { candidate: candidate('api.example.com', 0.86), connectMs: 0.55, tlsMs: 2.449, ttfbMs: 10.05, retries: 2, attempts: 3, bytesIn: 1234, bytesOut: 16384 },
  }), 33.333],
  ['grpc, report-only, an unknown caller, no connection picked (the plan port)', http({
    grpc: true,
    method: 'POST',
    decision: decision({ reason: 'report-only', reportOnly: true, route: defaultRoute }),
    target: target('grpc.example.com', '/pkg.Svc/Call'),
    plan: plan('grpc.example.com', true, 50051),
    caller: unknownCaller,
    outcome: { grpcStatus: '14', error: 'CONNECT_FAILED', status: 200 },
  }), 2],
  ['denied by the default route', http({
    decision: decision({ action: 'deny', reason: 'default-deny', route: defaultRoute }),
    target: target('evil.example.com', '/'),
    caller: { caller: undefined, trustedPeer: true },
    outcome: { status: 403, error: 'EGRESS_DENIED', bytesOut: 0, attempts: 0 },
  }), 0.05],
  ['redirect', http({ decision: decision({ action: 'redirect', reason: 'filter-redirect' }), target: target('old.example.com', '/old'), outcome: { status: 301 } }), 0.3],
  ['durations that are not finite, and zero', http({ outcome: { ttfbMs: Number.NaN, connectMs: 0, tlsMs: Number.POSITIVE_INFINITY } }), Number.NEGATIVE_INFINITY],
  ['durations that round to -0 and to whole numbers', http({ outcome: { ttfbMs: -0.01, connectMs: 2.96 } }), 1e21],
  ...httpCases(NASTY),
];

const opened = (tlsMs?: number): OpenedUpstream => ({ socket: undefined as never, candidate: candidate('db.example.com', 0.2), connectMs: 0.77, tlsMs, attempts: 2 });
const tunnel = (over: Partial<TunnelRecord>): TunnelRecord => ({ kind: 'connect', parentPort: 443, bytesIn: 517, bytesOut: 4096, started: 0, ...over });

const TUNNEL_CASES: Array<[string, TunnelRecord, number]> = [
  ['CONNECT allowed', tunnel({ decision: decision(), target: target('api.example.com', undefined, 443), opened: opened(), caller: known('web.shop') }), 1500.26],
  ['TLS passthrough, upstream TLS timed', tunnel({ kind: 'tls', decision: decision({ route: defaultRoute }), target: target('api.example.com', undefined, 443), opened: opened(4.2), caller: unknownCaller }), 9],
  ['TCP denied, nothing opened', tunnel({ kind: 'tcp', decision: decision({ action: 'deny', reason: 'default-deny' }), target: target('10.0.0.1', undefined, 5432), error: 'EGRESS_DENIED', bytesIn: 0, bytesOut: 0 }), 0.1],
  ['no decision, an error with every escape', tunnel({ error: 'BAD_REQUEST', errorDetail: '"\\\n\u0000😀é', bytesIn: 0, bytesOut: 0 }), 0.01],
  ...NASTY.map(([name, s]): [string, TunnelRecord, number] => [`host: ${name}`, tunnel({ decision: decision(), target: target(s, undefined, 443), opened: opened() }), 3]),
];

/* ---------------------------------------------------------------- harness */

/** A destination that keeps each string pino (or the lean writer) hands it. */
function capture(): { stream: DestinationStream; written: string[] } {
  const written: string[] = [];
  return { written, stream: { write: (s: string) => void written.push(s) } };
}

/** The line pino writes for `obj` and the lean line for `fields`, from the same logger state at the same instant. */
function bothLines(make: (d: DestinationStream) => Logger, obj: AccessRecord, fields: string, msg: 'request' | 'connection'): [string, string] {
  const c = capture();
  const logger = make(c.stream);
  logger.info(obj, msg);
  writeAccessLine(logger, fields, msg);
  expect(c.written).toHaveLength(2);
  return [c.written[0], c.written[1]];
}

beforeEach(() => {
  // One frozen clock: both lines carry the same time.
  jest.useFakeTimers({ now: new Date('2025-03-04T05:06:07.089Z'), doNotFake: ['performance', 'nextTick', 'setImmediate'] });
});
afterEach(() => jest.useRealTimers());

const LOGGERS: Array<[string, (d: DestinationStream) => Logger]> = [
  ['the proxy logger', (d) => createLogger('info', d)],
  ['a cluster worker (child binding)', (d) => createLogger('info', d).child({ worker: 3 })],
];

describe.each(LOGGERS)('%s', (_name, make) => {
  test.each(HTTP_CASES)('HTTP: %s: the lean line is the very line pino wrote', (_case, record, totalMs) => {
    const [pinoLine, lean] = bothLines(make, httpRecordObject(record, totalMs), httpAccessFields(record, totalMs), 'request');
    expect(lean).toBe(pinoLine);
    expect(JSON.parse(lean)).toEqual(JSON.parse(pinoLine));
    expect(Buffer.from(lean, 'utf8').equals(Buffer.from(pinoLine, 'utf8'))).toBe(true);
    expect(lean.endsWith('"msg":"request"}\n')).toBe(true);
    expect(lean.indexOf('\n')).toBe(lean.length - 1);
  });

  test.each(TUNNEL_CASES)('tunnel: %s: the lean line is the very line pino wrote', (_case, record, totalMs) => {
    const [pinoLine, lean] = bothLines(make, tunnelRecordObject(record, totalMs), tunnelAccessFields(record, totalMs), 'connection');
    expect(lean).toBe(pinoLine);
    expect(JSON.parse(lean)).toEqual(JSON.parse(pinoLine));
    expect(lean.endsWith('"msg":"connection"}\n')).toBe(true);
  });
});

test('the line has the level, time, bindings, fields and msg in pino\'s order', () => {
  const c = capture();
  const record = HTTP_CASES[1][1];
  writeAccessLine(createLogger('info', c.stream).child({ worker: 1 }), httpAccessFields(record, 33.333), 'request');
  const line = c.written[0];
  expect(line.startsWith('{"level":"info","time":"2025-03-04T05:06:07.089Z","component":"egress-proxy","worker":1,"kind":"http","decision":"allow"')).toBe(true);
  expect(Object.keys(JSON.parse(line))).toEqual([
    'level', 'time', 'component', 'worker', 'kind', 'decision', 'reason', 'route', 'host', 'port', 'method', 'path', 'caller', 'upstream',
    'status', 'bytesIn', 'bytesOut', 'attempts', 'retries', 'durations', 'msg',
  ]);
  expect(JSON.parse(line)).toMatchObject({
    route: 'HTTPRoute/egress/api',
    port: 8080,
    upstream: { host: 'api.example.com', address: '127.0.0.1', port: 8443, tls: true },
    durations: { dns: 0.9, connect: 0.6, tls: 2.4, ttfb: 10.1, total: 33.3 },
  });
});

test.each(LONE)('%s in a short string: escaped as JSON.stringify does, where pino wrote the raw code unit (lost as U+FFFD in UTF-8)', (_name, s) => {
  const record = http({ decision: decision(), target: target('api.example.com', s), plan: plan('api.example.com', true) });
  const [pinoLine, lean] = bothLines((d) => createLogger('info', d), httpRecordObject(record, 1), httpAccessFields(record, 1), 'request');
  expect(lean).toBe(pinoLine.replace(`"path":"${s}"`, `"path":${JSON.stringify(s)}`));
  expect(lean).toContain(JSON.stringify(s));
  expect(JSON.parse(lean)).toEqual(JSON.parse(pinoLine));
  // Bytes on the wire: the lean line's path survives UTF-8; pino's came out as replacement characters.
  expect((JSON.parse(Buffer.from(lean, 'utf8').toString('utf8')) as { path: string }).path).toBe(s);
  expect((JSON.parse(Buffer.from(pinoLine, 'utf8').toString('utf8')) as { path: string }).path).not.toBe(s);
});

test('nested strings with lone surrogates (caller, upstream) were escaped by pino too: the lines are equal', () => {
  const record = http({ decision: decision(), target: target('api.example.com', '/'), plan: plan(`up${LONE_HIGH}`, false), caller: known(`id${LONE_LOW}`) });
  const [pinoLine, lean] = bothLines((d) => createLogger('info', d), httpRecordObject(record, 1), httpAccessFields(record, 1), 'request');
  expect(lean).toBe(pinoLine);
  expect(lean).toContain('"identity":"id\\ude00"');
});

/* ---------------------------------------------------------------- through a real proxy */

describe('through a real proxy (sockets, verified TLS upstream)', () => {
  let upstream: TestUpstream | undefined;
  let tp: TestProxy | undefined;
  afterEach(async () => {
    await tp?.proxy.close();
    await upstream?.close();
    tp = undefined;
    upstream = undefined;
  });

  async function start(level: string): Promise<string[]> {
    jest.useRealTimers();
    const c = capture();
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
    }), { 'api.test.example': '127.0.0.1' }, { logger: createLogger(level, c.stream) });
    return c.written;
  }

  /** One request with raw bytes in its path, on a connection of its own (the proxy closes it). */
  function rawGet(port: number, path: Buffer): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
      socket.on('error', reject);
      socket.write(Buffer.concat([Buffer.from('GET '), path, Buffer.from(' HTTP/1.1\r\nHost: api.test.example.egress.local\r\nConnection: close\r\n\r\n')]));
    });
  }

  test('each request\'s line is valid JSON naming the path exactly as the upstream received it', async () => {
    const written = await start('info');
    // Quotes and other characters a client may send unescaped, an escaped NUL and quote (node:http
    // refuses raw control and non-ASCII bytes itself).
    const path = Buffer.from('/q"a/{x}|^`\'/%00%22');
    expect(await rawGet(tp!.proxy.ports.http, path)).toMatch(/^HTTP\/1\.1 200 /);
    expect((await viaProxy(tp!.proxy.ports.http, 'api.test.example.egress.local', '/plain')).status).toBe(200);
    // A path that climbs above the root: refused with 400 before a target is known, and logged.
    expect(await rawGet(tp!.proxy.ports.http, Buffer.from('/../"x'))).toMatch(/^HTTP\/1\.1 400 /);
    await eventually(() => written.filter((l) => l.includes('"msg":"request"')).length === 3, 5_000, 'three access lines');
    const lines = written.filter((l) => l.includes('"msg":"request"'));
    for (const l of lines) {
      expect(l.endsWith('}\n')).toBe(true);
      expect(l.indexOf('\n')).toBe(l.length - 1);
    }
    const first = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(first).toMatchObject({
      level: 'info',
      component: 'egress-proxy',
      kind: 'http',
      decision: 'allow',
      host: 'api.test.example',
      port: 80,
      method: 'GET',
      upstream: { host: 'api.test.example', address: '127.0.0.1', port: upstream!.port, tls: true },
      status: 200,
      attempts: 1,
      msg: 'request',
    });
    expect(first.path).toBe(upstream!.seen[0].url);
    expect(first.path).toBe(path.toString('latin1'));
    expect(lines[0]).toContain('"path":"/q\\"a/');
    expect((JSON.parse(lines[1]) as { path: string }).path).toBe('/plain');
    expect(JSON.parse(lines[2])).toMatchObject({ kind: 'http', status: 400, error: 'BAD_REQUEST', method: 'GET', msg: 'request' });
  });

  test('at EGRESS_LOG_LEVEL warn no access line is written, and requests are served', async () => {
    const written = await start('warn');
    expect((await viaProxy(tp!.proxy.ports.http, 'api.test.example.egress.local', '/a')).status).toBe(200);
    expect(await rawGet(tp!.proxy.ports.http, Buffer.from('/../"x'))).toMatch(/^HTTP\/1\.1 400 /);
    expect(upstream!.requests()).toBe(1);
    await tp!.proxy.close();
    tp = undefined;
    expect(written.filter((l) => l.includes('"msg":"request"'))).toEqual([]);
    expect(written.every((l) => ['warn', 'error', 'fatal'].includes((JSON.parse(l) as { level: string }).level))).toBe(true);
  });
});
