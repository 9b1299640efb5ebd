// Logging: the pino logger, and the one canonical JSON line per request or connection, written
// as a string straight to pino's destination. Secrets (injected header values) never reach a line.
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Access lines are buffered and written in batches of about this many bytes (one write per
 * ~70 requests rather than one per request), off the request path. Each write is a thread-pool
 * round trip (several syscalls); at 4 KiB they cost 7 % of the proxy's CPU under load, at 32 KiB
 * under 1 %. The periodic flush bounds how late a line appears.
 */
const LOG_BATCH_BYTES = 32 * 1024;
/** Most bytes one write may carry: a backlog goes out in few writes. */
const LOG_MAX_WRITE_BYTES = 256 * 1024;
/** A quiet proxy's lines still appear within this. */
const LOG_FLUSH_MS = 200;

/** Destinations of the loggers made here, flushed synchronously when the process exits. */
const destinations = new Set<ReturnType<typeof pino.destination>>();

/**
 * The proxy's logger: JSON lines on stdout through an asynchronous, batching destination (tests
 * pass their own destination to read the very lines the proxy writes).
 */
export function createLogger(level: string = process.env.EGRESS_LOG_LEVEL ?? 'info', destination: DestinationStream = batchingDestination(1)): Logger {
  return pino({
    level,
    base: { component: 'egress-proxy' },
    timestamp: isoTime,
    formatters: { level: (label) => LEVEL_FIELDS[label] ?? { level: label } },
  }, destination);
}

/** The asynchronous, batching destination on file descriptor `fd`, flushed by flushLogsSync(). */
export function batchingDestination(fd: number): ReturnType<typeof pino.destination> {
  const destination = pino.destination({
    dest: fd, sync: false, minLength: LOG_BATCH_BYTES, maxWrite: LOG_MAX_WRITE_BYTES, periodicFlush: LOG_FLUSH_MS,
  });
  destinations.add(destination);
  destination.once('close', () => destinations.delete(destination));
  return destination;
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

/**
 * The canonical access-log record, members in line order (then `reportOnly: true` for a
 * report-only decision). Durations are milliseconds, rounded to 0.1 ms. observe.ts writes it
 * straight as a string (httpAccessFields, tunnelAccessFields), never building this object.
 */
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

/**
 * `s` as a JSON string literal, exactly as JSON.stringify writes it: a scan first, and
 * JSON.stringify only for a string with a quote, a backslash, a control character or a
 * surrogate (a lone one must be escaped; a pair passes through unchanged either way).
 */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/** A number as JSON writes it (NaN and infinities as null, as pino and JSON.stringify do). */
export function jsonNumber(n: number): string {
  return Number.isFinite(n) ? `${n}` : 'null';
}

/** The level every access line is written at. */
export const ACCESS_LEVEL = 'info';

/** The top-level fields of an access line: a logger that serializes, redacts or renames any of them gets them through pino. */
const ACCESS_KEYS: ReadonlyArray<keyof AccessRecord | 'reportOnly'> = [
  'kind', 'decision', 'reason', 'route', 'host', 'port', 'method', 'path', 'caller', 'upstream',
  'status', 'error', 'errorDetail', 'bytesIn', 'bytesOut', 'attempts', 'retries', 'durations', 'reportOnly',
];

/** What an access line is made of around its fields, read once per logger from pino's own state. */
interface AccessSink {
  /** `{"level":"info"` as pino's level formatter renders it. */
  readonly level: string;
  readonly stream: DestinationStream;
  /** `,"msg":"request"}\n` and `,"msg":"connection"}\n`. */
  readonly request: string;
  readonly connection: string;
}

type PinoState = Record<symbol, unknown>;
const sym = pino.symbols as typeof pino.symbols & { readonly msgPrefixSym: symbol };
/** Per logger (a child logger is its own): its sink, or null where only pino itself can write the line. */
const sinks = new WeakMap<Logger, AccessSink | null>();

/**
 * The sink of a logger whose line for an access record is plain concatenation: no mixin, hooks,
 * log formatter, nested key, message prefix or metadata-hungry stream, and no serializer or
 * redaction touching an access field. The proxy's loggers (createLogger and its children) are such.
 */
function accessSink(logger: Logger): AccessSink | null {
  const l = logger as unknown as PinoState;
  const stream = l[sym.streamSym] as (DestinationStream & PinoState) | undefined;
  const hooks = (l[sym.hooksSym] ?? {}) as { logMethod?: unknown; streamWrite?: unknown };
  const formatters = (l[sym.formattersSym] ?? {}) as { log?: unknown };
  const serializers = (l[sym.serializersSym] ?? {}) as Record<string, unknown>;
  const stringifiers = (l[sym.stringifiersSym] ?? {}) as Record<string | symbol, unknown>;
  const messageKey = l[sym.messageKeySym] as string;
  const errorKey = l[sym.errorKeySym] as string;
  const touched = [...ACCESS_KEYS, messageKey].some((k) => serializers[k] !== undefined || stringifiers[k] !== undefined);
  const level = (l[sym.lsCacheSym] as Record<number, string> | undefined)?.[logger.levels.values[ACCESS_LEVEL]];
  const plain = stream !== undefined && typeof stream.write === 'function' && stream[sym.needsMetadataGsym] !== true
    && !l[sym.mixinSym] && !hooks.logMethod && !hooks.streamWrite && !formatters.log && !l[sym.nestedKeySym]
    && typeof l[sym.msgPrefixSym] !== 'string' && typeof messageKey === 'string' && typeof level === 'string'
    && !touched && stringifiers[sym.wildcardFirstSym] === undefined
    && !((ACCESS_KEYS as readonly string[]).includes(errorKey) && serializers.err !== undefined);
  if (!plain) return null;
  const end = l[sym.endSym] as string;
  return { level, stream, request: `,"${messageKey}":"request"${end}`, connection: `,"${messageKey}":"connection"${end}` };
}

/**
 * Write one access line at ACCESS_LEVEL: `fields` is the record as JSON members, each led by a
 * comma (`,"kind":"http",...`). The line is the one pino would write for the same record (level,
 * time, the logger's bindings, the fields, msg) and goes to the same destination, so it keeps its
 * place among pino's own lines and is batched and flushed with them. Callers check the level
 * before building `fields` too (`logger.isLevelEnabled(ACCESS_LEVEL)`): a silenced access log costs nothing.
 */
export function writeAccessLine(logger: Logger, fields: string, msg: 'request' | 'connection'): void {
  if (!logger.isLevelEnabled(ACCESS_LEVEL)) return;
  let sink = sinks.get(logger);
  if (sink === undefined) {
    sink = accessSink(logger);
    sinks.set(logger, sink);
  }
  if (sink === null) {
    logger[ACCESS_LEVEL](JSON.parse(`{${fields.slice(1)}}`) as object, msg);
    return;
  }
  const l = logger as unknown as PinoState;
  const time = (l[sym.timeSym] as () => string).call(logger);
  sink.stream.write(sink.level + time + (l[sym.chindingsSym] as string) + fields + (msg === 'request' ? sink.request : sink.connection));
}
