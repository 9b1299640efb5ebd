// examples/linkerd1-node-proxy (seed 002): the node-local proxy's manifests, and the HTTP to HTTPS
// upgrade end to end: the synthesised ConfigMap runs the real proxy, curl uses it as its
// http_proxy, and a loopback HTTPS stand-in for world.example.com sees mutual TLS with the right SNI.
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { expectValidManifests, synthToTmp } from './synth';
import {
  APP_NAMESPACE, buildApp, CERTIFICATES_SECRET, ClientPath, GATEWAY_NAMESPACE, HOST_PORT, WORLD_HOST,
} from '../../examples/linkerd1-node-proxy/main';
import type { ProxyConfig } from '../../src/model/proxy-config';
import {
  curl, nonHarnessChanges, proxyConfigMap, readManifests, serverCertFor, startFromSynth, type SynthProxy,
} from '../e2e/helpers';
import { startHttpsUpstream, testPki, type TestUpstream } from '../proxy/helpers';
import { NetworkPolicyEvaluator, PodInfo } from '../util/netpol-eval';

const SECRET_DIR = `/var/run/egress/secrets/${CERTIFICATES_SECRET}`;

function find(objects: any[], kind: string, name: string): any {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  expect(found).toHaveLength(1);
  return found[0];
}

describe.each<ClientPath>(['service', 'node-ip'])('examples/linkerd1-node-proxy (%s)', (path) => {
  let outdir: string;
  let objects: any[];
  beforeAll(() => {
    ({ outdir, objects } = synthToTmp('linkerd1-node-proxy-', (dir) => buildApp(dir, path)));
  });
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('passes validate-manifests with nothing failed', () => {
    expectValidManifests(outdir, objects);
  });

  test('one proxy per node: a DaemonSet, no Deployment or PodDisruptionBudget for it, a node-local Service', () => {
    expect(objects.filter((o) => o.metadata.namespace === GATEWAY_NAMESPACE).map((o) => o.kind).sort()).toEqual([
      'ConfigMap', 'DaemonSet', 'EgressNetwork', 'HTTPRoute', 'NetworkPolicy', 'Service', 'ServiceAccount',
    ]);
    expect(objects.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name)).toEqual(['hello']);
    expect(objects.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
    const svc = find(objects, 'Service', 'node-proxy');
    expect(svc.spec.internalTrafficPolicy).toBe('Local');
    const ds = find(objects, 'DaemonSet', 'node-proxy');
    expect(svc.spec.selector).toEqual(ds.spec.selector.matchLabels);
    // No Linkerd 2 sidecar: the hop to the proxy stays on the node.
    expect(ds.spec.template.metadata.annotations['linkerd.io/inject']).toBeUndefined();
    const http = ds.spec.template.spec.containers[0].ports.find((p: any) => p.name === 'http');
    expect(http.hostPort).toBe(path === 'node-ip' ? HOST_PORT : undefined);
  });

  test('the certificates Secret is mounted read-only where the config reads the CA, certificate and key', () => {
    const pod = find(objects, 'DaemonSet', 'node-proxy').spec.template.spec;
    const volume = pod.volumes.find((v: any) => v.secret?.secretName === CERTIFICATES_SECRET);
    const mount = pod.containers[0].volumeMounts.find((m: any) => m.name === volume.name);
    expect(mount).toEqual({ name: volume.name, mountPath: SECRET_DIR, readOnly: true });
    const config = JSON.parse(proxyConfigMap(objects).data['config.json']) as ProxyConfig;
    expect(config.listeners.http.forwardProxy).toBe(true);
    expect(config.parent.trafficPolicy).toBe('Deny');
    const world = config.externalServices.find((s) => s.host === WORLD_HOST)!;
    expect(world.ports).toEqual([{ port: 80, protocol: 'http', targetPort: 443 }]);
    expect(world.tls).toMatchObject({
      enabled: true,
      mode: 'Secured',
      caFile: `${SECRET_DIR}/cacertificate.pem`,
      clientCertFile: `${SECRET_DIR}/certificate.pem`,
      clientKeyFile: `${SECRET_DIR}/key.pem`,
    });
  });

  test('hello\'s http_proxy names its node\'s proxy', () => {
    const hello = find(objects, 'Deployment', 'hello');
    expect(hello.metadata.namespace).toBe(APP_NAMESPACE);
    const env: Array<{ name: string; value?: string; valueFrom?: any }> = hello.spec.template.spec.containers[0].env;
    const value = (name: string) => env.find((e) => e.name === name)?.value;
    if (path === 'node-ip') {
      expect(env[0]).toEqual({ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
      expect(value('http_proxy')).toBe(`http://$(NODE_IP):${HOST_PORT}`);
    } else {
      expect(env.find((e) => e.name === 'NODE_IP')).toBeUndefined();
      expect(value('http_proxy')).toBe(`http://node-proxy.${GATEWAY_NAMESPACE}.svc.cluster.local:80`);
    }
    expect(value('HTTP_PROXY')).toBe(value('http_proxy'));
    expect(value('no_proxy')).toContain('.svc');
    expect(hello.spec.template.metadata.labels['egress.cdk8s.io/gateway']).toBe(`node-proxy.${GATEWAY_NAMESPACE}`);
  });

  test('hello reaches DNS and the proxy pods, and nothing outside the cluster directly', () => {
    const evaluator = new NetworkPolicyEvaluator(objects, ['egress', 'hello', 'kube-system', 'monitoring', 'default'].map((name) => ({ name })));
    const hello: PodInfo = { namespace: APP_NAMESPACE, labels: find(objects, 'Deployment', 'hello').spec.template.metadata.labels, ip: '10.244.2.2' };
    const proxy: PodInfo = { namespace: GATEWAY_NAMESPACE, labels: find(objects, 'DaemonSet', 'node-proxy').spec.template.metadata.labels, ip: '10.244.2.9' };
    const coredns: PodInfo = { namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ip: '10.244.0.3' };
    const stranger: PodInfo = { namespace: 'default', labels: { app: 'web' }, ip: '10.244.3.3' };
    const flows: Array<[string, PodInfo, { pod: PodInfo } | { ip: string }, number, 'TCP' | 'UDP', boolean]> = [
      ['hello -> proxy', hello, { pod: proxy }, 8080, 'TCP', true],
      ['hello -> dns', hello, { pod: coredns }, 53, 'UDP', true],
      ['hello -> world directly (https)', hello, { ip: '93.184.215.14' }, 443, 'TCP', false],
      ['hello -> world directly (http)', hello, { ip: '93.184.215.14' }, 80, 'TCP', false],
      ['proxy -> world', proxy, { ip: '93.184.215.14' }, 443, 'TCP', true],
      ['proxy -> pod range', proxy, { pod: stranger }, 443, 'TCP', false],
      ['stranger -> proxy', stranger, { pod: proxy }, 8080, 'TCP', false],
    ];
    for (const [name, from, to, port, protocol, expected] of flows) {
      expect([name, evaluator.allowed({ from: { pod: from }, to, port, protocol })]).toEqual([name, expected]);
    }
  });
});

describe('examples/linkerd1-node-proxy through the real proxy', () => {
  let world: TestUpstream;
  let sp: SynthProxy | undefined;
  let outdir: string;

  beforeEach(async () => {
    outdir = mkdtempSync(join(tmpdir(), 'linkerd1-node-proxy-e2e-'));
    // world.example.com's stand-in: HTTPS only, and it insists on a client certificate signed by the CA.
    world = await startHttpsUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`world (${req.method} ${req.url})`);
    }, { ...serverCertFor([WORLD_HOST]), requestClientCert: true });
    buildApp(outdir, 'node-ip').synth();
    const pki = testPki();
    sp = await startFromSynth({
      configText: proxyConfigMap(readManifests(outdir)).data['config.json'],
      names: { [WORLD_HOST]: '127.0.0.1', 'other.example.com': '127.0.0.1' },
      ports: { 443: world.port },
      // The Secret's three keys, as the proxy pods see them.
      files: {
        [`${SECRET_DIR}/cacertificate.pem`]: pki.caPem,
        [`${SECRET_DIR}/certificate.pem`]: readFileSync(pki.clientCertFile, 'utf8'),
        [`${SECRET_DIR}/key.pem`]: readFileSync(pki.clientKeyFile, 'utf8'),
      },
    });
  });

  afterEach(async () => {
    // The dialer throws for anything outside loopback; it must never have been asked.
    if (sp) expect(sp.dialer.refused).toEqual([]);
    await sp?.close();
    await world.close();
    rmSync(outdir, { recursive: true, force: true });
    sp = undefined;
  });

  /**
   * curl with the proxy as its http_proxy. The --resolve entries are a safety net: were curl ever
   * to skip the proxy, it would hit loopback, never the real host.
   */
  function viaHttpProxy(p: SynthProxy, url: string) {
    const host = new URL(url).hostname;
    return curl([
      '-x', `http://127.0.0.1:${p.proxy.ports.http}`, '--resolve', `${host}:80:127.0.0.1`, '--resolve', `${host}:443:127.0.0.1`,
      '--cacert', testPki().caFile, '-w', '\n%{http_code}', url,
    ]);
  }

  test('only the documented harness patches were applied', () => {
    expect(nonHarnessChanges(sp!.synthesised, sp!.patched)).toEqual([]);
    expect(sp!.patched.listeners.http.forwardProxy).toBe(true);
    expect(sp!.patched.parent.trafficPolicy).toBe('Deny');
  });

  test('http://world.example.com/ through http_proxy is upgraded to mutual TLS with SNI world.example.com', async () => {
    const r = await viaHttpProxy(sp!, `http://${WORLD_HOST}/greeting?lang=en`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('world (GET /greeting?lang=en)\n200');
    // The stand-in speaks only TLS and required the mesh certificate: the handshake completing
    // (servernames records only completed ones) is the upgrade, with the CA from the "Secret".
    expect(world.servernames).toEqual([WORLD_HOST]);
    expect(world.seen).toHaveLength(1);
    expect(world.seen[0]).toMatchObject({ method: 'GET', url: '/greeting?lang=en', servername: WORLD_HOST });
    expect(world.seen[0].headers.host).toBe(WORLD_HOST);
    // Dialled at 443 (the TLS port), not the 80 the client addressed.
    expect(sp!.dialer.calls).toEqual([{ address: '127.0.0.1', port: 443 }]);
  });

  test('an undeclared host is refused with 403 and never dialled, plain or tunnelled', async () => {
    const plain = await viaHttpProxy(sp!, 'http://other.example.com/');
    expect(plain.code).toBe(0);
    expect(plain.stdout.split('\n').pop()).toBe('403');
    // CONNECT for https://: the proxy answers 403 and curl gives up before any TLS.
    const tunnelled = await viaHttpProxy(sp!, 'https://other.example.com/');
    expect(tunnelled.code).toBe(56);
    expect(tunnelled.stderr).toMatch(/CONNECT.*403/);
    expect(sp!.dialer.calls).toEqual([]);
    expect(world.connections()).toBe(0);
  });

  /** Restart the proxy from the same synthesised config, with other contents in the Secret's files. */
  async function restartWith(files: Record<string, string>): Promise<SynthProxy> {
    const configText = JSON.stringify(sp!.synthesised);
    await sp!.close();
    sp = undefined;
    sp = await startFromSynth({ configText, names: { [WORLD_HOST]: '127.0.0.1' }, ports: { 443: world.port }, files });
    return sp;
  }

  test('a CA in the Secret that did not sign world\'s certificate gets 502, and nothing reaches world', async () => {
    const pki = testPki();
    const p = await restartWith({
      [`${SECRET_DIR}/cacertificate.pem`]: readFileSync(pki.untrustedCaFile, 'utf8'),
      [`${SECRET_DIR}/certificate.pem`]: readFileSync(pki.clientCertFile, 'utf8'),
      [`${SECRET_DIR}/key.pem`]: readFileSync(pki.clientKeyFile, 'utf8'),
    });
    const r = await viaHttpProxy(p, `http://${WORLD_HOST}/`);
    expect(r.stdout.split('\n').pop()).toBe('502');
    // Never downgraded: no request reached world, over TLS or otherwise.
    expect(world.requests()).toBe(0);
    expect(world.servernames).toEqual([]);
  });

  test('throws when the Secret\'s key does not match its certificate: the proxy refuses to start', async () => {
    const pki = testPki();
    await expect(restartWith({
      [`${SECRET_DIR}/cacertificate.pem`]: pki.caPem,
      [`${SECRET_DIR}/certificate.pem`]: readFileSync(pki.clientCertFile, 'utf8'),
      [`${SECRET_DIR}/key.pem`]: pki.wrongNameKey,
    })).rejects.toThrow(/\$\.externalServices\[0\]\.tls: cannot load TLS material: ERR_OSSL_X509_KEY_VALUES_MISMATCH/);
  });
});
