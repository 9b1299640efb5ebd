// Logging: the pino logger and the shape of the one canonical JSON line written per request or
// connection. Secrets (injected header values) never reach a log record.
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string = process.env.EGRESS_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { component: 'egress-proxy' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
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
