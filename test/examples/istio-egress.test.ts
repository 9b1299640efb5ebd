// examples/istio-egress: ExternalServices rendered for Istio (ServiceEntry + DestinationRule).
import { rmSync } from 'fs';
import { expectValidManifests, synthToTmp } from './synth';
import { buildApp, NAMESPACE, PARTNER_SECRET } from '../../examples/istio-egress/main';

describe('examples/istio-egress', () => {
  const { outdir, objects } = synthToTmp('istio-egress-', (dir) => buildApp(dir));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));
  const named = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);

  test('passes validate-manifests with nothing failed', () => {
    expectValidManifests(outdir, objects);
  });

  test('a ServiceEntry per service, a DestinationRule where TLS is originated (SIMPLE, MUTUAL with the Secret), none for plaintext TCP', () => {
    expect(objects.filter((o) => o.kind === 'ServiceEntry').map((o) => o.metadata.name)).toEqual(['httpbin', 'partner', 'smtp']);
    expect(objects.filter((o) => o.kind === 'DestinationRule').map((o) => o.metadata.name)).toEqual(['httpbin', 'partner']);
    for (const o of objects.filter((x) => x.apiVersion.startsWith('networking.istio.io/'))) {
      expect(o.metadata.namespace).toBe(NAMESPACE);
      expect(o.spec.exportTo).toEqual(['.', 'apps']);
    }
    expect(named('ServiceEntry', 'httpbin').spec).toMatchObject({
      hosts: ['httpbin.org'], location: 'MESH_EXTERNAL', resolution: 'DNS', ports: [{ name: 'http-80', number: 80, protocol: 'HTTP', targetPort: 443 }],
    });
    expect(named('DestinationRule', 'httpbin').spec.trafficPolicy.portLevelSettings).toEqual([{ port: { number: 80 }, tls: { mode: 'SIMPLE', sni: 'httpbin.org' } }]);
    expect(named('DestinationRule', 'partner').spec.trafficPolicy.portLevelSettings[0].tls)
      .toEqual({ mode: 'MUTUAL', credentialName: PARTNER_SECRET, sni: 'api.partner.example' });
    expect(named('ServiceEntry', 'smtp').spec.ports).toEqual([{ name: 'tcp-25', number: 25, protocol: 'TCP' }]);
  });

  test('the gateway serves the same services (no Linkerd annotation: Istio\'s sidecar)', () => {
    const deploy = objects.find((o) => o.kind === 'Deployment');
    expect(deploy.spec.template.metadata.annotations['linkerd.io/inject']).toBeUndefined();
    const config = JSON.parse(objects.find((o) => o.kind === 'ConfigMap').data['config.json']);
    expect(config.externalServices.map((s: any) => s.host)).toEqual(['httpbin.org', 'api.partner.example', 'smtp.partner.example']);
  });
});
