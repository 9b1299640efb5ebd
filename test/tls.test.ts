import { DEFAULT_TLS } from '../src/model/defaults';
import {
  CertificateSource, CertificateSourceType, SubjectAltName, SubjectAltNameMatch, TlsOrigination, TlsVerification,
  TlsVerificationMode, TlsVersion,
} from '../src/tls';
import { thrownMessage } from './util/thrown';

const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n';

describe('TlsOrigination.originate()', () => {
  test('defaults render exactly the model default TLS (verified TLS 1.2+, system roots)', () => {
    const tls = TlsOrigination.originate();
    expect(tls.enabled).toBe(true);
    expect(tls.verification.mode).toBe(TlsVerificationMode.SECURED);
    expect(tls._toSpec()).toEqual({
      ...DEFAULT_TLS, caFile: undefined, caPem: undefined, clientCertFile: undefined, clientKeyFile: undefined, serverName: undefined,
    });
    expect(tls._mounts()).toEqual([]);
  });

  test('renders every option with mounted file paths, never secret material', () => {
    const tls = TlsOrigination.originate({
      minVersion: TlsVersion.TLS13,
      maxVersion: TlsVersion.TLS13,
      verification: TlsVerification.skipCa(),
      caCertificate: CertificateSource.fromConfigMap('corp-ca', 'ca.crt'),
      clientCertificate: CertificateSource.fromSecret('partner-mtls', 'tls.crt'),
      clientKey: CertificateSource.fromSecret('partner-mtls', 'tls.key'),
      serverName: 'api.partner.example',
      subjectAltNames: [SubjectAltName.exact('api.partner.example'), SubjectAltName.prefix('spiffe://partner/')],
      allowRenegotiation: true,
    });
    expect(tls._toSpec()).toEqual({
      enabled: true,
      minVersion: 'TLS13',
      maxVersion: 'TLS13',
      mode: 'SkipCA',
      caFile: '/var/run/egress/configmaps/corp-ca/ca.crt',
      caPem: undefined,
      clientCertFile: '/var/run/egress/secrets/partner-mtls/tls.crt',
      clientKeyFile: '/var/run/egress/secrets/partner-mtls/tls.key',
      serverName: 'api.partner.example',
      subjectAltNames: [{ type: 'Exact', value: 'api.partner.example' }, { type: 'Prefix', value: 'spiffe://partner/' }],
      allowRenegotiation: true,
    });
    expect(tls._mounts()).toEqual([
      { kind: 'configmap', name: 'corp-ca' },
      { kind: 'secret', name: 'partner-mtls' },
      { kind: 'secret', name: 'partner-mtls' },
    ]);
  });

  test('an inline CA goes into caPem and needs no mount', () => {
    const tls = TlsOrigination.originate({ caCertificate: CertificateSource.fromInline(CA_PEM) });
    expect(tls._toSpec().caPem).toBe(CA_PEM);
    expect(tls._toSpec().caFile).toBeUndefined();
    expect(tls._mounts()).toEqual([]);
  });

  test('TLSAuto as maximum accepts TLS13 as minimum', () => {
    expect(TlsOrigination.originate({ minVersion: TlsVersion.TLS13 }).maxVersion).toBe(TlsVersion.AUTO);
  });

  test('throws when minVersion is above maxVersion', () => {
    expect(() => TlsOrigination.originate({ minVersion: TlsVersion.TLS13, maxVersion: TlsVersion.TLS12 }))
      .toThrow(/TlsOrigination.originate\(\): 'minVersion' "TLS13" is above 'maxVersion' "TLS12"/);
  });

  test('throws when TLSAuto as minimum (TLS 1.2) is above a TLS11 maximum', () => {
    expect(() => TlsOrigination.originate({ minVersion: TlsVersion.AUTO, maxVersion: TlsVersion.TLS11 })).toThrow(/is above 'maxVersion' "TLS11"/);
  });

  test('throws when clientCertificate comes without clientKey', () => {
    expect(() => TlsOrigination.originate({ clientCertificate: CertificateSource.fromSecret('m', 'tls.crt') }))
      .toThrow(/'clientKey' \(unset\) is required when 'clientCertificate' is set/);
  });

  test('throws when clientKey comes without clientCertificate', () => {
    expect(() => TlsOrigination.originate({ clientKey: CertificateSource.fromSecret('m', 'tls.key') }))
      .toThrow(/'clientCertificate' \(unset\) is required when 'clientKey' is set/);
  });

  test('throws when the client key is not from a Secret', () => {
    expect(() => TlsOrigination.originate({
      clientCertificate: CertificateSource.fromSecret('m', 'tls.crt'),
      clientKey: CertificateSource.fromConfigMap('m', 'tls.key'),
    })).toThrow(/'clientKey' "ConfigMap" is not a Secret; private keys are read only from Secrets; use CertificateSource.fromSecret/);
  });

  test('throws when the client certificate is inline', () => {
    expect(() => TlsOrigination.originate({
      clientCertificate: CertificateSource.fromInline(CA_PEM),
      clientKey: CertificateSource.fromSecret('m', 'tls.key'),
    })).toThrow(/'clientCertificate' "Inline" is not supported/);
  });

  test('throws when serverName is not a DNS name, with a suggestion', () => {
    expect(() => TlsOrigination.originate({ serverName: 'API.Partner.example.' }))
      .toThrow(/'serverName' "API.Partner.example." is not a valid DNS name \(trailing dot\); did you mean "api.partner.example"\?/);
  });

  test('throws when subjectAltNames would be ignored by SkipSAN', () => {
    expect(() => TlsOrigination.originate({ verification: TlsVerification.skipSan(), subjectAltNames: [SubjectAltName.exact('a.example')] }))
      .toThrow(/would be ignored because verification is SkipSAN/);
  });

  test('throws when several options are wrong, listing all of them in one error', () => {
    const message = thrownMessage(() => TlsOrigination.originate({
      minVersion: TlsVersion.TLS13, maxVersion: TlsVersion.TLS10, serverName: 'a..b', clientKey: CertificateSource.fromSecret('k', 'tls.key'),
    }));
    expect(message).toMatch(/^TlsOrigination.originate\(\): 3 problems:/);
    expect(message).toContain("'minVersion'");
    expect(message).toContain("'serverName' \"a..b\" is not a valid DNS name (empty label); did you mean \"a.b\"?");
    expect(message).toContain("'clientCertificate'");
  });
});

describe('TlsOrigination.disabled()', () => {
  test('renders enabled: false with nothing to mount', () => {
    const tls = TlsOrigination.disabled();
    expect(tls.enabled).toBe(false);
    expect(tls._toSpec().enabled).toBe(false);
    expect(tls._mounts()).toEqual([]);
  });
});

describe('TlsVerification', () => {
  test.each([
    [TlsVerification.secured(), 'Secured'],
    [TlsVerification.skipSan(), 'SkipSAN'],
    [TlsVerification.skipCa(), 'SkipCA'],
    [TlsVerification.skipAll(), 'SkipAll'],
  ])('%# renders Kuma\'s spelling %s', (verification, mode) => {
    expect(TlsOrigination.originate({ verification })._toSpec().mode).toBe(mode);
  });
});

describe('TlsVersion', () => {
  test('uses Kuma\'s spelling', () => {
    expect(Object.values(TlsVersion).sort()).toEqual(['TLS10', 'TLS11', 'TLS12', 'TLS13', 'TLSAuto']);
  });
});

describe('CertificateSource', () => {
  test('fromSecret and fromConfigMap keep name and key', () => {
    const s = CertificateSource.fromSecret('my-secret', 'ca.crt');
    expect([s.type, s.name, s.key, s.pem]).toEqual([CertificateSourceType.SECRET, 'my-secret', 'ca.crt', undefined]);
    expect(s._file()).toBe('/var/run/egress/secrets/my-secret/ca.crt');
    const c = CertificateSource.fromConfigMap('trust.bundle', 'bundle.pem');
    expect(c._file()).toBe('/var/run/egress/configmaps/trust.bundle/bundle.pem');
  });

  test('throws when the Secret name is not a Kubernetes name', () => {
    expect(() => CertificateSource.fromSecret('My_Secret', 'ca.crt'))
      .toThrow(/CertificateSource.fromSecret\(\): 'secretName' "My_Secret" is not a DNS subdomain \(a Kubernetes object name/);
  });

  test('throws when the data key has a slash', () => {
    expect(() => CertificateSource.fromConfigMap('ca', 'certs/ca.crt')).toThrow(/'key' "certs\/ca.crt" is not a valid data key/);
  });

  test('throws when inline text is not a PEM certificate', () => {
    expect(() => CertificateSource.fromInline('hello')).toThrow(/'pem' "hello..." is not PEM certificate text/);
  });

  test('throws when inline text holds a private key', () => {
    const pem = `${CA_PEM}-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----\n`;
    expect(() => CertificateSource.fromInline(pem)).toThrow(/holds a private key; private keys never go inline.*CertificateSource.fromSecret/);
  });
});

describe('SubjectAltName', () => {
  test('exact and prefix', () => {
    expect(SubjectAltName.exact('a.example').match).toBe(SubjectAltNameMatch.EXACT);
    expect(SubjectAltName.prefix('spiffe://x/').match).toBe(SubjectAltNameMatch.PREFIX);
  });

  test('throws when the value is empty', () => {
    expect(() => SubjectAltName.exact('')).toThrow(/SubjectAltName.exact\(\): 'value' "" must be a non-empty name/);
  });
});
