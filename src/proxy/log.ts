// Logging: the pino logger and the shape of the one canonical JSON line written per request or
// connection. Secrets (injected header values) never reach a log record.
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Access lines are buffered and written in batches of about this many bytes (one write per
 * dozen requests rather than one per request), off the request path.
 */
const LOG_BATCH_BYTES = 4096;
/** A quiet proxy's lines still appear within this. */
const LOG_FLUSH_MS = 200;

/** Destinations of the loggers made here, flushed synchronously when the process exits. */
const destinations = new Set<ReturnType<typeof pino.destination>>();

/** The proxy's logger: JSON lines on stdout through an asynchronous, batching destination. */
export function createLogger(level: string = process.env.EGRESS_LOG_LEVEL ?? 'info'): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS });
  destinations.add(destination);
  return pino({
    level,
    base: { component: 'egress-proxy' },
    timestamp: isoTime,
    formatters: { level: (label) => LEVEL_FIELDS[label] ?? { level: label } },
  }, destination);
}

/** Write out every buffered line now (process exit: nothing written later would be seen). */
export function flushLogsSync(): void {
  for (const d of destinations) {
    try {
      d.flushSync();
    } catch {
      // Not open yet, or already closed: nothing to write.
    }
  }
}

const LEVEL_FIELDS: Record<string, { level: string }> = Object.fromEntries(
  ['trace', 'debug', 'info', 'warn', 'error', 'fatal'].map((l) => [l, Object.freeze({ level: l })]),
);

let isoSecond = -1;
let isoPrefix = '';

/** pino's isoTime, formatting the date once per second rather than once per line. */
export function isoTime(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`;
  }
  const millis = now - second * 1000;
  return `${isoPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z"`;
}

/** A logger that drops everything (tests that do not assert on logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The canonical access-log record. Durations are milliseconds, rounded to 0.1 ms. */
export interface AccessRecord {
  kind: 'http' | 'grpc' | 'connect' | 'tls' | 'tcp';
  decision?: 'allow' | 'deny' | 'redirect';
  reason?: string;
  route?: string;
  host?: string;
  port?: number;
  method?: string;
  path?: string;
  /**
   * Who called (absent with callers.source None): the trusted identity or null, whether the
   * connection came from a trusted peer (the pod's sidecar), and why an unknown caller is unknown.
   */
  caller?: { identity: string | null; trusted: boolean; unknown?: string };
  upstream?: { host: string; address?: string; port?: number; tls: boolean };
  status?: number;
  error?: string;
  errorDetail?: string;
  bytesIn: number;
  bytesOut: number;
  attempts?: number;
  /** Retries sent (HTTP only; absent when none). */
  retries?: number;
  durations: { dns?: number; connect?: number; tls?: number; ttfb?: number; total?: number };
}

export function ms(n: number | undefined): number | undefined {
  return n === undefined ? undefined : Math.round(n * 10) / 10;
}
