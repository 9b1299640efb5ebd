// The seam other constructs meet an egress gateway through (ExternalService, EgressNetwork,
// GatewayAlerts): an IEgressGateway, so they need not import egress-gateway.ts, which creates
// them, and the modules never import each other in a loop.
import type { IConstruct } from 'constructs';
import type { GatewayMetricsMonitor } from './gateway-metrics-monitor';
import type { ProxyConfig } from './model/proxy-config';
import type { IRouteParent } from './route-parent';

/** An egress gateway, as the constructs that attach to it see it: `EgressGateway`. */
export interface IEgressGateway extends IConstruct {
  /** Gateway name (Deployment, ServiceAccount, implicit parent). */
  readonly name: string;
  /** Namespace of the gateway's objects. */
  readonly namespaceName: string;
  /** Labels every object of the gateway carries. */
  readonly commonLabels: { [key: string]: string };
  /** The ServiceMonitor or PodMonitor, once added. */
  readonly metricsMonitor?: GatewayMetricsMonitor;

  /**
   * Makes `network` the parent this gateway enforces: its trafficPolicy, networks and routes go
   * into the proxy config. A gateway has one parent.
   */
  attachNetwork(network: IRouteParent): void;

  /**
   * @internal called by an ExternalService naming this gateway (typed as a construct here so that
   * this module does not import external-service.ts): checks that its host, name and client
   * ports are free, then mounts what it reads and exposes its ports.
   */
  _registerExternalService(service: IConstruct): void;

  /** @internal the complete proxy config, as the ConfigMap carries it. */
  _renderConfig(): ProxyConfig;
}
