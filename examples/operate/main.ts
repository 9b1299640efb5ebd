// Operating an egress gateway: Prometheus Operator scraping (ServiceMonitor) and alerts
// (PrometheusRule), the Grafana dashboard for Grafana's sidecar, a HorizontalPodAutoscaler with a
// PodDisruptionBudget sized against its minimum, and a cert-manager client certificate for mutual
// TLS with a partner API, renewed without restarts. Needs the Prometheus Operator and cert-manager CRDs.
// Run: npx ts-node --project test/tsconfig.json examples/operate/main.ts [outdir]
import { App, Chart, Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { CertificateIssuer, EgressGateway, TlsOrigination, TrafficPolicy } from '../../src';

export const NAMESPACE = 'egress';
export const MONITORING_NAMESPACE = 'monitoring';
/** kube-prometheus-stack selects monitors and rules by its Helm release label. */
export const RELEASE_LABELS = { release: 'kube-prometheus-stack' };
export const PARTNER_HOST = 'api.partner.example';

/** Builds the app into `outdir`. */
export function buildApp(outdir: string): App {
  const app = new App({ outdir });
  const chart = new Chart(app, 'egress');
  const gateway = new EgressGateway(chart, 'Gateway', {
    namespace: NAMESPACE,
    trafficPolicy: TrafficPolicy.DENY,
    metricsMonitor: { labels: RELEASE_LABELS, interval: Duration.seconds(15) },
    alerts: { labels: RELEASE_LABELS, alertLabels: { team: 'platform' }, runbookUrl: 'https://runbooks.example.com/egress-gateway' },
    dashboard: { namespace: MONITORING_NAMESPACE, folder: 'Egress' },
    autoscaling: { minReplicas: 3, maxReplicas: 12 },
    minAvailable: 2,
  });

  // The client certificate the partner expects, issued by the team's private CA through cert-manager.
  const cert = gateway.addClientCertificate('Partner', {
    issuer: CertificateIssuer.clusterIssuer('partner-client-ca'),
    secretName: 'partner-client',
    commonName: 'egress-gateway.example.com',
    duration: Duration.days(30),
  });
  gateway.addExternalService('Partner', {
    name: 'partner',
    host: PARTNER_HOST,
    tls: TlsOrigination.originate({ clientCertificate: cert.certificate, clientKey: cert.privateKey }),
  });
  gateway.addExternalService('GitHub', { name: 'github', host: 'api.github.com' });

  // Locked down: clients from the apps namespace; the admin port only from Prometheus.
  gateway.lockDown({ metricsScrapers: kplus.Namespaces.select(chart, 'Monitoring', { names: [MONITORING_NAMESPACE] }) });
  gateway.allowFrom(kplus.Namespaces.select(chart, 'Apps', { names: ['apps'] }));
  return app;
}

if (require.main === module) {
  buildApp(process.argv[2] ?? 'dist/operate').synth();
}
