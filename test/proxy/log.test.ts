// The logger's own parts: the cached ISO timestamp must read exactly as Date#toISOString would;
// the access line written as a string must be the line pino writes, at pino's level and place.
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type DestinationStream } from 'pino';
import { batchingDestination, createLogger, flushLogsSync, isoTime, jsonNumber, jsonString, silentLogger, writeAccessLine, type Logger } from '../../src/proxy/log';

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
  for (const n of [0, -0, 1, -1, 0.1, 12.3, 1e21, 1e-7, 123456789012, Number.MAX_SAFE_INTEGER, Number.NaN, Infinity, -Infinity]) {
    expect(jsonNumber(n)).toBe(JSON.stringify(n));
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
