// Certificate rotation without a restart: real mTLS upstream that answers with the client
// certificate's CN, client cert and key files rotated on disk the way kubelet updates a Secret
// volume (and in place), and the next upstream connection presenting the new certificate.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  capturingLogger, configMapDir, eventually, loopbackDialer, loopbackResolver, sample, scrape, startHttpsUpstream,
  testConfig, testPki, testService, viaProxy, type CapturedLogs, type TestUpstream,
} from './helpers';
import { materialFiles, materialHash } from '../../src/proxy/material-watch';
import { startProxy, type ProxyHandle } from '../../src/proxy/server';
import { leafCert, type Pair } from '../e2e/helpers';

/** A Secret volume as kubelet writes it: keys are symlinks into `..data`, swapped by one rename. */
function secretDir(): { dir: string; write(data: Record<string, string>): void } {
  const dir = mkdtempSync(join(tmpdir(), 'egress-secret-'));
  let n = 0;
  return {
    dir,
    write(data) {
      const ts = join(dir, `..2026_${++n}`);
      mkdirSync(ts);
      for (const [k, v] of Object.entries(data)) writeFileSync(join(ts, k), v);
      execFileSync('ln', ['-sfn', `..2026_${n}`, join(dir, '..data_tmp')]);
      execFileSync('mv', ['-Tf', join(dir, '..data_tmp'), join(dir, '..data')]);
      for (const k of Object.keys(data)) execFileSync('ln', ['-sfn', `..data/${k}`, join(dir, k)]);
    },
  };
}

/** The CN of the client certificate the upstream saw on this request's connection. */
const echoClientCn = (req: http.IncomingMessage, res: http.ServerResponse) => {
  const cert = (req.socket as TLSSocket).getPeerCertificate();
  res.writeHead(200, { 'content-type': 'text/plain' }).end(String(cert.subject?.CN ?? 'none'));
};

const ONE: Pair = leafCert(['client-one.test.example'], { cn: 'client-one', usage: 'clientAuth' });
const TWO: Pair = leafCert(['client-two.test.example'], { cn: 'client-two', usage: 'clientAuth' });

let proxy: ProxyHandle | undefined;
let upstream: TestUpstream | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await proxy?.close();
  await upstream?.close();
  proxy = undefined;
  upstream = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(certFile: string, keyFile: string): Promise<{ logs: CapturedLogs }> {
  upstream = await startHttpsUpstream(echoClientCn, { requestClientCert: true });
  const cm = configMapDir();
  dirs.push(cm.dir);
  cm.write(testConfig({
    externalServices: [testService('api', 'api.test.example', {
      ports: [{ port: 80, targetPort: upstream.port }],
      tls: { caFile: testPki().caFile, clientCertFile: certFile, clientKeyFile: keyFile },
    })],
  }));
  const { logger, logs } = capturingLogger();
  proxy = await startProxy({
    configPath: cm.file, resolver: loopbackResolver({ 'api.test.example': '127.0.0.1' }).resolve, dial: loopbackDialer().dial, logger, pollIntervalMs: 100,
  });
  return { logs };
}

async function clientCn(): Promise<string> {
  const r = await viaProxy(proxy!.ports.http, 'api.test.example.egress.local', '/');
  expect(r.status).toBe(200);
  return r.body;
}

const reloads = (logs: CapturedLogs, event: string) => logs.lines.filter((l) => l.event === event).length;

describe('client certificate rotation', () => {
  test('a Secret volume update (..data swap): the next upstream connection presents the new certificate', async () => {
    const secret = secretDir();
    dirs.push(secret.dir);
    secret.write({ 'tls.crt': ONE.cert, 'tls.key': ONE.key });
    const { logs } = await start(join(secret.dir, 'tls.crt'), join(secret.dir, 'tls.key'));
    expect(await clientCn()).toBe('client-one');
    expect(await clientCn()).toBe('client-one');

    secret.write({ 'tls.crt': TWO.cert, 'tls.key': TWO.key });
    await eventually(() => reloads(logs, 'material-reloaded') === 1, 5_000, 'the rotated certificate to be loaded');
    expect(await clientCn()).toBe('client-two');
    // Loading the new files is not a config change: no second reload, nothing rejected.
    expect(reloads(logs, 'config-reloaded')).toBe(0);
    expect(sample(await scrape(proxy!.ports.admin), 'egress_config_reload_failures_total', {})).toBe(0);
  });

  test('files overwritten in place are picked up too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egress-certs-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'client.crt'), ONE.cert);
    writeFileSync(join(dir, 'client.key'), ONE.key);
    const { logs } = await start(join(dir, 'client.crt'), join(dir, 'client.key'));
    expect(await clientCn()).toBe('client-one');
    writeFileSync(join(dir, 'client.key'), TWO.key);
    writeFileSync(join(dir, 'client.crt'), TWO.cert);
    await eventually(async () => reloads(logs, 'material-reloaded') >= 1 && (await clientCn()) === 'client-two', 5_000, 'client-two to be presented');
    expect(await clientCn()).toBe('client-two');
  });

  test('a certificate that does not match its key is rejected: the old one stays in use until a good pair arrives', async () => {
    const secret = secretDir();
    dirs.push(secret.dir);
    secret.write({ 'tls.crt': ONE.cert, 'tls.key': ONE.key });
    const { logs } = await start(join(secret.dir, 'tls.crt'), join(secret.dir, 'tls.key'));
    expect(await clientCn()).toBe('client-one');

    secret.write({ 'tls.crt': TWO.cert, 'tls.key': ONE.key });
    await eventually(() => reloads(logs, 'material-reload-failed') === 1, 5_000, 'the mismatched pair to be rejected');
    const failed = logs.lines.find((l) => l.event === 'material-reload-failed')!;
    expect(JSON.stringify(failed.problems)).toContain('$.externalServices[0].tls');
    expect(await clientCn()).toBe('client-one');
    expect(sample(await scrape(proxy!.ports.admin), 'egress_config_reload_failures_total', {})).toBe(1);
    // Polls keep seeing the same bad files: counted and logged once.
    await new Promise((r) => setTimeout(r, 350));
    expect(reloads(logs, 'material-reload-failed')).toBe(1);
    expect(proxy!.isReady()).toBe(true);

    secret.write({ 'tls.crt': TWO.cert, 'tls.key': TWO.key });
    await eventually(() => reloads(logs, 'material-reloaded') === 1, 5_000, 'the good pair to be loaded');
    expect(await clientCn()).toBe('client-two');
  });
});

describe('materialFiles() and materialHash()', () => {
  test('lists every CA, client certificate, key and header value file once, sorted', () => {
    const config = {
      defaultTls: { caFile: '/s/ca.crt' },
      externalServices: [
        { tls: { caFile: '/s/ca.crt', clientCertFile: '/c/tls.crt', clientKeyFile: '/c/tls.key' }, injectHeaders: [{ valueFile: '/h/token' }] },
        { tls: {}, injectHeaders: [] },
      ],
    };
    expect(materialFiles(config as never)).toEqual(['/c/tls.crt', '/c/tls.key', '/h/token', '/s/ca.crt']);
  });

  test('the hash changes with content and with a file going missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'egress-hash-'));
    dirs.push(dir);
    const f = join(dir, 'a');
    writeFileSync(f, 'one');
    const h1 = materialHash([f]);
    expect(materialHash([f])).toBe(h1);
    writeFileSync(f, 'two');
    const h2 = materialHash([f]);
    expect(h2).not.toBe(h1);
    rmSync(f);
    expect(materialHash([f])).not.toBe(h2);
  });
});
