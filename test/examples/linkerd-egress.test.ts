import { spawnSync } from 'child_process';
import { mkdtempSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { App } from 'cdk8s';
import { buildApp } from '../../examples/linkerd-egress/main';
import { EgressNetwork } from '../../src';
import type { ProxyConfig } from '../../src/model/proxy-config';
import { decide } from '../../src/proxy/decide';
import type { Target } from '../../src/proxy/decide';
import { compilePolicy } from '../../src/proxy/policy';
import { readManifests } from '../e2e/helpers';
import { validatePath } from '../mesh/validate';

const ROOT = resolve(__dirname, '..', '..');

function find(objs: any[], kind: string, name: string): any {
  const found = objs.filter((o) => o.kind === kind && o.metadata?.name === name);
  expect(found).toHaveLength(1);
  return found[0];
}

describe('examples/linkerd-egress', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'linkerd-egress-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('the deny stage holds the seed\'s objects and passes the strict validator', () => {
    buildApp(dir).synth();
    expect(readdirSync(dir).sort()).toEqual(['client.k8s.yaml', 'egress.k8s.yaml', 'internal-egress.k8s.yaml', 'namespace.k8s.yaml']);
    const v = validatePath(dir);
    expect(v.messages).toEqual([]);
    expect(v).toMatchObject({ passed: 8, failed: 0 });

    const objs = readManifests(dir);
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'Deployment/internal-egress', 'EgressNetwork/all-egress-traffic', 'HTTPRoute/httpbin-get', 'HTTPRoute/unencrypted-http',
      'Namespace/egress-test', 'Pod/client', 'Service/internal-egress', 'TLSRoute/tls-egress',
    ]);
    for (const o of objs.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace).toBe('egress-test');

    expect(find(objs, 'EgressNetwork', 'all-egress-traffic').spec).toEqual({ trafficPolicy: 'Deny' });
    const parent = { group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test' };

    const get = find(objs, 'HTTPRoute', 'httpbin-get');
    expect(get.spec.parentRefs).toEqual([{ ...parent, port: 80 }]);
    expect(get.spec.rules).toEqual([{ matches: [{ path: { type: 'PathPrefix', value: '/get' } }] }]);

    const tls = find(objs, 'TLSRoute', 'tls-egress');
    expect(tls.apiVersion).toBe('gateway.networking.k8s.io/v1alpha2');
    expect(tls.spec.hostnames).toEqual(['httpbin.org']);
    expect(tls.spec.parentRefs).toEqual([{ ...parent, port: 443 }]);
    expect(tls.spec.rules).toEqual([{ backendRefs: [{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic' }] }]);

    const unencrypted = find(objs, 'HTTPRoute', 'unencrypted-http');
    expect(unencrypted.spec.parentRefs).toEqual([{ ...parent, port: 80 }]);
    expect(unencrypted.spec.rules).toEqual([{ backendRefs: [{ kind: 'Service', name: 'internal-egress', port: 80 }] }]);

    const svc = find(objs, 'Service', 'internal-egress');
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.selector).toEqual({ app: 'internal-egress' });
    expect(svc.spec.ports).toEqual([{ name: 'one', port: 80, protocol: 'TCP', targetPort: 80 }]);

    const deploy = find(objs, 'Deployment', 'internal-egress');
    expect(deploy.spec.selector.matchLabels).toEqual({ app: 'internal-egress' });
    expect(deploy.spec.template.metadata.annotations).toEqual({ 'linkerd.io/inject': 'enabled' });
    const [bb] = deploy.spec.template.spec.containers;
    expect(bb.image).toBe('buoyantio/bb:v0.0.5');
    expect(bb.args[0]).toContain("--response-text 'You cannot go there right now'");
    expect(bb.ports).toEqual([{ containerPort: 80, name: 'http-port' }]);

    const client = find(objs, 'Pod', 'client');
    expect(client.metadata.annotations).toEqual({ 'linkerd.io/inject': 'enabled' });
    expect(client.spec.containers[0]).toMatchObject({ name: 'client', image: 'curlimages/curl', command: ['sh', '-c', 'sleep infinity'] });
  });

  test('the allow stage is the observing EgressNetwork, no routes, and passes the strict validator', () => {
    buildApp(dir, 'allow').synth();
    const v = validatePath(dir);
    expect(v.messages).toEqual([]);
    expect(v).toMatchObject({ passed: 3, failed: 0 });
    const objs = readManifests(dir);
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['EgressNetwork/all-egress-traffic', 'Namespace/egress-test', 'Pod/client']);
    expect(find(objs, 'EgressNetwork', 'all-egress-traffic').spec).toEqual({ trafficPolicy: 'Allow' });
  });

  test('run directly, it synthesises the stage it is told', () => {
    const r = spawnSync('npx', ['ts-node', '--transpile-only', '--project', 'test/tsconfig.json', 'examples/linkerd-egress/main.ts', dir, '--stage', 'allow'],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr.replace(/^npm warn.*\n/gm, '')).toBe('');
    expect(r.status).toBe(0);
    expect(find(readManifests(dir), 'EgressNetwork', 'all-egress-traffic').spec.trafficPolicy).toBe('Allow');
  });

  test('the model of each stage makes the decisions the guide shows, in the real decide()', () => {
    const policyOf = (app: App) => {
      const net = app.node.findAll().find((c): c is EgressNetwork => c instanceof EgressNetwork)!;
      // Only the policy half of a config: what decide() reads.
      return compilePolicy({ parent: net._renderParent(), routes: net._renderRoutes(), externalServices: [] } as unknown as ProxyConfig);
    };
    const get = (host: string, path: string): Target => ({ protocol: 'http', host, port: 80, method: 'GET', path, headers: {} });
    const tls = (host: string): Target => ({ protocol: 'tls', host, port: 443 });

    const allow = policyOf(buildApp(dir, 'allow'));
    expect(decide(allow, get('httpbin.org', '/get'))).toMatchObject({ action: 'allow', reason: 'default-allow', route: { kind: 'default', name: 'http-egress-allow' } });

    const deny = policyOf(buildApp(dir, 'deny'));
    expect(decide(deny, get('httpbin.org', '/get'))).toMatchObject({
      action: 'allow', reason: 'route-matched', route: { kind: 'HTTPRoute', namespace: 'egress-test', name: 'httpbin-get' }, backend: undefined,
    });
    const other = decide(deny, get('google.com', '/'));
    expect(other).toMatchObject({ action: 'allow', reason: 'route-matched', route: { kind: 'HTTPRoute', name: 'unencrypted-http' } });
    expect(other.backend).toMatchObject({ kind: 'Service', name: 'internal-egress', port: 80, host: 'internal-egress.egress-test.svc.cluster.local' });
    expect(decide(deny, tls('httpbin.org'))).toMatchObject({ action: 'allow', reason: 'route-matched', route: { kind: 'TLSRoute', name: 'tls-egress' } });
    expect(decide(deny, tls('github.com'))).toMatchObject({ action: 'deny', reason: 'default-deny', route: { kind: 'default', name: 'tls-egress-deny' } });
  });
});
