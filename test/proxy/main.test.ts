// The bundled proxy as a process (assets/proxy/main/index.js, built by `npx projen bundle`):
// argument parsing, --check-config exit codes, refusing to start on a bad config, SIGTERM drain.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { collectJsonLines, eventually, startHttpsUpstream, testConfig, testPki, testService, type TestUpstream } from './helpers';
import { DEFAULT_IDLE_RECLAIM_MS } from '../../src/proxy/idle-memory';
import { listenersOnPort } from '../../src/proxy/listeners';
import { parseArgs, DEFAULT_CONFIG_PATH } from '../../src/proxy/main';

const BUNDLE = resolve(__dirname, '../../assets/proxy/main/index.js');

beforeAll(() => {
  if (!existsSync(BUNDLE)) {
    const r = spawnSync('npx', ['projen', 'bundle'], { cwd: resolve(__dirname, '../..'), stdio: 'pipe' });
    if (r.status !== 0) throw new Error(`bundle failed: ${r.stderr}`);
  }
});

function writeConfig(name: string, content: unknown): string {
  const file = join(testPki().dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

describe('parseArgs', () => {
  test('--config, --config=, EGRESS_CONFIG and the default', () => {
    expect(parseArgs(['--config', '/a.json'], {})).toEqual({ mode: 'run', file: '/a.json', idleReclaimMs: DEFAULT_IDLE_RECLAIM_MS });
    expect(parseArgs(['--config=/b.json'], {})).toEqual({ mode: 'run', file: '/b.json', idleReclaimMs: DEFAULT_IDLE_RECLAIM_MS });
    expect(parseArgs([], { EGRESS_CONFIG: '/env.json' })).toEqual({ mode: 'run', file: '/env.json', idleReclaimMs: DEFAULT_IDLE_RECLAIM_MS });
    expect(parseArgs([], {})).toEqual({ mode: 'run', file: DEFAULT_CONFIG_PATH, idleReclaimMs: DEFAULT_IDLE_RECLAIM_MS });
    expect(parseArgs(['--check-config', '/c.json'], {})).toEqual({ mode: 'check', file: '/c.json', idleReclaimMs: DEFAULT_IDLE_RECLAIM_MS });
  });

  test('EGRESS_IDLE_RECLAIM_MS: whole milliseconds, 0 turns it off, anything else is refused with the rule', () => {
    expect(parseArgs([], { EGRESS_IDLE_RECLAIM_MS: '500' }).idleReclaimMs).toBe(500);
    expect(parseArgs([], { EGRESS_IDLE_RECLAIM_MS: '0' }).idleReclaimMs).toBe(0);
    expect(parseArgs([], { EGRESS_IDLE_RECLAIM_MS: ' ' }).idleReclaimMs).toBe(DEFAULT_IDLE_RECLAIM_MS);
    for (const bad of ['2s', '-1', '1.5', '3600001']) {
      expect(() => parseArgs([], { EGRESS_IDLE_RECLAIM_MS: bad })).toThrow(
        new RegExp(`EGRESS_IDLE_RECLAIM_MS="${bad.replace('.', '\\.')}": must be whole milliseconds from 0 \\(off\\) to 3600000; unset it for the default, 60000`));
    }
  });

  test('throws on unknown arguments and a missing file', () => {
    expect(() => parseArgs(['--verbose'], {})).toThrow(/unknown argument "--verbose"/);
    expect(() => parseArgs(['--config'], {})).toThrow(/--config needs a file/);
  });

  test('--explain FILE --request JSON, in either order; each needs the other', () => {
    expect(parseArgs(['--explain', '/c.json', '--request', '{"host":"a"}'], {})).toEqual({ mode: 'explain', file: '/c.json', request: '{"host":"a"}', idleReclaimMs: DEFAULT_IDLE_RECLAIM_MS });
    expect(parseArgs(['--request=@/r.json', '--explain=/c.json'], {})).toEqual({ mode: 'explain', file: '/c.json', request: '@/r.json', idleReclaimMs: DEFAULT_IDLE_RECLAIM_MS });
    expect(() => parseArgs(['--explain', '/c.json'], {})).toThrow(/--explain needs --request/);
    expect(() => parseArgs(['--config', '/c.json', '--request', '{}'], {})).toThrow(/--request goes with --explain/);
    expect(() => parseArgs(['--explain', '/c.json', '--request'], {})).toThrow(/--request needs a JSON request or @FILE/);
  });
});

describe('--explain (bundle)', () => {
  const config = () => writeConfig('explain.json', testConfig({
    parent: { name: 'p', namespace: 'egress', trafficPolicy: 'Deny' },
    callers: { source: 'Linkerd' },
    externalServices: [testService('api', 'api.test.example', { clients: [{ namespace: 'payments' }] })],
    routes: [{ kind: 'HTTPRoute', name: 'api', namespace: 'egress', hostnames: ['api.test.example'], rules: [{}] }],
  }));
  const run = (...args: string[]) => spawnSync(process.execPath, [BUNDLE, ...args], { encoding: 'utf8', timeout: 20_000 });

  test('allowed: exit 0 and the explanation as JSON', () => {
    const r = run('--explain', config(), '--request', JSON.stringify({ host: 'api.test.example.egress.local', path: '/x', caller: { namespace: 'payments', serviceAccount: 'web' } }));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      allowed: true,
      reason: 'route-matched',
      route: { kind: 'HTTPRoute', namespace: 'egress', name: 'api', rule: 0 },
      externalService: 'api',
      caller: { known: true, identity: 'web.payments.serviceaccount.identity.linkerd.cluster.local' },
    });
  });

  test('denied: exit 3, with the status and x-egress-error code the proxy would answer', () => {
    const file = join(testPki().dir, 'explain-request.json');
    writeFileSync(file, JSON.stringify({ host: 'api.test.example.egress.local', caller: 'web.shop.serviceaccount.identity.linkerd.cluster.local' }));
    const r = run('--explain', config(), '--request', `@${file}`);
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ allowed: false, status: 403, code: 'CALLER_NOT_ALLOWED', reason: 'caller-not-allowed', refusedBy: 'external-service' });
    const unknown = run('--explain', config(), '--request', '{"host":"api.test.example.egress.local"}');
    expect(unknown.status).toBe(3);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ code: 'CALLER_UNKNOWN', caller: { known: false, unknown: 'no-header' } });
  });

  test('bad input: exit 1 and why (request not JSON, request it cannot state, invalid config); usage errors exit 2', () => {
    const notJson = run('--explain', config(), '--request', '{host');
    expect(notJson.status).toBe(1);
    expect(notJson.stderr).toContain('--request: ');
    const noHost = run('--explain', config(), '--request', '{"path":"/"}');
    expect(noHost.status).toBe(1);
    expect(noHost.stderr).toContain('--request: the request needs host');
    const bad = writeConfig('explain-bad.json', { ...testConfig(), callers: { source: 'Consul' } });
    const invalid = run('--explain', bad, '--request', '{"host":"a.egress.local"}');
    expect(invalid.status).toBe(1);
    expect(invalid.stderr).toContain('$.callers.source: must be one of "None", "Linkerd", "Istio" (got "Consul")');
    expect(run('--explain', config()).status).toBe(2);
  });
});

describe('--check-config (bundle)', () => {
  test('a valid file: exit 0 and a one-line summary', () => {
    const file = writeConfig('check-ok.json', testConfig({ externalServices: [testService('api', 'api.test.example')] }));
    const r = spawnSync(process.execPath, [BUNDLE, '--check-config', file], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('valid EgressProxyConfig for gateway egress/egress-gateway (1 external services, 0 routes)');
  });

  test('an invalid file: exit 1 and every problem listed with path and value', () => {
    const file = writeConfig('check-bad.json', { ...testConfig(), kind: 'Proxy', parent: { name: 'p', namespace: 'n', trafficPolicy: 'Open' }, timeouts: { idleMs: -5 } });
    const r = spawnSync(process.execPath, [BUNDLE, '--check-config', file], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('3 problem(s)');
    expect(r.stderr).toContain('$.kind: must be "EgressProxyConfig" (got "Proxy")');
    expect(r.stderr).toContain('$.parent.trafficPolicy: must be one of "Allow", "Deny" (got "Open")');
    expect(r.stderr).toContain('$.timeouts.idleMs: must be an integer from 1 to 86400000 (got -5)');
  });

  test('not JSON: exit 1', () => {
    const file = writeConfig('check-garbage.json', '{ nope');
    const r = spawnSync(process.execPath, [BUNDLE, '--check-config', file], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('not valid JSON');
  });
});

describe('running (bundle)', () => {
  let child: ChildProcess | undefined;
  let upstream: TestUpstream | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    await upstream?.close();
    child = undefined;
    upstream = undefined;
  });

  test('an invalid config at startup: non-zero exit before listening', () => {
    const file = writeConfig('start-bad.json', { ...testConfig(), parent: { name: 'p', namespace: 'n', trafficPolicy: 'Open' } });
    const r = spawnSync(process.execPath, [BUNDLE, '--config', file], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('$.parent.trafficPolicy');
    expect(r.stdout).not.toContain('"event":"started"');
  });

  test('a route regex that backtracks catastrophically cannot stall the proxy (linear-engine fallback)', async () => {
    // Under Deny, '/(a+)+' is the only route. On V8's backtracking engine the hostile path below
    // needs ~2^40 steps to fail (hours); the proxy must answer it and keep serving.
    const file = writeConfig('redos.json', testConfig({
      parent: { name: 'p', namespace: 'egress', trafficPolicy: 'Deny' },
      routes: [{
        kind: 'HTTPRoute',
        name: 'aaa',
        namespace: 'egress',
        order: 0,
        hostnames: [],
        rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/(a+)+' } }] }],
      }],
    }));
    child = spawn(process.execPath, [BUNDLE, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    await eventually(() => out.includes('"event":"started"'), 15_000, 'proxy start');
    const started = JSON.parse(out.split('\n').find((l) => l.includes('"event":"started"'))!);
    const { http, admin } = started.ports as { http: number; admin: number };

    const hostile = await request(`http://127.0.0.1:${http}/${'a'.repeat(40)}!`, { headers: { host: 'x.test.example.egress.local' } });
    await hostile.body.dump();
    expect(hostile.statusCode).toBe(403); // no match: the deny route
    expect((await request(`http://127.0.0.1:${admin}/live`)).statusCode).toBe(200);
  });

  test('SIGTERM: /ready turns 503, the in-flight request completes, exit code 0', async () => {
    let finish: () => void = () => undefined;
    upstream = await startHttpsUpstream((_req, res) => {
      res.writeHead(200);
      res.write('first half, ');
      finish = () => res.end('second half');
    });
    const file = writeConfig('run.json', testConfig({
      externalServices: [testService('api', 'api.test.example', {
        ports: [{ port: 80, targetPort: upstream.port }], endpoints: [{ address: '127.0.0.1', priority: 0 }],
      })],
      timeouts: { shutdownGraceMs: 15_000, drainDelayMs: 0 },
    }));
    child = spawn(process.execPath, [BUNDLE, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = collectJsonLines(child.stdout!);
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    await eventually(() => lines.some((l) => l.event === 'started'), 15_000, 'proxy start');
    const started = lines.find((l) => l.event === 'started')!;
    const ports = started.ports as { http: number; admin: number };
    // The sockets the kernel shows listening on the port are the ones the start line reports.
    expect(started.acceptSockets).toBe(listenersOnPort(ports.http));
    expect((await request(`http://127.0.0.1:${ports.admin}/ready`)).statusCode).toBe(200);

    const response = await request(`http://127.0.0.1:${ports.http}/slow`, { headers: { host: 'api.test.example.egress.local' } });
    expect(response.statusCode).toBe(200);
    const body = response.body.text();
    await eventually(() => upstream!.requests() === 1, 5_000, 'request at upstream');

    process.kill(child.pid!, 'SIGTERM');
    await eventually(async () => {
      const r = await request(`http://127.0.0.1:${ports.admin}/ready`).catch(() => undefined);
      if (!r) return false;
      await r.body.dump();
      return r.statusCode === 503;
    }, 5_000, '/ready 503');
    expect(child.exitCode).toBeNull();
    finish();
    expect(await body).toBe('first half, second half');
    expect(await exited).toBe(0);
    expect(lines.some((l) => l.event === 'draining')).toBe(true);
    const access = lines.find((l) => l.msg === 'request') as { status: number; upstream: { address: string }; bytesOut: number };
    expect(access.status).toBe(200);
    expect(access.upstream.address).toBe('127.0.0.1');
  });
});
