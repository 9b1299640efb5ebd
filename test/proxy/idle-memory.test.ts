// Giving memory back after a burst: when the reclaimer collects (idle long enough, nothing in
// flight, resident memory grown), that V8's gc() is real, and that the proxy drives it from its admissions.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { eventually, startHttpsUpstream, startTestProxy, testConfig, testService, viaProxy, type TestUpstream } from './helpers';
import { exposedGc, startIdleReclaim, type GcFunction, type IdleReclaimOptions } from '../../src/proxy/idle-memory';
import type { ProxyHandle } from '../../src/proxy/server';

const MiB = 1024 * 1024;

/** A reclaimer on a fake clock, resident memory and activity, checked by hand (its own timer stopped). */
function fixture(extra: Partial<IdleReclaimOptions> = {}) {
  const s = { now: 1_000, rss: 40 * MiB, admitted: 0, inflight: 0, gcCalls: [] as unknown[] };
  const reclaimer = startIdleReclaim({
    idleMs: 2_000,
    growthBytes: 16 * MiB,
    now: () => s.now,
    rssBytes: () => s.rss,
    activity: () => ({ admitted: s.admitted, inflight: s.inflight }),
    gc: () => {
      s.gcCalls.push(s.now);
      s.rss = 30 * MiB;
    },
    ...extra,
  });
  reclaimer.stop();
  return { s, check: () => reclaimer.check() };
}

describe('startIdleReclaim', () => {
  test('collects once, memory-reducing, after idleMs without admissions and only when resident memory grew', () => {
    const { s, check } = fixture();
    // Resident memory has not grown since the start: nothing to give back, however long it is idle.
    s.now += 10_000;
    expect(check()).toBe(false);
    // A burst: admissions, and resident memory grows by 20 MiB.
    s.admitted = 500;
    s.rss = 60 * MiB;
    expect(check()).toBe(false);
    s.now += 1_999;
    expect(check()).toBe(false);
    s.now += 1;
    expect(check()).toBe(true);
    expect(s.gcCalls).toEqual([s.now]);
    // Still idle: no second collection (the baseline is resident memory after the first).
    s.now += 60_000;
    expect(check()).toBe(false);
    expect(s.gcCalls).toHaveLength(1);
  });

  test('never while something is in flight, however long; a new admission restarts the idle time', () => {
    const { s, check } = fixture();
    s.admitted = 1;
    s.inflight = 1;
    s.rss = 80 * MiB;
    for (let i = 0; i < 5; i++) {
      s.now += 5_000;
      expect(check()).toBe(false);
    }
    s.inflight = 0;
    s.now += 1_000;
    s.admitted = 2;
    expect(check()).toBe(false);
    s.now += 1_500;
    expect(check()).toBe(false);
    s.now += 500;
    expect(check()).toBe(true);
  });

  test('steady low traffic that does not grow resident memory by growthBytes never pays for a collection', () => {
    const { s, check } = fixture();
    for (let i = 1; i <= 100; i++) {
      s.admitted = i;
      s.rss = 40 * MiB + (i % 10) * MiB;
      s.now += 3_000;
      expect(check()).toBe(false);
      s.now += 3_000;
      expect(check()).toBe(false);
    }
    expect(s.gcCalls).toHaveLength(0);
  });

  test('growthBytes 0: once per idle period, whatever memory did', () => {
    const { s, check } = fixture({ growthBytes: 0 });
    s.now += 2_000;
    expect(check()).toBe(true);
    s.now += 10_000;
    expect(check()).toBe(false);
    s.admitted = 1;
    expect(check()).toBe(false);
    s.now += 2_000;
    expect(check()).toBe(true);
    expect(s.gcCalls).toHaveLength(2);
  });

  test('reports the pause and what the collection gave back', () => {
    const results: unknown[] = [];
    const { s, check } = fixture({ onReclaim: (r) => results.push(r) });
    s.admitted = 1;
    s.rss = 70 * MiB;
    expect(check()).toBe(false);
    s.now += 2_000;
    expect(check()).toBe(true);
    expect(results).toEqual([expect.objectContaining({ rssBeforeBytes: 70 * MiB, rssAfterBytes: 30 * MiB, pauseMs: expect.any(Number) })]);
  });

  test.each([0, -1, 1.5, NaN])('idleMs %p is refused', (idleMs) => {
    expect(() => startIdleReclaim({ idleMs, activity: () => ({ admitted: 0, inflight: 0 }), gc: () => undefined }))
      .toThrow(`idleMs must be a positive integer, got ${idleMs}`);
  });
});

describe('exposedGc', () => {
  /**
   * Runs exposedGc() in a new node process, bundled from the source by esbuild, with `flags`: it
   * reports whether a collector came back and how much of 200,000 dropped objects one call freed.
   */
  function inChild(flags: string[]): { collector: boolean; freedMiB?: number } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-gc-'));
    try {
      const entry = path.join(dir, 'entry.ts');
      fs.writeFileSync(entry, [
        'import * as v8 from \'node:v8\';',
        `import { exposedGc } from ${JSON.stringify(path.resolve(__dirname, '../../src/proxy/idle-memory'))};`,
        'const gc = exposedGc();',
        'if (!gc) { console.log(JSON.stringify({ collector: false })); process.exit(0); }',
        'const used = () => v8.getHeapStatistics().used_heap_size;',
        "let garbage: object[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `${'x'.repeat(40)}${i}` }));",
        'const holding = used();',
        "if (garbage.length !== 200_000) throw new Error('allocation');",
        'garbage = undefined;',
        'gc();',
        'console.log(JSON.stringify({ collector: true, freedMiB: (holding - used()) / 1048576 }));',
      ].join('\n'));
      const out = path.join(dir, 'entry.js');
      esbuild.buildSync({ entryPoints: [entry], bundle: true, platform: 'node', target: 'node20', outfile: out, logLevel: 'silent' });
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      return JSON.parse(execFileSync(process.execPath, [...flags, out], { env, encoding: 'utf8', timeout: 20_000 }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test("with --expose-gc: V8's collector, and garbage is gone from the heap after one call", () => {
    const r = inChild(['--expose-gc']);
    expect(r.collector).toBe(true);
    // 200,000 objects with a 45-character string each: well over 10 MiB.
    expect(r.freedMiB).toBeGreaterThan(10);
  });

  test('without it: no collector, rather than one taken from a new vm context', () => {
    expect(inChild([])).toEqual({ collector: false });
  });

  test('calls the global gc() memory-reducing where Node takes options (22+), plainly on Node 20', () => {
    const calls: unknown[][] = [];
    const g = globalThis as { gc?: unknown };
    const before = g.gc;
    g.gc = (...args: unknown[]) => void calls.push(args);
    try {
      exposedGc()!();
    } finally {
      g.gc = before;
    }
    const major = Number(process.versions.node.split('.')[0]);
    expect(calls).toEqual([major >= 22 ? [{ type: 'major', execution: 'sync', flavor: 'last-resort' }] : []]);
  });

  test('the proxy never creates a vm context: a second context slows every allocation', () => {
    // Measured on Node 24 (bench/README.md, "Idle memory"): with one more context in the process,
    // allocation got 10-20 times slower and the proxy spent about 10 % more CPU per request.
    const dir = path.resolve(__dirname, '../../src');
    const offenders: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.ts$/.test(e.name) && /['"](node:)?vm['"]/.test(fs.readFileSync(p, 'utf8'))) offenders.push(path.relative(dir, p));
      }
    };
    walk(path.join(dir, 'proxy'));
    expect(offenders).toEqual([]);
  });
});

describe('the proxy drives it', () => {
  let upstream: TestUpstream;
  let proxy: ProxyHandle | undefined;
  beforeAll(async () => {
    upstream = await startHttpsUpstream((req, res) => {
      const wait = Number(new URL(req.url ?? '/', 'https://x').searchParams.get('wait') ?? 0);
      setTimeout(() => res.end('ok'), wait);
    });
  });
  afterEach(async () => proxy?.close());
  afterAll(async () => upstream.close());

  test('not during a slow request, once after it, and again only after new requests', async () => {
    const calls: number[] = [];
    const gc: GcFunction = () => void calls.push(Date.now());
    const config = testConfig({ externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })] });
    const t = await startTestProxy(config, { 'api.test.example': '127.0.0.1' }, { idleReclaim: { idleMs: 300, growthBytes: 0, gc } });
    proxy = t.proxy;
    const port = proxy.ports.http;
    // Idle from the start: one collection (growthBytes 0), then none until something is admitted.
    await eventually(() => calls.length === 1, 3_000, 'the first idle collection');
    const slow = viaProxy(port, 'api.test.example.egress.local', '/?wait=1200');
    await new Promise((r) => setTimeout(r, 900));
    expect(calls).toHaveLength(1);
    expect((await slow).status).toBe(200);
    const done = Date.now();
    await eventually(() => calls.length === 2, 3_000, 'the collection after the slow request');
    // idleMs after the proxy saw the request last (a check every idleMs / 4), which is before
    // the client read the answer.
    expect(calls[1] - done).toBeGreaterThanOrEqual(150);
    await new Promise((r) => setTimeout(r, 800));
    expect(calls).toHaveLength(2);
    expect((await viaProxy(port, 'api.test.example.egress.local', '/')).status).toBe(200);
    await eventually(() => calls.length === 3, 3_000, 'the collection after the next request');
    expect(t.logs.lines.filter((l) => l.event === 'memory-reclaimed')).toHaveLength(3);
    expect(t.logs.lines.find((l) => l.event === 'memory-reclaimed')).toMatchObject({ rssMiB: [expect.any(Number), expect.any(Number)], pauseMs: expect.any(Number) });
  });

  test('asked for without a collector (no --expose-gc): says so once at start, and runs none', async () => {
    const g = globalThis as { gc?: unknown };
    const before = g.gc;
    delete g.gc;
    try {
      const config = testConfig({ externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })] });
      const t = await startTestProxy(config, { 'api.test.example': '127.0.0.1' }, { idleReclaim: { idleMs: 50, growthBytes: 0 } });
      proxy = t.proxy;
      expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300));
      expect(t.logs.lines.filter((l) => l.event === 'idle-reclaim-off')).toEqual([
        expect.objectContaining({ level: 40, idleMs: 50, msg: expect.stringContaining('--expose-gc') }), // 40: warn
      ]);
      expect(t.logs.lines.filter((l) => l.event === 'memory-reclaimed')).toEqual([]);
    } finally {
      g.gc = before;
    }
  });

  test('off unless asked for', async () => {
    let calls = 0;
    const config = testConfig({ externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })] });
    const t = await startTestProxy(config, { 'api.test.example': '127.0.0.1' }, { idleReclaim: { idleMs: 0, growthBytes: 0, gc: () => void calls++ } });
    proxy = t.proxy;
    expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(0);
  });
});
