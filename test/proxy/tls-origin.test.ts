// TLS profiles: versions (TLSAuto, legacy with SECLEVEL), modes, subjectAltNames matching; the
// real handshakes are exercised in forward-http.test.ts.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { testPki } from './helpers';
import { DEFAULT_TLS } from '../../src/model/defaults';
import { checkIdentity, compileTlsProfile, matchesSubjectAltNames, serverNameFor } from '../../src/proxy/tls-origin';

function peer(pem: string): PeerCertificate {
  const x = new X509Certificate(pem);
  return { subjectaltname: x.subjectAltName, subject: { CN: 'x' } } as unknown as PeerCertificate;
}

test('modes decide which checks run', () => {
  expect(compileTlsProfile({ ...DEFAULT_TLS, mode: 'Secured' }, 'k')).toMatchObject({ verifyChain: true, verifyName: true });
  expect(compileTlsProfile({ ...DEFAULT_TLS, mode: 'SkipSAN' }, 'k')).toMatchObject({ verifyChain: true, verifyName: false });
  expect(compileTlsProfile({ ...DEFAULT_TLS, mode: 'SkipCA' }, 'k')).toMatchObject({ verifyChain: false, verifyName: true });
  expect(compileTlsProfile({ ...DEFAULT_TLS, mode: 'SkipAll' }, 'k')).toMatchObject({ verifyChain: false, verifyName: false });
});

test('legacy versions compile (OpenSSL 3 needs SECLEVEL=0 for them)', () => {
  expect(() => compileTlsProfile({ ...DEFAULT_TLS, minVersion: 'TLS10', maxVersion: 'TLS11' }, 'k')).not.toThrow();
});

test('a missing CA file fails at compile time, not per connection', () => {
  expect(() => compileTlsProfile({ ...DEFAULT_TLS, caFile: '/nonexistent.pem' }, 'k')).toThrow(/ENOENT/);
});

test('serverName overrides the requested host for SNI', () => {
  expect(serverNameFor(compileTlsProfile(DEFAULT_TLS, 'k'), 'api.example')).toBe('api.example');
  expect(serverNameFor(compileTlsProfile({ ...DEFAULT_TLS, serverName: 'sni.example' }, 'k'), 'api.example')).toBe('sni.example');
});

test('subjectAltNames: Exact and Prefix, any one entry is enough', () => {
  const cert = peer(testPki().serverCert); // DNS:api.test.example, *.test.example, localhost, IP 127.0.0.1
  expect(matchesSubjectAltNames(cert, [{ type: 'Exact', value: 'api.test.example' }])).toBe(true);
  expect(matchesSubjectAltNames(cert, [{ type: 'Exact', value: 'api.test' }])).toBe(false);
  expect(matchesSubjectAltNames(cert, [{ type: 'Prefix', value: 'api.test' }])).toBe(true);
  expect(matchesSubjectAltNames(cert, [{ type: 'Exact', value: 'nope' }, { type: 'Exact', value: '127.0.0.1' }])).toBe(true);
});

test('checkIdentity: hostname rules by default, SAN list when given, nothing in SkipSAN', () => {
  const cert = peer(testPki().serverCert);
  const secured = compileTlsProfile(DEFAULT_TLS, 'k');
  expect(checkIdentity(secured, 'api.test.example', cert)).toBeUndefined();
  expect(checkIdentity(secured, 'evil.example', cert)).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  const sans = compileTlsProfile({ ...DEFAULT_TLS, subjectAltNames: [{ type: 'Exact', value: 'billing.example' }] }, 'k');
  expect(checkIdentity(sans, 'api.test.example', cert)).toMatchObject({ code: 'ERR_TLS_SAN_MISMATCH' });
  expect(checkIdentity(compileTlsProfile({ ...DEFAULT_TLS, mode: 'SkipSAN' }, 'k'), 'evil.example', cert)).toBeUndefined();
});
