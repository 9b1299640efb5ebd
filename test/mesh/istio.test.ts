import { PLAINTEXT, serviceSpec } from './spec-fixture';
import { validateObjects } from './validate';
import { IstioRenderOptions, renderIstio } from '../../src/mesh/istio';
import type { MeshRenderInput, TlsSourceRefs } from '../../src/mesh/render-input';
import { DEFAULT_RETRY } from '../../src/model/defaults';
import { expectThrownMessage } from '../util/thrown';

const OPTIONS: IstioRenderOptions = { name: 'httpbin', namespace: 'apps' };
const render = (input: MeshRenderInput, options: Partial<IstioRenderOptions> = {}) => renderIstio(input, { ...OPTIONS, ...options });
const tlsOf = (input: MeshRenderInput) => {
  const dr = render(input).destinationRule;
  expect(dr).toBeDefined();
  return dr!.spec.trafficPolicy.portLevelSettings[0].tls;
};
const secretSources = (keys: [string, string, string], name = 'httpbin-client'): TlsSourceRefs => ({
  ca: { kind: 'Secret', name, key: keys[0] },
  clientCert: { kind: 'Secret', name, key: keys[1] },
  clientKey: { kind: 'Secret', name, key: keys[2] },
});

describe('renderIstio', () => {
  test('TLS origination: ServiceEntry on the client port with targetPort, DestinationRule SIMPLE with the host as SNI', () => {
    expect(render({ service: serviceSpec() })).toEqual({
      serviceEntry: {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: 'httpbin', namespace: 'apps' },
        spec: {
          hosts: ['httpbin.org'],
          location: 'MESH_EXTERNAL',
          resolution: 'DNS',
          ports: [{ number: 80, name: 'http-80', protocol: 'HTTP', targetPort: 443 }],
        },
      },
      destinationRule: {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'httpbin', namespace: 'apps' },
        spec: {
          host: 'httpbin.org',
          trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, tls: { mode: 'SIMPLE', sni: 'httpbin.org' } }] },
        },
      },
    });
  });

  test('plaintext renders no DestinationRule and no targetPort when ports match', () => {
    const out = render({ service: serviceSpec({ ports: [{ port: 80, protocol: 'http', targetPort: 80 }] }, PLAINTEXT) });
    expect(out.destinationRule).toBeUndefined();
    expect(out.serviceEntry.spec.ports).toEqual([{ number: 80, name: 'http-80', protocol: 'HTTP' }]);
  });

  test.each([['http', 'HTTP'], ['http2', 'HTTP2'], ['grpc', 'GRPC'], ['tcp', 'TCP']] as const)('protocol %s maps to %s', (protocol, istio) => {
    const out = render({ service: serviceSpec({ ports: [{ port: 9000, protocol, targetPort: 9000 }] }, PLAINTEXT) });
    expect(out.serviceEntry.spec.ports[0].protocol).toBe(istio);
  });

  test('every port gets its own port-level TLS setting', () => {
    const out = render({ service: serviceSpec({ ports: [{ port: 80, protocol: 'http', targetPort: 443 }, { port: 9001, protocol: 'grpc', targetPort: 9001 }] }) });
    expect(out.destinationRule!.spec.trafficPolicy.portLevelSettings.map((p) => p.port.number)).toEqual([80, 9001]);
  });

  test('serverName becomes sni; Exact SANs become subjectAltNames', () => {
    const tls = tlsOf({ service: serviceSpec({}, { serverName: 'origin.httpbin.org', subjectAltNames: [{ type: 'Exact', value: 'httpbin.org' }, { type: 'Exact', value: 'www.httpbin.org' }] }) });
    expect(tls).toEqual({ mode: 'SIMPLE', sni: 'origin.httpbin.org', subjectAltNames: ['httpbin.org', 'www.httpbin.org'] });
  });

  test('SkipAll becomes insecureSkipVerify; Secured sets nothing', () => {
    expect(tlsOf({ service: serviceSpec({}, { mode: 'SkipAll' }) }).insecureSkipVerify).toBe(true);
    expect(tlsOf({ service: serviceSpec({}, { mode: 'Secured' }) })).not.toHaveProperty('insecureSkipVerify');
  });

  test('client certificate, key and CA in one Secret: MUTUAL with credentialName (both key layouts)', () => {
    expect(tlsOf({ service: serviceSpec(), tlsSources: secretSources(['ca.crt', 'tls.crt', 'tls.key']) }))
      .toEqual({ mode: 'MUTUAL', sni: 'httpbin.org', credentialName: 'httpbin-client' });
    expect(tlsOf({ service: serviceSpec(), tlsSources: secretSources(['cacert', 'cert', 'key']) }).credentialName).toBe('httpbin-client');
  });

  test('a CA alone from a Secret: SIMPLE with credentialName', () => {
    expect(tlsOf({ service: serviceSpec(), tlsSources: { ca: { kind: 'Secret', name: 'private-ca', key: 'ca.crt' } } }))
      .toEqual({ mode: 'SIMPLE', sni: 'httpbin.org', credentialName: 'private-ca' });
  });

  test('IP endpoints resolve STATIC, named ones DNS; endpoint ports apply to every port name', () => {
    const ips = render({ service: serviceSpec({ endpoints: [{ address: '203.0.113.1', priority: 0 }, { address: '2001:db8::1', port: 8443, priority: 0 }] }) });
    expect(ips.serviceEntry.spec.resolution).toBe('STATIC');
    expect(ips.serviceEntry.spec.endpoints).toEqual([{ address: '203.0.113.1' }, { address: '2001:db8::1', ports: { 'http-80': 8443 } }]);
    const named = render({ service: serviceSpec({ endpoints: [{ address: 'eu.httpbin.org', priority: 0 }] }) });
    expect(named.serviceEntry.spec.resolution).toBe('DNS');
  });

  test('a wildcard host resolves NONE, with no SNI so Istio derives it per request', () => {
    const out = render({ service: serviceSpec({ host: '*.httpbin.org', ports: [{ port: 443, protocol: 'http', targetPort: 443 }] }) });
    expect(out.serviceEntry.spec.resolution).toBe('NONE');
    expect(out.serviceEntry.spec).not.toHaveProperty('endpoints');
    expect(out.destinationRule!.spec.trafficPolicy.portLevelSettings[0].tls).toEqual({ mode: 'SIMPLE' });
  });

  test('exportTo goes on both objects', () => {
    const out = render({ service: serviceSpec() }, { exportTo: ['.', 'payments'] });
    expect(out.serviceEntry.spec.exportTo).toEqual(['.', 'payments']);
    expect(out.destinationRule!.spec.exportTo).toEqual(['.', 'payments']);
  });

  describe('throws', () => {
    const throwsWith = (input: MeshRenderInput, ...parts: (string | RegExp)[]) => {
      expectThrownMessage(() => render(input), /Istio/, ...parts);
    };

    test.each(['TLS10', 'TLS11', 'TLS13'] as const)('throws when the minimum version is %s', (v) => {
      throwsWith({ service: serviceSpec({}, { minVersion: v }) }, `'tls.minVersion' "${v}"`, /no TLS version setting/);
    });
    test('throws when the maximum version is pinned', () => {
      throwsWith({ service: serviceSpec({}, { maxVersion: 'TLS12' }) }, '\'tls.maxVersion\' "TLS12"');
    });
    test.each(['SkipCA', 'SkipSAN'] as const)('throws when verification is %s', (mode) => {
      throwsWith({ service: serviceSpec({}, { mode }) }, `'tls.verification' "${mode}"`, /insecureSkipVerify/);
    });
    test('throws when renegotiation is allowed', () => {
      throwsWith({ service: serviceSpec({}, { allowRenegotiation: true }) }, '\'tls.allowRenegotiation\' true');
    });
    test('throws when a SAN is a Prefix', () => {
      throwsWith({ service: serviceSpec({}, { subjectAltNames: [{ type: 'Prefix', value: 'httpbin' }] }) }, '\'tls.subjectAltNames[0]\' "Prefix httpbin"', /exactly/);
    });
    test('throws when the CA is inline or from a ConfigMap', () => {
      throwsWith({ service: serviceSpec(), tlsSources: { ca: { kind: 'Inline', pem: 'x' } } }, '\'tls.caCertificate\' "inline PEM"');
      throwsWith({ service: serviceSpec(), tlsSources: { ca: { kind: 'ConfigMap', name: 'ca', key: 'ca.crt' } } }, '\'tls.caCertificate\' "ConfigMap ca key ca.crt"');
    });
    test('throws when TLS material is spread over several Secrets', () => {
      throwsWith({ service: serviceSpec(), tlsSources: { ...secretSources(['ca.crt', 'tls.crt', 'tls.key']), ca: { kind: 'Secret', name: 'other', key: 'ca.crt' } } },
        '\'tls\'', /several Secrets/);
    });
    test('throws when Secret keys follow neither Istio layout', () => {
      throwsWith({ service: serviceSpec(), tlsSources: secretSources(['ca.crt', 'cert', 'tls.key']) }, /keys Istio does not read/);
    });
    test('throws when endpoint priorities differ', () => {
      throwsWith({ service: serviceSpec({ endpoints: [{ address: 'a.httpbin.org', priority: 0 }, { address: 'b.httpbin.org', priority: 1 }] }) }, '\'endpoints[].priority\' [0,1]');
    });
    test('throws when a wildcard host has endpoints or remaps its port', () => {
      throwsWith({ service: serviceSpec({ host: '*.httpbin.org', endpoints: [{ address: '203.0.113.1', priority: 0 }] }) }, '\'endpoints\'', '\'ports[0].targetPort\' 443');
    });
    test('throws when a wildcard TCP port originates TLS without a serverName', () => {
      throwsWith({ service: serviceSpec({ host: '*.tcpbin.com', ports: [{ port: 4243, protocol: 'tcp', targetPort: 4243 }] }) }, '\'ports\' [4243]', /SNI/);
    });
    test('throws when retries are set', () => {
      throwsWith({ service: serviceSpec({ retry: DEFAULT_RETRY }) }, '\'retry\'');
    });
  });

  test('the rendered objects pass the strict validator', () => {
    const a = render({
      service: serviceSpec({
        ports: [{ port: 80, protocol: 'http', targetPort: 443 }, { port: 4244, protocol: 'tcp', targetPort: 4244 }],
        endpoints: [{ address: '203.0.113.1', port: 8443, priority: 0 }],
      }, { mode: 'SkipAll', serverName: 'httpbin.org' }),
      tlsSources: secretSources(['ca.crt', 'tls.crt', 'tls.key']),
    }, { exportTo: ['.'] });
    const b = render({ service: serviceSpec({ name: 'wild', host: '*.httpbin.org', ports: [{ port: 8080, protocol: 'http2', targetPort: 8080 }] }, PLAINTEXT) }, { name: 'wild' });
    const result = validateObjects([a.serviceEntry, a.destinationRule!, b.serviceEntry]);
    expect(result.messages).toEqual([]);
    expect(result).toMatchObject({ passed: 3, failed: 0 });
  });
});

test('throws when an Istio object breaks its schema: the validator names object, field and rule', () => {
  const { serviceEntry } = renderIstio({ service: serviceSpec() }, OPTIONS);
  const result = validateObjects([{ ...serviceEntry, spec: { ...serviceEntry.spec, resolution: 'LOGICAL' } }]);
  expect(result.failed).toBe(1);
  expect(result.messages).toEqual([expect.stringMatching(/^ServiceEntry \S+ \(objects\.yaml#0\) \/spec\/resolution: must be one of "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS" \[enum\]$/)]);
});
