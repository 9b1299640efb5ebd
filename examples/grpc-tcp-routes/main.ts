// A GRPCRoute and a TCPRoute on a locked-down EgressNetwork, enforced by an egress gateway: only
// the grpcbin Echo service's methods and the partner database's port leave the cluster.
// Run: npx ts-node --project test/tsconfig.json examples/grpc-tcp-routes/main.ts [outdir]
import { App, Chart } from 'cdk8s';
import {
  EgressGateway, EgressNetwork, ExternalServiceProtocol, GrpcMethodMatch, GrpcRetryStatus, RouteBackend, TlsOrigination, TrafficPolicy,
} from '../../src';

export const NAMESPACE = 'egress';
export const GRPC_HOST = 'grpcbin.test.k6.io';
export const DB_HOST = 'db.partner.example';

/** Builds the app into `outdir`. */
export function buildApp(outdir: string): App {
  const app = new App({ outdir });
  const chart = new Chart(app, 'egress', { namespace: NAMESPACE });
  const network = new EgressNetwork(chart, 'Network', { name: 'egress', trafficPolicy: TrafficPolicy.DENY });
  const gateway = new EgressGateway(chart, 'Gateway', { namespace: NAMESPACE, network });

  // gRPC over verified TLS to grpcbin: clients call grpcbin.test.k6.io.egress.local:9001 in plaintext.
  gateway.addExternalService('Grpcbin', {
    name: 'grpcbin', host: GRPC_HOST, tls: TlsOrigination.originate(), ports: [{ port: 9001, protocol: ExternalServiceProtocol.GRPC, targetPort: 9001 }],
  });
  // Only the hello service's methods, retried on UNAVAILABLE.
  network.addGrpcRoute('Hello', {
    name: 'grpcbin-hello',
    port: 9001,
    hostnames: [GRPC_HOST],
    rules: [{ matches: [{ method: GrpcMethodMatch.exact({ service: 'hello.HelloService' }) }] }],
    retry: { on: [GrpcRetryStatus.UNAVAILABLE], limit: 2 },
  });

  // A TCP port (PostgreSQL with its own TLS inside): clients connect to db.partner.example.egress.local:5432.
  gateway.addExternalService('Db', {
    name: 'partner-db', host: DB_HOST, tls: TlsOrigination.disabled(), ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }],
  });
  network.addTcpRoute('Db', { name: 'partner-db', port: 5432, backends: [RouteBackend.passthrough()] });
  return app;
}

if (require.main === module) {
  buildApp(process.argv[2] ?? 'dist/grpc-tcp-routes').synth();
}
