// STUB owned by the EgressNetwork helper: replaced by the full construct. The internal methods
// below are the seam EgressGateway uses; keep their names and return types.
import { Construct } from 'constructs';
import type { ParentSpec, RouteSpec } from './model/proxy-config';

export interface EgressNetworkProps {
  readonly namespace?: string;
}

export class EgressNetwork extends Construct {
  public readonly name: string;
  public readonly namespace: string;
  constructor(scope: Construct, id: string, props: EgressNetworkProps = {}) {
    super(scope, id);
    this.name = id.toLowerCase();
    this.namespace = props.namespace ?? 'default';
  }
  /** @internal the parent this network is, as the proxy config states it. */
  public _renderParent(): ParentSpec {
    return { group: 'policy.linkerd.io', kind: 'EgressNetwork', name: this.name, namespace: this.namespace, trafficPolicy: 'Allow', networks: [], mode: 'Enforce' };
  }
  /** @internal the routes attached to this network, as the proxy config states them. */
  public _renderRoutes(): RouteSpec[] {
    return [];
  }
}
