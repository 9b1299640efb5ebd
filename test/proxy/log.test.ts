// The logger's own parts: the cached ISO timestamp must read exactly as Date#toISOString would;
// the access line written as a string must be the line pino writes, at pino's level and place.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type DestinationStream } from 'pino';
import { batchingDestination, type BatchingDestination, createLogger, flushLogsSync, isoTime, jsonNumber, jsonString, silentLogger, writeAccessLine, type Logger } from '../../src/proxy/log';

test('isoTime is the ,"time":"<ISO-8601>" fragment of the current millisecond, across second boundaries', async () => {
  for (let i = 0; i < 30; i++) {
    const before = Date.now();
    const fragment = isoTime();
    const after = Date.now();
    const parsed = JSON.parse(`{${fragment.slice(1)}}`) as { time: string };
    expect(parsed.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const t = Date.parse(parsed.time);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
    expect(new Date(t).toISOString()).toBe(parsed.time);
    // Step through milliseconds with one, two and three digits and into the next second.
    await new Promise((r) => setTimeout(r, 37));
  }
});

describe('jsonString', () => {
  test('every single UTF-16 code unit reads exactly as JSON.stringify writes it', () => {
    for (let c = 0; c <= 0xffff; c++) {
      const s = String.fromCharCode(c);
      if (jsonString(s) !== JSON.stringify(s)) throw new Error(`code unit ${c.toString(16)}: ${jsonString(s)} != ${JSON.stringify(s)}`);
    }
  });

  test.each([
    ['empty', ''],
    ['plain', '/v1/items?x=1'],
    ['quotes and backslashes', '"a\\"b\\\\'],
    ['control characters inside text', 'a\u0000b\u001fc\u007fd\ne\tf'],
    ['a surrogate pair', 'x😀y'],
    ['a lone high surrogate at the end', 'x\ud83d'],
    ['a lone low surrogate at the start', '\ude00x'],
    ['a reversed pair', '\ude00\ud83d'],
    ['U+2028, U+2029, U+FEFF', '\u2028\u2029\ufeff'],
    ['long, escape at the very end', `${'a'.repeat(10_000)}"`],
  ])('%s: as JSON.stringify', (_name, s) => {
    expect(jsonString(s)).toBe(JSON.stringify(s));
    expect(JSON.parse(jsonString(s))).toBe(s);
  });
});

test('jsonNumber writes numbers as JSON.stringify does, non-finite ones as null', () => {
  for (const n of [0, -0, 1, -1, 0.1, -0.1, 12.3, 1e21, 1e-7, 123456789012, 99999999999.9, -99999999999.9, 1e11 + 0.5,
    // Where doubles are further apart than tenths, the integer digits alone are JSON's answer.
    10000000000000002, -10000000000000002, 1e15 + 0.125, 123456789012345.6,
    Number.MAX_SAFE_INTEGER, Number.MIN_VALUE, Number.NaN, Infinity, -Infinity]) {
    expect(jsonNumber(n)).toBe(JSON.stringify(n));
  }
});

test('jsonNumber: every tenth as ms() rounds it, and fractions that are not tenths, read as JSON.stringify writes them', () => {
  const check = (n: number) => {
    if (jsonNumber(n) !== JSON.stringify(n)) throw new Error(`${n}: ${jsonNumber(n)} != ${JSON.stringify(n)}`);
  };
  // Every tenth from -1,000 to 20,000 ms, made the way ms() makes them.
  for (let t = -10_000; t <= 200_000; t++) check(Math.round((t / 10) * 10) / 10);
  // Tenths up to the edge of the fast path and beyond, and values near but not on a tenth.
  let seed = 7;
  const random = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  for (let i = 0; i < 20_000; i++) {
    const magnitude = 10 ** Math.floor(random() * 16);
    const t = Math.round(random() * magnitude * 10);
    check(t / 10);
    check(-t / 10);
    check(t / 10 + 0.05 * random());
    check(random() * magnitude);
  }
});

describe('writeAccessLine', () => {
  const FIELDS = ',"kind":"http","path":"/a\\"b","bytesIn":0,"bytesOut":95,"durations":{"total":1.2}';
  const RECORD = JSON.parse(`{${FIELDS.slice(1)}}`) as object;

  /** A destination that keeps each string written to it. */
  function capture(): { stream: DestinationStream; written: string[] } {
    const written: string[] = [];
    return { written, stream: { write: (s: string) => void written.push(s) } };
  }

  /** The line pino itself writes for the record, and the lean one, from one logger in one millisecond. */
  function pinoAndLean(logger: Logger, written: string[]): [string, string] {
    jest.useFakeTimers({ now: new Date('2025-01-02T03:04:05.006Z'), doNotFake: ['performance', 'nextTick', 'setImmediate'] });
    try {
      logger.info(RECORD, 'request');
      writeAccessLine(logger, FIELDS, 'request');
    } finally {
      jest.useRealTimers();
    }
    expect(written).toHaveLength(2);
    return [written[0], written[1]];
  }

  test('obeys the logger\'s level, read on every call', () => {
    const c = capture();
    const logger = createLogger('warn', c.stream);
    writeAccessLine(logger, FIELDS, 'request');
    writeAccessLine(logger.child({ worker: 1 }), FIELDS, 'connection');
    expect(c.written).toEqual([]);
    logger.level = 'info';
    writeAccessLine(logger, FIELDS, 'request');
    expect(c.written).toHaveLength(1);
    logger.level = 'silent';
    writeAccessLine(logger, FIELDS, 'request');
    expect(c.written).toHaveLength(1);
    writeAccessLine(silentLogger(), FIELDS, 'request');
    const debug = capture();
    writeAccessLine(createLogger('debug', debug.stream), FIELDS, 'connection');
    expect(debug.written).toHaveLength(1);
    expect(JSON.parse(debug.written[0])).toMatchObject({ level: 'info', msg: 'connection' });
  });

  test('keeps its place among pino\'s own lines on the same destination', () => {
    const c = capture();
    const logger = createLogger('info', c.stream);
    const worker = logger.child({ worker: 2 });
    logger.info({ event: 'started' }, 'egress proxy listening');
    writeAccessLine(logger, FIELDS, 'request');
    worker.warn({ event: 'x' }, 'a warning');
    writeAccessLine(worker, FIELDS, 'connection');
    logger.error('last');
    expect(c.written.map((l) => (JSON.parse(l) as { msg: string; worker?: number })).map((l) => [l.msg, l.worker])).toEqual([
      ['egress proxy listening', undefined], ['request', undefined], ['a warning', 2], ['connection', 2], ['last', undefined],
    ]);
  });

  test.each<[string, (d: DestinationStream) => Logger]>([
    ['the proxy logger', (d) => createLogger('info', d)],
    ['a worker of the proxy logger', (d) => createLogger('info', d).child({ worker: 7 })],
    ['a child of a child', (d) => createLogger('info', d).child({ worker: 1 }).child({ a: 'x"y' })],
    ['pino\'s defaults (pid, hostname, epoch time, numeric level)', (d) => pino({ level: 'debug' }, d)],
    ['a message key of its own', (d) => pino({ messageKey: 'message' }, d)],
    // Only pino can write these: the lean writer hands them the record.
    ['a mixin', (d) => pino({ mixin: () => ({ trace: 'abc' }) }, d)],
    ['a log formatter', (d) => pino({ formatters: { log: (o) => ({ ...o, extra: true }) } }, d)],
    ['redaction of an access field', (d) => pino({ redact: ['path'] }, d)],
    ['a serializer of an access field', (d) => pino({ serializers: { path: (p: string) => p.toUpperCase() } }, d)],
    ['a nested key', (d) => pino({ nestedKey: 'payload' }, d)],
    ['a message prefix', (d) => pino({ msgPrefix: '[egress] ' }, d)],
    ['a streamWrite hook', (d) => pino({ hooks: { streamWrite: (s) => s.replace('"kind"', '"Kind"') } }, d)],
  ])('%s: the same line pino writes', (_name, make) => {
    const c = capture();
    const [pinoLine, lean] = pinoAndLean(make(c.stream), c.written);
    expect(lean).toBe(pinoLine);
  });

  test('what only pino can write is written by pino (redacted, serialized)', () => {
    const c = capture();
    writeAccessLine(pino({ redact: ['path'] }, c.stream), FIELDS, 'request');
    writeAccessLine(pino({ serializers: { path: () => 'P' } }, c.stream), FIELDS, 'request');
    expect(c.written.map((l) => (JSON.parse(l) as { path: string }).path)).toEqual(['[Redacted]', 'P']);
  });

  test('bindings set after the first line show in the next', () => {
    const c = capture();
    const logger = createLogger('info', c.stream).child({ worker: 1 });
    writeAccessLine(logger, FIELDS, 'request');
    logger.setBindings({ worker: 4 });
    writeAccessLine(logger, FIELDS, 'request');
    expect(c.written.map((l) => (JSON.parse(l) as { worker: number }).worker)).toEqual([1, 4]);
  });

  test('goes into the proxy\'s batching destination with pino\'s lines: nothing written until the batch fills or flushLogsSync()', () => {
    const dir = mkdtempSync(join(tmpdir(), 'egress-log-'));
    const file = join(dir, 'out.log');
    const fd = openSync(file, 'w');
    const destination = batchingDestination(fd);
    try {
      const logger = createLogger('info', destination);
      logger.info({ event: 'started' }, 'listening');
      for (let i = 0; i < 10; i++) writeAccessLine(logger, FIELDS, 'request');
      logger.warn('after');
      expect(readFileSync(file, 'utf8')).toBe('');
      flushLogsSync();
      const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string });
      expect(lines.map((l) => l.msg)).toEqual(['listening', ...Array(10).fill('request'), 'after']);
    } finally {
      destination.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('BatchingDestination', () => {
  const line = (i: number) => `{"i":${i},"s":"${'é€😀'.repeat(i % 5)}${'x'.repeat(i % 97)}"}\n`;
  const waitIdle = async (d: BatchingDestination) => {
    for (let i = 0; i < 500 && d.busy; i++) await new Promise((r) => setTimeout(r, 10));
    expect(d.busy).toBe(false);
  };

  // Each test's files, and the destinations and descriptors it opened: ended and closed after it.
  let dir: string;
  let opened: { destinations: BatchingDestination[]; fds: number[] };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'egress-log-'));
    opened = { destinations: [], fds: [] };
  });
  afterEach(() => {
    for (const d of opened.destinations) d.end();
    for (const fd of opened.fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  /** A file of this test's, opened with `flags`: its path and descriptor. */
  const file = (name: string, flags = 'w') => {
    const path = join(dir, name);
    if (flags === 'r') writeFileSync(path, '');
    const fd = openSync(path, flags);
    opened.fds.push(fd);
    return { path, fd };
  };
  const destination = (fd: number, options?: Parameters<typeof batchingDestination>[1]) => {
    const d = batchingDestination(fd, options);
    opened.destinations.push(d);
    return d;
  };

  test('writes every line once, in order and byte for byte, over many asynchronous batches', async () => {
    const out = file('out.log');
    const d = destination(out.fd, { batchBytes: 4096 });
    const expected: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      expected.push(line(i));
      expect(d.write(line(i))).toBe(true);
      // Yield now and then, so writes complete while lines keep coming.
      if (i % 700 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitIdle(d);
    expect(readFileSync(out.path, 'utf8')).toBe(expected.join(''));
    expect(d.dropped).toBe(0);
  });

  test('a pipe whose reader is slow (non-blocking, full) gets every line once its reader reads', async () => {
    // The reader sleeps 300 ms, then counts and hashes what it reads.
    const reader = spawn(process.execPath, ['-e', `
      const h = require('node:crypto').createHash('sha256'); let n = 0;
      setTimeout(() => { process.stdin.on('data', (c) => { h.update(c); n += c.length; }); process.stdin.on('end', () => process.stdout.write(n + ' ' + h.digest('hex'))); }, 300);
    `], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    reader.stdout.on('data', (c: Buffer) => out.push(c));
    const exited = new Promise<number | null>((r) => reader.once('exit', r));
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    const d = destination(fd);
    try {
      const all: string[] = [];
      // ~1.5 MB: far beyond a pipe's buffer, so writes meet EAGAIN until the reader starts.
      for (let i = 0; i < 15_000; i++) {
        all.push(line(i));
        d.write(line(i));
      }
      d.flush();
      await waitIdle(d);
      reader.stdin.end();
      expect(await exited).toBe(0);
      const bytes = Buffer.from(all.join(''), 'utf8');
      expect(Buffer.concat(out).toString()).toBe(`${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}`);
      expect(d.dropped).toBe(0);
    } finally {
      if (reader.exitCode === null) reader.kill();
    }
  }, 20_000);

  test('beyond its bound, lines are dropped and counted, and what was kept is written in order', async () => {
    const out = file('out.log');
    const err = file('err.log');
    const d = destination(out.fd, { batchBytes: 1000, maxPendingBytes: 10_000, errorFd: err.fd });
    // All in one turn: the first batch is being written, the rest waits, up to the bound.
    const accepted: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const l = `${JSON.stringify({ i, pad: 'p'.repeat(80) })}\n`;
      if (d.write(l)) accepted.push(l);
    }
    expect(d.dropped).toBe(1000 - accepted.length);
    expect(accepted.length).toBeGreaterThan(100);
    expect(accepted.length).toBeLessThan(150);
    await waitIdle(d);
    expect(readFileSync(out.path, 'utf8')).toBe(accepted.join(''));
    // Room again once written; said once when dropping began and once when it ended.
    expect(d.write('{"after":true}\n')).toBe(true);
    expect(readFileSync(err.path, 'utf8').split('\n')).toEqual([
      expect.stringMatching(/^egress-proxy: the log's reader is not keeping up \(\d+ bytes waiting\); dropping lines until it does$/),
      `egress-proxy: the log's reader caught up; ${1000 - accepted.length} line(s) dropped so far`,
      '',
    ]);
  });

  test('a write error stops the writing, says so once on its error fd, counts the lines and never throws', async () => {
    const readOnly = file('ro.log', 'r');
    const err = file('err.log');
    const d = destination(readOnly.fd, { batchBytes: 10, errorFd: err.fd });
    expect(d.write('{"a":1}\n{"b":2}\n')).toBe(true);
    await waitIdle(d);
    expect(d.write('{"c":3}\n')).toBe(false);
    expect(d.write('{"d":4}\n')).toBe(false);
    expect(d.dropped).toBe(2);
    expect(() => d.flushSync()).not.toThrow();
    expect(readFileSync(err.path, 'utf8')).toMatch(/^egress-proxy: writing the log to fd \d+ failed \(EBADF\); further lines are dropped\n$/);
  });

  test('lines of a quiet proxy appear within the periodic flush, without a full batch', async () => {
    const out = file('out.log');
    const d = destination(out.fd);
    d.write('{"one":1}\n');
    expect(readFileSync(out.path, 'utf8')).toBe('');
    for (let i = 0; i < 200 && readFileSync(out.path, 'utf8') === ''; i++) await new Promise((r) => setTimeout(r, 10));
    expect(readFileSync(out.path, 'utf8')).toBe('{"one":1}\n');
  });
});
