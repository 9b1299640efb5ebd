// Compiling a config generation: files referenced by the config are read at load (and a missing
// one fails the load with its JSON path), injected header values are trimmed and kept out of the config.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testConfig, testPki, testService } from './helpers';
import { validateConfig } from '../../src/proxy/config';
import { RuntimeState } from '../../src/proxy/runtime';

function config(overrides: Record<string, unknown>) {
  const r = validateConfig(testConfig(overrides));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

test('injected header values are read from files, final newline dropped, config untouched', () => {
  const file = join(testPki().dir, 'api-key');
  writeFileSync(file, 'k-123\n');
  const c = config({ externalServices: [testService('api', 'api.test.example', { injectHeaders: [{ name: 'X-Api-Key', valueFile: file }] })] });
  const state = new RuntimeState(c, 1);
  expect(state.servicesByName.get('api')!.injected).toEqual([['x-api-key', 'k-123']]);
  expect(JSON.stringify(state.config)).not.toContain('k-123');
});

test('unreadable files fail the load with every path at once', () => {
  const c = config({
    defaultTls: { caFile: '/nonexistent/ca.pem' },
    externalServices: [testService('api', 'api.test.example', { injectHeaders: [{ name: 'authorization', valueFile: '/nonexistent/token' }] })],
  });
  expect(() => new RuntimeState(c, 1)).toThrow(expect.objectContaining({
    name: 'ConfigError',
    problems: [
      expect.objectContaining({ path: '$.defaultTls' }),
      expect.objectContaining({ path: '$.externalServices[0].injectHeaders[0].valueFile', value: '/nonexistent/token' }),
    ],
  }));
});

test('a header value file with a line break inside is refused', () => {
  const file = join(testPki().dir, 'two-lines');
  writeFileSync(file, 'a\nb');
  const c = config({ externalServices: [testService('api', 'api.test.example', { injectHeaders: [{ name: 'x-k', valueFile: file }] })] });
  expect(() => new RuntimeState(c, 1)).toThrow(/line break/);
});

test('per-service timeouts override the gateway ones; endpoints group by priority', () => {
  const c = config({
    timeouts: { connectMs: 1000 },
    externalServices: [testService('api', 'api.test.example', {
      timeouts: { connectMs: 50 },
      endpoints: [{ address: 'b.example', priority: 5 }, { address: 'a.example', priority: 1 }, { address: 'c.example', priority: 5 }],
    })],
  });
  const svc = new RuntimeState(c, 1).servicesByName.get('api')!;
  expect(svc.timeouts.connectMs).toBe(50);
  expect(svc.timeouts.dnsMs).toBe(c.timeouts.dnsMs);
  expect(svc.endpointGroups.map((g) => g.map((e) => e.address))).toEqual([['a.example'], ['b.example', 'c.example']]);
});

test('hostnameLabel: declared service host, else a matching route hostname pattern, else empty', () => {
  const c = config({
    externalServices: [testService('wild', '*.svc.example')],
    routes: [{ kind: 'HTTPRoute', name: 'r', namespace: 'n', hostnames: ['exact.example', '*.wild.example'], rules: [{}] }],
  });
  const state = new RuntimeState(c, 1);
  expect(state.hostnameLabel('x.svc.example', c.externalServices[0])).toBe('*.svc.example');
  expect(state.hostnameLabel('exact.example', undefined)).toBe('exact.example');
  expect(state.hostnameLabel('a.wild.example', undefined)).toBe('*.wild.example');
  expect(state.hostnameLabel('random-client-string.example', undefined)).toBe('');
});
