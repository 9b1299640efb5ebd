/**
 * cert-manager client certificates: the Certificate object, the Secret mounted where the proxy
 * config reads it, and rotation end to end: the synthesised config runs the real proxy, the
 * Secret's files are replaced the way kubelet updates a Secret volume after cert-manager renews
 * the certificate (new key included), and the next upstream connection presents the new one.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Chart, Duration, Testing } from 'cdk8s';
import { CertificateIssuer, EgressGateway, TlsOrigination } from '../src';
import { harnessPatch, leafCert, mappingDialer, proxyConfigMap, remapPodPath } from './e2e/helpers';
import { validateObjects } from './mesh/validate';
import {
  capturingLogger, eventually, loopbackResolver, startHttpsUpstream, testPki, viaProxy, type TestUpstream,
} from './proxy/helpers';
import { errorOf } from './util/thrown';
import type { ProxyConfig } from '../src/model/proxy-config';
import { startProxy, type ProxyHandle } from '../src/proxy/server';

const SECRET_DIR = '/var/run/egress/secrets/partner-client';

function partnerChart(): { chart: Chart; gateway: EgressGateway } {
  const chart = new Chart(Testing.app(), 'test');
  const gateway = new EgressGateway(chart, 'Gateway', { name: 'egress-gateway', namespace: 'egress' });
  const cert = gateway.addClientCertificate('Partner', {
    issuer: CertificateIssuer.clusterIssuer('partner-ca'),
    secretName: 'partner-client',
    commonName: 'egress-gateway.egress',
    duration: Duration.days(30),
    renewBefore: Duration.days(10),
  });
  gateway.addExternalService('Api', {
    name: 'api',
    host: 'api.test.example',
    tls: TlsOrigination.originate({ clientCertificate: cert.certificate, clientKey: cert.privateKey, caCertificate: cert.caBundle }),
  });
  return { chart, gateway };
}

describe('CertManagerCertificate', () => {
  test('a Certificate for the issuer, its Secret mounted read-only where the config reads tls.crt, tls.key and ca.crt; validates', () => {
    const all = Testing.synth(partnerChart().chart);
    const cert = all.find((o) => o.kind === 'Certificate');
    expect(cert.apiVersion).toBe('cert-manager.io/v1');
    expect(cert.metadata).toMatchObject({ name: 'partner-client', namespace: 'egress' });
    expect(cert.spec).toEqual({
      secretName: 'partner-client',
      issuerRef: { group: 'cert-manager.io', kind: 'ClusterIssuer', name: 'partner-ca' },
      commonName: 'egress-gateway.egress',
      duration: '2592000s',
      renewBefore: '864000s',
      usages: ['client auth', 'digital signature'],
      privateKey: { algorithm: 'ECDSA', size: 256, encoding: 'PKCS8', rotationPolicy: 'Always' },
    });
    const pod = all.find((o) => o.kind === 'Deployment').spec.template.spec;
    const volume = pod.volumes.find((v: any) => v.secret?.secretName === 'partner-client');
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: volume.name, mountPath: SECRET_DIR, readOnly: true });
    const config = JSON.parse(proxyConfigMap(all).data['config.json']) as ProxyConfig;
    expect(config.externalServices[0].tls).toMatchObject({
      caFile: `${SECRET_DIR}/ca.crt`, clientCertFile: `${SECRET_DIR}/tls.crt`, clientKeyFile: `${SECRET_DIR}/tls.key`,
    });
    const v = validateObjects(all);
    expect(v.output).toMatch(new RegExp(`${all.length} passed, 0 failed`));
  });

  test('issuer kinds: Issuer, ClusterIssuer and external issuers; default names from the gateway', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gateway', { name: 'gw' });
    gw.addClientCertificate('Vault', { issuer: CertificateIssuer.issuer('vault') });
    gw.addClientCertificate('Pca', { issuer: CertificateIssuer.external('awspca.cert-manager.io', 'AWSPCAClusterIssuer', 'pca') });
    const certs = Testing.synth(chart).filter((o) => o.kind === 'Certificate');
    expect(certs.map((c) => [c.metadata.name, c.spec.commonName, c.spec.issuerRef])).toEqual([
      ['gw-vault', 'gw', { group: 'cert-manager.io', kind: 'Issuer', name: 'vault' }],
      ['gw-pca', 'gw', { group: 'awspca.cert-manager.io', kind: 'AWSPCAClusterIssuer', name: 'pca' }],
    ]);
  });

  test('throws for bad names, SANs and durations, all at once', () => {
    const gw = new EgressGateway(new Chart(Testing.app(), 'test'), 'Gateway');
    const msg = errorOf(() => gw.addClientCertificate('X', {
      issuer: CertificateIssuer.issuer('ca'), secretName: 'Bad_Name', dnsNames: ['a..b'], uris: ['not a uri'], duration: Duration.minutes(30), renewBefore: Duration.hours(2),
    }));
    expect(msg).toMatch(/CertManagerCertificate "test\/Gateway\/XCertificate": 5 problems/);
    for (const p of ['secretName', 'dnsNames[0]', 'uris[0]', 'duration', 'renewBefore']) expect(msg).toContain(`'${p}'`);
    expect(errorOf(() => CertificateIssuer.clusterIssuer('Bad'))).toMatch(/CertificateIssuer.clusterIssuer\(\): 'name' "Bad" is not a DNS subdomain \(a Kubernetes object name: [^)]*\); pass the issuer's metadata.name/);
    expect(errorOf(() => CertificateIssuer.external('nodots', 'lower', 'x'))).toMatch(/'group' "nodots".*\n.*'kind' "lower"/);
  });
});

describe('rotation: a renewed certificate is used without a restart', () => {
  let proxy: ProxyHandle | undefined;
  let upstream: TestUpstream | undefined;
  let dir: string;
  afterEach(async () => {
    await proxy?.close();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the proxy started from the synthesised config presents the renewed certificate on the next connection', async () => {
    dir = mkdtempSync(join(tmpdir(), 'egress-certmanager-'));
    const mountRoot = join(dir, 'pod');
    const configText = proxyConfigMap(Testing.synth(partnerChart().chart)).data['config.json'];
    const patched = harnessPatch(JSON.parse(configText), { mountRoot });
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(patched));

    // The Secret volume as kubelet writes it: keys are symlinks into ..data, swapped by one rename.
    const secretDir = remapPodPath(SECRET_DIR, mountRoot);
    mkdirSync(secretDir, { recursive: true });
    let generation = 0;
    const writeSecret = (pair: { cert: string; key: string }) => {
      const ts = join(secretDir, `..2026_${++generation}`);
      mkdirSync(ts);
      writeFileSync(join(ts, 'tls.crt'), pair.cert);
      writeFileSync(join(ts, 'tls.key'), pair.key);
      writeFileSync(join(ts, 'ca.crt'), testPki().caPem);
      execFileSync('ln', ['-sfn', `..2026_${generation}`, join(secretDir, '..data_tmp')]);
      execFileSync('mv', ['-Tf', join(secretDir, '..data_tmp'), join(secretDir, '..data')]);
      for (const k of ['tls.crt', 'tls.key', 'ca.crt']) execFileSync('ln', ['-sfn', `..data/${k}`, join(secretDir, k)]);
    };
    writeSecret(leafCert(['egress-gateway.egress'], { cn: 'issued-first', usage: 'clientAuth' }));

    upstream = await startHttpsUpstream((req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200).end(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? 'none'));
    }, { requestClientCert: true });
    const dialer = mappingDialer({ 443: upstream.port });
    const { logger, logs } = capturingLogger();
    proxy = await startProxy({
      configPath: configFile, resolver: loopbackResolver({ 'api.test.example': '127.0.0.1' }).resolve, dial: dialer.dial, logger, pollIntervalMs: 100,
    });
    const cn = async () => {
      const r = await viaProxy(proxy!.ports.http, 'api.test.example.egress.local', '/');
      expect(r.status).toBe(200);
      return r.body;
    };
    expect(await cn()).toBe('issued-first');

    // cert-manager renews (rotationPolicy Always: a new key too); kubelet swaps the volume.
    writeSecret(leafCert(['egress-gateway.egress'], { cn: 'renewed', usage: 'clientAuth' }));
    await eventually(() => logs.lines.some((l) => l.event === 'material-reloaded'), 5_000, 'the renewed certificate to be loaded');
    expect(await cn()).toBe('renewed');
    expect(logs.lines.filter((l) => l.event === 'started')).toHaveLength(1);
    expect(dialer.refused).toEqual([]);
  });
});
