// The contract between the halves: a chart's synthesised ConfigMap is the proxy's config. Taken
// out of the manifests (never from _renderConfig()), it validates, passes the bundled proxy's
// --check-config, and, started with only the documented harness patches, carries real traffic.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chart, Testing } from 'cdk8s';
import { EgressGateway } from '../src/egress-gateway';
import { EgressNetwork } from '../src/egress-network';
import { InjectedHeader } from '../src/external-service';
import type { ProxyConfig } from '../src/model/proxy-config';
import { ConfigError, validateConfig } from '../src/proxy/config';
import { startProxy } from '../src/proxy/server';
import { CertificateSource, TlsOrigination } from '../src/tls';
import { EnforcementMode, TrafficPolicy } from '../src/traffic-policy';
import {
  checkConfigWithBundle, changedPaths, harnessPatch, mappingDialer, nonHarnessChanges, proxyConfigMap, scrapeSamples, serverCertFor, startFromSynth,
  type SynthProxy,
} from './e2e/helpers';
import { startHttpsUpstream, testPki, viaProxy, type TestUpstream } from './proxy/helpers';

const PARTNER_TOKEN_FILE = '/var/run/egress/secrets/partner-token/header';
const CORP_CA_FILE = '/var/run/egress/secrets/corp-ca/ca.crt';
const TOKEN = 'Bearer contract-test-token-7f3a';
const UPSTREAM_NAMES = ['api.partner.example', '*.storage.example', 'internal.corp.example', 'unlisted.example'];
const RESOLVE = Object.fromEntries(['api.partner.example', 'eu.storage.example', 'internal.corp.example', 'unlisted.example'].map((n) => [n, '127.0.0.1']));

/**
 * A platform chart: a gateway in "egress" serving three external services (an exact host with an
 * Authorization header from a Secret, a wildcard host, a host whose CA comes from a Secret),
 * enforcing a Deny EgressNetwork whose one HTTPRoute lets exactly those hosts out.
 */
function platformChart(enforcement: EnforcementMode = EnforcementMode.ENFORCE): Chart {
  const chart = new Chart(Testing.app(), 'platform');
  const gateway = new EgressGateway(chart, 'Egress', { namespace: 'egress', tlsPassthrough: true });
  const network = new EgressNetwork(chart, 'Partners', {
    name: 'partners', namespace: 'egress', trafficPolicy: TrafficPolicy.DENY, enforcement, gateway,
  });
  gateway.addExternalService('Partner', {
    host: 'api.partner.example',
    injectHeaders: [InjectedHeader.fromSecret('Authorization', 'partner-token', 'header')],
  });
  gateway.addExternalService('Storage', { host: '*.storage.example' });
  gateway.addExternalService('Corp', {
    host: 'internal.corp.example',
    tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromSecret('corp-ca', 'ca.crt') }),
  });
  network.addHttpRoute('Declared', {
    name: 'declared-hosts', port: 80, hostnames: ['api.partner.example', '*.storage.example', 'internal.corp.example'],
  });
  return chart;
}

/** data['config.json'] of the chart's synthesised ConfigMap, verbatim. */
function synthesisedConfigText(chart: Chart): string {
  return proxyConfigMap(Testing.synth(chart)).data['config.json'];
}

let upstream: TestUpstream | undefined;
let sp: SynthProxy | undefined;
let dirs: string[] = [];

afterEach(async () => {
  if (sp) expect(sp.dialer.refused).toEqual([]);
  await sp?.close();
  await upstream?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  sp = undefined;
  upstream = undefined;
  dirs = [];
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'egress-contract-'));
  dirs.push(d);
  return d;
}

async function startPlatform(enforcement?: EnforcementMode, corpCa = testPki().caPem): Promise<SynthProxy> {
  upstream = await startHttpsUpstream(undefined, serverCertFor(UPSTREAM_NAMES));
  sp = await startFromSynth({
    configText: synthesisedConfigText(platformChart(enforcement)),
    names: RESOLVE,
    ports: { 443: upstream.port },
    // The files the gateway pod would see from its Secret volumes.
    files: { [PARTNER_TOKEN_FILE]: `${TOKEN}\n`, [CORP_CA_FILE]: corpCa },
  });
  return sp;
}

describe('the synthesised config', () => {
  test('validates at the proxy boundary with zero problems and needs no defaults filled in', () => {
    const raw = JSON.parse(synthesisedConfigText(platformChart()));
    const r = validateConfig(raw);
    expect(r.ok ? [] : r.problems).toEqual([]);
    // Constructs render every field, so what the proxy enforces is what the ConfigMap says; the
    // one normalisation is header names to lower case (HTTP header names are case-insensitive).
    const expected = JSON.parse(JSON.stringify(raw));
    for (const s of expected.externalServices) for (const h of s.injectHeaders) h.name = h.name.toLowerCase();
    expect(r.ok && JSON.parse(JSON.stringify(r.config))).toEqual(expected);
    expect(raw.externalServices[0].injectHeaders).toEqual([{ name: 'Authorization', valueFile: PARTNER_TOKEN_FILE }]);
    expect(raw.parent).toEqual({
      group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'partners', namespace: 'egress', trafficPolicy: 'Deny', networks: [], mode: 'Enforce',
    });
    expect(raw.externalServices.map((s: any) => s.host)).toEqual(['api.partner.example', '*.storage.example', 'internal.corp.example']);
  });

  test('the bundled proxy\'s --check-config accepts the synthesised file', async () => {
    const file = join(tmp(), 'config.json');
    writeFileSync(file, synthesisedConfigText(platformChart()));
    const r = await checkConfigWithBundle(file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${file}: valid EgressProxyConfig for gateway egress/egress-gateway (3 external services, 1 routes)\n`);
  });

  test('every file the config names is mounted into the proxy container from the Secret it names', () => {
    const manifests = Testing.synth(platformChart());
    const config = JSON.parse(proxyConfigMap(manifests).data['config.json']) as ProxyConfig;
    const files = config.externalServices.flatMap((s) => [...s.injectHeaders.map((h) => h.valueFile), ...(s.tls.caFile ? [s.tls.caFile] : [])]);
    expect(files).toEqual([PARTNER_TOKEN_FILE, CORP_CA_FILE]);
    const pod = manifests.find((o) => o.kind === 'Deployment').spec.template.spec;
    const container = pod.containers.find((c: any) => c.name === 'proxy');
    for (const file of files) {
      const mount = container.volumeMounts.find((m: any) => file.startsWith(`${m.mountPath}/`));
      expect(mount).toMatchObject({ readOnly: true });
      const volume = pod.volumes.find((v: any) => v.name === mount.name);
      // /var/run/egress/secrets/<secret>/<key>: the volume must be that Secret.
      expect(volume.secret.secretName).toBe(file.split('/')[5]);
    }
    // And the config file itself is where the container's args say it is.
    const args: string[] = container.args;
    const configMount = container.volumeMounts.find((m: any) => args[1].startsWith(`${m.mountPath}/`));
    expect(pod.volumes.find((v: any) => v.name === configMount.name).configMap.name).toBe(proxyConfigMap(manifests).metadata.name);
  });

  test('breaking it (bad port, unknown field, bad CIDR) gets every problem listed at once, by validation, --check-config and startProxy', async () => {
    const broken = JSON.parse(synthesisedConfigText(platformChart()));
    broken.listeners.http.port = 70000;
    broken.externalServices[0].colour = 'blue';
    broken.addressPolicy.denyCidrs = ['10.0.0.0/33'];
    const r = validateConfig(broken);
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems;
    expect(problems.map((p) => p.path)).toEqual(expect.arrayContaining([
      '$.listeners.http.port', '$.externalServices[0].colour', '$.addressPolicy.denyCidrs[0]',
    ]));
    expect(problems).toHaveLength(3);
    expect(problems.find((p) => p.path === '$.listeners.http.port')).toMatchObject({ value: 70000 });
    expect(problems.find((p) => p.path === '$.externalServices[0].colour')?.message).toMatch(/^unknown field/);
    expect(problems.find((p) => p.path === '$.addressPolicy.denyCidrs[0]')).toMatchObject({ value: '10.0.0.0/33' });

    const file = join(tmp(), 'broken.json');
    writeFileSync(file, JSON.stringify(broken));
    const check = await checkConfigWithBundle(file);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain(`${file}: 3 problem(s):`);
    for (const path of ['$.listeners.http.port', '$.externalServices[0].colour', '$.addressPolicy.denyCidrs[0]']) {
      expect(check.stderr).toContain(`  - ${path}: `);
    }

    const err = await startProxy({ configPath: file, watch: false }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems.map((p) => p.path).sort()).toEqual(problems.map((p) => p.path).sort());
  });
});

describe('the harness itself', () => {
  test('its dialer throws for a non-loopback address, records it, and sends nothing', () => {
    const d = mappingDialer({ 443: 1 });
    expect(() => d.dial('203.0.113.7', 443)).toThrow(/refuses non-loopback address 203\.0\.113\.7/);
    expect(() => d.dial('10.0.0.1', 443)).toThrow(/refuses non-loopback/);
    expect(d.refused).toEqual([{ address: '203.0.113.7', port: 443 }, { address: '10.0.0.1', port: 443 }]);
    expect(() => d.dial('127.0.0.1', 8443)).toThrow(/no stand-in for port 8443/);
  });

  test('a patch outside the documented list is reported', () => {
    const raw = JSON.parse(synthesisedConfigText(platformChart()));
    const patched = harnessPatch(raw, { caPem: testPki().caPem, mountRoot: '/tmp/x' });
    expect(nonHarnessChanges(raw, patched)).toEqual([]);
    const tampered = JSON.parse(JSON.stringify(patched));
    tampered.parent.trafficPolicy = 'Allow';
    tampered.routes[0].hostnames.push('unlisted.example');
    expect(nonHarnessChanges(raw, tampered)).toEqual(['$.parent.trafficPolicy', '$.routes[0].hostnames[3]']);
  });
});

describe('the real proxy, started from the synthesised file', () => {
  test('the harness changes only binds, loopback allowance, test trust and mount roots', async () => {
    const p = await startPlatform();
    expect(nonHarnessChanges(p.synthesised, p.patched)).toEqual([]);
    expect(changedPaths(p.synthesised, p.patched).sort()).toEqual([
      '$.addressPolicy.allowCidrs[0]',
      '$.defaultTls.caPem',
      '$.externalServices[0].injectHeaders[0].valueFile',
      '$.externalServices[0].tls.caPem',
      '$.externalServices[1].tls.caPem',
      // The corp service names its own CA file: re-rooted, and given no harness trust.
      '$.externalServices[2].tls.caFile',
      '$.listeners.admin.port',
      '$.listeners.bindAddress',
      '$.listeners.http.port',
      '$.listeners.tls.port',
    ]);
    expect(p.patched.externalServices[2].tls.caPem).toBeUndefined();
    // The loaded config's policy is the synthesised one, untouched.
    expect(p.proxy.config().parent).toEqual(p.synthesised.parent);
    expect(p.proxy.config().routes).toEqual(p.synthesised.routes);
  });

  test('each declared host is reached with its Host and SNI; only the partner gets the header its Secret file holds', async () => {
    const p = await startPlatform();
    const port = p.proxy.ports.http;
    const partner = await viaProxy(port, 'api.partner.example.egress.local', '/v1/orders?id=7');
    const storage = await viaProxy(port, 'eu.storage.example.egress.local', '/bucket/object');
    const corp = await viaProxy(port, 'internal.corp.example.egress.local', '/status');
    expect([partner.status, storage.status, corp.status]).toEqual([200, 200, 200]);
    expect(partner.body).toBe('hello GET /v1/orders?id=7');

    const seen = upstream!.seen.map((s) => ({ host: s.headers.host, sni: s.servername, url: s.url, authorization: s.headers.authorization }));
    expect(seen).toEqual([
      { host: 'api.partner.example', sni: 'api.partner.example', url: '/v1/orders?id=7', authorization: TOKEN },
      { host: 'eu.storage.example', sni: 'eu.storage.example', url: '/bucket/object', authorization: undefined },
      { host: 'internal.corp.example', sni: 'internal.corp.example', url: '/status', authorization: undefined },
    ]);
    // The header value came from the file the config names, never from the config itself.
    expect(JSON.stringify(p.patched)).not.toContain(TOKEN);
    expect(p.dialer.calls).toEqual([
      { address: '127.0.0.1', port: 443 }, { address: '127.0.0.1', port: 443 }, { address: '127.0.0.1', port: 443 },
    ]);

    const labels = (hostname: string) => ({
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress',
      parent_name: 'partners',
      parent_port: '80',
      parent_section_name: '',
      route_group: 'gateway.networking.k8s.io',
      route_kind: 'HTTPRoute',
      route_namespace: 'egress',
      route_name: 'declared-hosts',
      hostname,
      http_status: '200',
      error: '',
    });
    expect(await scrapeSamples(p.proxy.ports.admin, 'outbound_http_route_request_statuses_total')).toEqual([
      { labels: labels('api.partner.example'), value: 1 },
      { labels: labels('*.storage.example'), value: 1 },
      { labels: labels('internal.corp.example'), value: 1 },
    ]);
  });

  test('an undeclared host gets 403 under Deny; nothing is resolved or dialled for it', async () => {
    const p = await startPlatform();
    const r = await viaProxy(p.proxy.ports.http, 'unlisted.example.egress.local', '/');
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-error']).toBe('EGRESS_DENIED');
    expect(p.resolver.calls).toEqual([]);
    expect(p.dialer.calls).toEqual([]);
    expect(upstream!.connections()).toBe(0);
    expect(await scrapeSamples(p.proxy.ports.admin, 'outbound_http_route_request_statuses_total')).toEqual([{
      labels: {
        parent_group: 'policy.linkerd.io',
        parent_kind: 'EgressNetwork',
        parent_namespace: 'egress',
        parent_name: 'partners',
        parent_port: '80',
        parent_section_name: '',
        route_group: '',
        route_kind: 'default',
        route_namespace: '',
        route_name: 'http-egress-deny',
        hostname: '',
        http_status: '403',
        error: '',
      },
      value: 1,
    }]);
  });

  test('the custom-CA service trusts only the CA its Secret file holds: another CA there fails verification', async () => {
    const p = await startPlatform(EnforcementMode.ENFORCE, readFileSync(testPki().untrustedCaFile, 'utf8'));
    const corp = await viaProxy(p.proxy.ports.http, 'internal.corp.example.egress.local', '/status');
    expect(corp.status).toBe(502);
    expect(upstream!.requests()).toBe(0);
    // The other services still get the harness trust, so the failure is the Secret's CA alone.
    expect((await viaProxy(p.proxy.ports.http, 'api.partner.example.egress.local', '/')).status).toBe(200);
  });

  test('the ReportOnly variant lets the undeclared host through and counts it on http-egress-deny', async () => {
    const p = await startPlatform(EnforcementMode.REPORT_ONLY);
    expect(p.synthesised.parent.mode).toBe('ReportOnly');
    const r = await viaProxy(p.proxy.ports.http, 'unlisted.example.egress.local', '/anything');
    expect(r.status).toBe(200);
    expect(upstream!.seen.map((s) => [s.headers.host, s.servername])).toEqual([['unlisted.example', 'unlisted.example']]);
    expect(await scrapeSamples(p.proxy.ports.admin, 'outbound_http_route_request_statuses_total')).toEqual([{
      labels: {
        parent_group: 'policy.linkerd.io',
        parent_kind: 'EgressNetwork',
        parent_namespace: 'egress',
        parent_name: 'partners',
        parent_port: '80',
        parent_section_name: '',
        route_group: '',
        route_kind: 'default',
        route_namespace: '',
        route_name: 'http-egress-deny',
        hostname: '',
        http_status: '200',
        error: '',
      },
      value: 1,
    }]);
    const line = p.logs.lines.find((l) => l.msg === 'request');
    expect(line).toMatchObject({ decision: 'allow', reason: 'report-only', reportOnly: true, route: 'http-egress-deny', host: 'unlisted.example', status: 200 });
  });
});

describe('a gateway without a network, Deny: only the services declared on it leave', () => {
  test('a declared host is reached on its ExternalService route; an undeclared one gets 403 and nothing is dialled', async () => {
    const chart = new Chart(Testing.app(), 'platform');
    const gateway = new EgressGateway(chart, 'Egress', { namespace: 'egress', trafficPolicy: TrafficPolicy.DENY });
    gateway.addExternalService('Github', { host: 'api.partner.example', name: 'github' });
    upstream = await startHttpsUpstream(undefined, serverCertFor(UPSTREAM_NAMES));
    sp = await startFromSynth({ configText: synthesisedConfigText(chart), names: RESOLVE, ports: { 443: upstream.port } });
    expect(sp.synthesised.parent).toMatchObject({ trafficPolicy: 'Deny', allowDeclaredServices: true });

    const declared = await viaProxy(sp.proxy.ports.http, 'api.partner.example.egress.local', '/repos');
    const undeclared = await viaProxy(sp.proxy.ports.http, 'unlisted.example.egress.local', '/');
    expect([declared.status, undeclared.status]).toEqual([200, 403]);
    expect(upstream.seen.map((s) => s.headers.host)).toEqual(['api.partner.example']);
    expect(sp.dialer.calls).toEqual([{ address: '127.0.0.1', port: 443 }]);

    const labels = (route: { group: string; kind: string; namespace: string; name: string }, hostname: string, status: string) => ({
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress',
      parent_name: sp!.synthesised.parent.name,
      parent_port: '80',
      parent_section_name: '',
      route_group: route.group,
      route_kind: route.kind,
      route_namespace: route.namespace,
      route_name: route.name,
      hostname,
      http_status: status,
      error: '',
    });
    expect(await scrapeSamples(sp.proxy.ports.admin, 'outbound_http_route_request_statuses_total')).toEqual([
      { labels: labels({ group: 'egress.cdk8s.io', kind: 'ExternalService', namespace: 'egress', name: 'github' }, 'api.partner.example', '200'), value: 1 },
      { labels: labels({ group: '', kind: 'default', namespace: '', name: 'http-egress-deny' }, '', '403'), value: 1 },
    ]);
  });
});
