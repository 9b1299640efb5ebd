// Typed shape of the one Linkerd policy object the library writes, EgressNetwork
// (policy.linkerd.io/v1alpha1), plus the annotation keys Linkerd reads on routes.
import { ApiObject, Lazy } from 'cdk8s';
import type { Construct } from 'constructs';

export const LINKERD_POLICY_GROUP = 'policy.linkerd.io';
export const EGRESS_NETWORK_API_VERSION = 'policy.linkerd.io/v1alpha1';
export const EGRESS_NETWORK_KIND = 'EgressNetwork';
/** Linkerd's default global egress namespace (Helm value egress.globalEgressNetworkNamespace). */
export const LINKERD_GLOBAL_EGRESS_NAMESPACE = 'linkerd-egress';

/** A block of destination addresses the EgressNetwork covers, minus some sub-blocks. */
export interface EgressNetworkNetworkL1 {
  readonly cidr: string;
  readonly except?: string[];
}

/** The spec of an EgressNetwork: what traffic it captures and what happens to unrouted traffic. */
export interface EgressNetworkSpecL1 {
  /** Allow or Deny: the fate of traffic no attached route matches. Required by the CRD. */
  readonly trafficPolicy: 'Allow' | 'Deny';
  /** Unset: every address outside the cluster's networks. */
  readonly networks?: EgressNetworkNetworkL1[];
}

export interface EgressNetworkObjectProps {
  readonly name?: string;
  readonly namespace: string;
  /** Called at synth time, so later changes to the construct are rendered. */
  readonly spec: () => EgressNetworkSpecL1;
}

/**
 * Adds an EgressNetwork object under `scope` with id `id`. Without `props.name` the object gets
 * the name cdk8s generates from the construct path (a `name: undefined` key would erase it).
 */
export function egressNetworkObject(scope: Construct, id: string, props: EgressNetworkObjectProps): ApiObject {
  return new ApiObject(scope, id, {
    apiVersion: EGRESS_NETWORK_API_VERSION,
    kind: EGRESS_NETWORK_KIND,
    metadata: { ...(props.name !== undefined ? { name: props.name } : {}), namespace: props.namespace },
    spec: Lazy.any({ produce: props.spec }),
  });
}

/** Route annotations Linkerd's policy controller reads (values are strings). */
export const LinkerdRouteAnnotation = {
  RETRY_HTTP: 'retry.linkerd.io/http',
  RETRY_GRPC: 'retry.linkerd.io/grpc',
  RETRY_LIMIT: 'retry.linkerd.io/limit',
  RETRY_TIMEOUT: 'retry.linkerd.io/timeout',
  TIMEOUT_REQUEST: 'timeout.linkerd.io/request',
  TIMEOUT_RESPONSE: 'timeout.linkerd.io/response',
  TIMEOUT_IDLE: 'timeout.linkerd.io/idle',
} as const;
