// Micro-benchmark: one access line written as a string (httpAccessFields + writeAccessLine)
// against the same line through pino (an AccessRecord object + logger.info), both from the
// proxy's logger into a destination that only counts bytes. The two lines must be equal first.
// Usage: npx ts-node --project test/tsconfig.json bench/access-line.ts [lines]   (default 200000)
import type { DestinationStream } from 'pino';
import { createLogger, writeAccessLine } from '../src/proxy/log';
import { httpAccessFields, type HttpRecord } from '../src/proxy/observe';
import type { UpstreamPlan } from '../src/proxy/upstream';
import { httpRecordObject } from '../test/proxy/access-reference';

const LINES = Number(process.argv[2] ?? 200_000);

/** A request as the bench's default-config proxy sees it: allowed, reused TLS connection, no caller. */
const record: HttpRecord = {
  parentPort: 80, grpc: false, started: 0, method: 'GET',
  decision: { action: 'allow', reason: 'default-allow', route: { group: '', kind: 'default', namespace: '', name: 'http-egress-allow' }, reportOnly: false },
  target: { protocol: 'http', host: 'api.bench.example', port: 80, path: '/small' },
  plan: { host: 'api.bench.example', port: 443, tls: {} } as unknown as UpstreamPlan,
  outcome: { status: 200, bytesIn: 0, bytesOut: 95, attempts: 1, ttfbMs: 0.8123, candidate: { host: 'api.bench.example', address: '127.0.0.1', port: 8443, dnsMs: 0.0123 } },
};

let bytes = 0;
const sink: DestinationStream = { write: (s: string) => void (bytes += s.length) };
const logger = createLogger('info', sink).child({ worker: 1 });

function viaPino(n: number): void {
  for (let i = 0; i < n; i++) logger.info(httpRecordObject(record, 1.2345 + i * 1e-6), 'request');
}
function lean(n: number): void {
  for (let i = 0; i < n; i++) writeAccessLine(logger, httpAccessFields(record, 1.2345 + i * 1e-6), 'request');
}

/** Both must write the same line (same millisecond: retried a few times across a tick). */
function sameLine(): boolean {
  for (let i = 0; i < 5; i++) {
    const seen: string[] = [];
    const l = createLogger('info', { write: (s: string) => void seen.push(s) }).child({ worker: 1 });
    l.info(httpRecordObject(record, 1.5), 'request');
    writeAccessLine(l, httpAccessFields(record, 1.5), 'request');
    if (seen[0] === seen[1]) return true;
    if (seen[0].replace(/"time":"[^"]+"/, '') !== seen[1].replace(/"time":"[^"]+"/, '')) return false;
  }
  return false;
}

function time(fn: (n: number) => void): number {
  const t0 = process.hrtime.bigint();
  fn(LINES);
  return Number(process.hrtime.bigint() - t0) / 1000 / LINES;
}

if (!sameLine()) throw new Error('the lean line differs from pino\'s');
viaPino(20_000);
lean(20_000);
const pinoUs = time(viaPino);
const leanUs = time(lean);
console.log(`${LINES} lines: pino ${pinoUs.toFixed(3)} µs/line, lean ${leanUs.toFixed(3)} µs/line, lean/pino ${(leanUs / pinoUs).toFixed(2)} (${bytes} bytes)`);
