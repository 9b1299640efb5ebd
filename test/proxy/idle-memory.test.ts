// Giving memory back after a burst: when the reclaimer collects (idle long enough, nothing in
// flight, resident memory grown), that V8's gc() is real, and that the proxy drives it from its admissions.
import * as v8 from 'node:v8';
import { eventually, startHttpsUpstream, startTestProxy, testConfig, testService, viaProxy, type TestUpstream } from './helpers';
import { exposeGc, startIdleReclaim, type GcFunction, type IdleReclaimOptions } from '../../src/proxy/idle-memory';
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

describe('exposeGc', () => {
  test("is V8's collector: garbage is gone from the heap after one call", () => {
    const gc = exposeGc();
    const used = () => v8.getHeapStatistics().used_heap_size;
    let garbage: object[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `${'x'.repeat(40)}${i}` }));
    const holding = used();
    if (garbage.length !== 200_000) throw new Error('allocation');
    garbage = undefined;
    gc();
    // 200,000 objects with a 45-character string each: well over 10 MiB.
    expect(holding - used()).toBeGreaterThan(10 * MiB);
  });

  test('hands out the same collector again', () => {
    expect(exposeGc()).toBe(exposeGc());
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
