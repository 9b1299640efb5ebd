// Logging: the pino logger, and the one canonical JSON line per request or connection, written
// as a string straight to pino's destination. Secrets (injected header values) never reach a line.
// Bundled into the proxy by esbuild; the construct library never loads it.
import * as fs from 'node:fs';
// eslint-disable-next-line import/no-extraneous-dependencies
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Lines are buffered and written in batches of about this many bytes (one write per ~70
 * requests rather than one per request), off the request path. Each write is a thread-pool
 * round trip (several syscalls); at 4 KiB they cost 7 % of the proxy's CPU under load, at 32 KiB
 * under 1 %. The periodic flush bounds how late a line appears.
 */
const LOG_BATCH_BYTES = 32 * 1024;
/** A quiet proxy's lines still appear within this. */
const LOG_FLUSH_MS = 200;
/**
 * Most bytes held while the reader of the log does not keep up (a stalled pipe): lines beyond
 * are dropped and counted, and the proxy keeps serving with bounded memory.
 */
const LOG_MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** Wait before writing again to a full non-blocking pipe. */
const LOG_RETRY_MS = 20;

/** Destinations made here, flushed synchronously when the process exits. */
const destinations = new Set<BatchingDestination>();

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
export function batchingDestination(fd: number, options: BatchingOptions = {}): BatchingDestination {
  return new BatchingDestination(fd, options);
}

export interface BatchingOptions {
  /** Pending bytes that start a write (default 32 KiB). */
  readonly batchBytes?: number;
  /** Most pending bytes held; lines beyond are dropped and counted (default 64 MiB). */
  readonly maxPendingBytes?: number;
  /** Where a failed write is said (default 2, stderr). */
  readonly errorFd?: number;
}

/**
 * Log lines on a file descriptor, written in batches by one asynchronous write at a time. A
 * line costs an array push: the batch is joined and encoded once when it is written (pino's
 * destination measures the UTF-8 length of its whole pending batch on every line, ~5 % of the
 * proxy's CPU under load). Lines keep their order; a full non-blocking pipe is retried; any
 * other write error stops the writing (said once on stderr) and never the serving.
 */
export class BatchingDestination implements DestinationStream {
  /** Lines not yet handed to a write, and their length in UTF-16 units (≤ their bytes). */
  private pending: string[] = [];
  private pendingChars = 0;
  /** The batch a write is carrying, and how many of its bytes are out. */
  private inFlight: Buffer | undefined;
  private sent = 0;
  private failed = false;
  private ended = false;
  /** Lines are being dropped for want of room (said once per episode). */
  private overflowing = false;
  private droppedLines = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly batchBytes: number;
  private readonly maxPendingBytes: number;
  private readonly errorFd: number;

  public constructor(private readonly fd: number, options: BatchingOptions = {}) {
    this.batchBytes = options.batchBytes ?? LOG_BATCH_BYTES;
    this.maxPendingBytes = options.maxPendingBytes ?? LOG_MAX_PENDING_BYTES;
    this.errorFd = options.errorFd ?? 2;
    this.timer = setInterval(() => this.flush(), LOG_FLUSH_MS);
    this.timer.unref();
    destinations.add(this);
  }

  /** Whether lines are pending or a write is under way. */
  public get busy(): boolean {
    return this.inFlight !== undefined || this.pendingChars > 0;
  }

  /** Lines dropped because the reader did not keep up or writing failed. */
  public get dropped(): number {
    return this.droppedLines;
  }

  public write(line: string): boolean {
    if (this.failed || this.ended) {
      this.droppedLines++;
      return false;
    }
    if (this.pendingChars + line.length > this.maxPendingBytes) {
      if (!this.overflowing) this.say(`the log's reader is not keeping up (${this.pendingChars} bytes waiting); dropping lines until it does`);
      this.overflowing = true;
      this.droppedLines++;
      return false;
    }
    this.pending.push(line);
    this.pendingChars += line.length;
    if (this.inFlight === undefined && this.pendingChars >= this.batchBytes) this.flush();
    return true;
  }

  /** Start writing what is pending, unless a write is under way (its end writes the rest). */
  public flush(): void {
    if (this.inFlight !== undefined || this.pendingChars === 0 || this.failed) return;
    this.inFlight = this.take();
    this.sent = 0;
    this.writeOut();
  }

  /**
   * Write every pending line now, synchronously (process exit). A batch an asynchronous write
   * carries is that write's: it is not written twice.
   */
  public flushSync(): void {
    if (this.failed || this.pendingChars === 0) return;
    const batch = this.take();
    let off = 0;
    let busy = 0;
    while (off < batch.length) {
      try {
        off += fs.writeSync(this.fd, batch, off, batch.length - off);
      } catch (err) {
        // A full non-blocking pipe: wait for the reader, a bounded number of times.
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++busy > 100) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOG_RETRY_MS);
      }
    }
  }

  /** Write what is pending and stop: later lines are dropped. */
  public end(): void {
    try {
      this.flushSync();
    } finally {
      this.ended = true;
      clearInterval(this.timer);
      destinations.delete(this);
    }
  }

  private take(): Buffer {
    const batch = Buffer.from(this.pending.length === 1 ? this.pending[0] : this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingChars = 0;
    return batch;
  }

  private writeOut(): void {
    const batch = this.inFlight!;
    fs.write(this.fd, batch, this.sent, batch.length - this.sent, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeOut(), LOG_RETRY_MS).unref();
          return;
        }
        this.fail(err);
        return;
      }
      this.sent += n;
      if (this.sent < batch.length) {
        this.writeOut();
        return;
      }
      this.inFlight = undefined;
      if (this.overflowing && this.pendingChars < this.maxPendingBytes / 2) {
        this.overflowing = false;
        this.say(`the log's reader caught up; ${this.droppedLines} line(s) dropped so far`);
      }
      if (this.pendingChars >= this.batchBytes) this.flush();
    });
  }

  private fail(err: NodeJS.ErrnoException): void {
    this.failed = true;
    this.inFlight = undefined;
    this.droppedLines += this.pending.length;
    this.pending = [];
    this.pendingChars = 0;
    this.say(`writing the log to fd ${this.fd} failed (${err.code ?? err.message}); further lines are dropped`);
  }

  /** One line on the error fd (stderr): about the log itself, so not through it. */
  private say(text: string): void {
    try {
      fs.writeSync(this.errorFd, `egress-proxy: ${text}\n`);
    } catch {
      // stderr is gone too: nothing more to say.
    }
  }
}

/** Write out every buffered line now (process exit: nothing written later would be seen). */
export function flushLogsSync(): void {
  for (const d of destinations) {
    try {
      d.flushSync();
    } catch {
      // Nothing more can be written there.
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

/**
 * A number as JSON writes it (NaN and infinities as null, as pino and JSON.stringify do). Whole
 * tenths (durations, rounded by ms()) are written from integers: printing a fraction goes
 * through V8's shortest round-trip search, five times per access line. Below 1e12 tenths sit far
 * closer together than doubles do apart, so `<int>.<digit>` is exactly what JSON writes.
 */
export function jsonNumber(n: number): string {
  const t = Math.round(n * 10);
  if (t / 10 === n && t < 1e12 && t > -1e12) {
    if (t % 10 === 0) return `${t / 10}`;
    const a = Math.abs(t);
    return `${t < 0 ? '-' : ''}${(a - (a % 10)) / 10}.${a % 10}`;
  }
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
