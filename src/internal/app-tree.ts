// Checks across the construct tree: whether two constructs share a cdk8s App, and what an
// EgressNetwork may learn about the gateways of its App without importing egress-gateway.ts
// (a gateway is found by this mark, whatever module defines it).
import type { Construct } from 'constructs';

/** Set on every EgressGateway; its value returns the facts below. */
export const GATEWAY_FACTS = Symbol.for('cdk8s-egress.EgressGateway.facts');

export interface GatewayFacts {
  /** The EgressNetwork the gateway enforces, if any. */
  readonly network?: Construct;
  /** The gateway's own trafficPolicy ('Deny' or 'Allow'), when set. */
  readonly trafficPolicy?: string;
  /** How many ExternalServices the gateway declares. */
  readonly declaredServices: number;
}

export function gatewayFacts(c: Construct): GatewayFacts | undefined {
  const f = (c as unknown as Record<symbol, unknown>)[GATEWAY_FACTS];
  return typeof f === 'function' ? (f as () => GatewayFacts)() : undefined;
}

/**
 * Why `other` cannot be used from `scope`, when they belong to different cdk8s Apps (trees);
 * undefined when they share one. Each App synthesises its own manifests, so an object of one
 * App named from the other is written to neither side consistently.
 */
export function otherAppProblem(scope: Construct, other: Construct): string | undefined {
  if (scope.node.root === other.node.root) return undefined;
  return `belongs to another cdk8s App than "${scope.node.path}" (each App synthesises its own manifests)`;
}
