// Typed shapes of the Gateway API route objects the library writes (HTTPRoute, GRPCRoute,
// TLSRoute, TCPRoute), limited to the fields it emits, and the limits their CRDs enforce.
import { ApiObject, Lazy } from 'cdk8s';
import type { Construct } from 'constructs';

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

/** Limits from the Gateway API v1.6 CRDs (maxItems and CEL rules). */
export const GatewayApiLimits = {
  HOSTNAMES_HTTP: 16,
  HOSTNAMES_TLS: 1024,
  RULES: 16,
  MATCHES_PER_RULE: 64,
  MATCHES_PER_ROUTE: 128,
  HEADERS_PER_MATCH: 16,
  QUERY_PARAMS_PER_MATCH: 16,
  FILTERS_PER_RULE: 16,
  HEADER_EDITS_PER_LIST: 16,
  BACKENDS_PER_RULE: 16,
  WEIGHT_MAX: 1_000_000,
} as const;

/** The route's attachment: for egress, always an EgressNetwork. */
export interface ParentReferenceL1 {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
}

/** Where a rule sends traffic. `group` '' with kind Service means a core Service. */
export interface BackendRefL1 {
  readonly group?: string;
  readonly kind?: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
  readonly weight?: number;
}

export interface NameValueL1 {
  readonly name: string;
  readonly value: string;
}

export interface ValueMatchL1 {
  readonly type: 'Exact' | 'RegularExpression';
  readonly name: string;
  readonly value: string;
}

export interface HttpRouteMatchL1 {
  readonly path?: { readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression'; readonly value: string };
  readonly method?: string;
  readonly headers?: ValueMatchL1[];
  readonly queryParams?: ValueMatchL1[];
}

export interface GrpcRouteMatchL1 {
  readonly method?: { readonly type: 'Exact' | 'RegularExpression'; readonly service?: string; readonly method?: string };
  readonly headers?: ValueMatchL1[];
}

export interface HeaderModifierL1 {
  readonly set?: NameValueL1[];
  readonly add?: NameValueL1[];
  readonly remove?: string[];
}

export interface RequestRedirectL1 {
  readonly scheme?: 'http' | 'https';
  readonly hostname?: string;
  readonly port?: number;
  readonly path?: { readonly type: 'ReplaceFullPath'; readonly replaceFullPath: string }
  | { readonly type: 'ReplacePrefixMatch'; readonly replacePrefixMatch: string };
  readonly statusCode?: number;
}

/** One filter: `type` names which of the other fields is set. */
export interface RouteFilterL1 {
  readonly type: 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestRedirect';
  readonly requestHeaderModifier?: HeaderModifierL1;
  readonly responseHeaderModifier?: HeaderModifierL1;
  readonly requestRedirect?: RequestRedirectL1;
}

export interface HttpRouteRuleL1 {
  readonly name?: string;
  readonly matches?: HttpRouteMatchL1[];
  readonly filters?: RouteFilterL1[];
  readonly backendRefs?: BackendRefL1[];
  /** Gateway API durations, e.g. '10s' or '1m30s'. */
  readonly timeouts?: { readonly request?: string; readonly backendRequest?: string };
}

export interface GrpcRouteRuleL1 {
  readonly name?: string;
  readonly matches?: GrpcRouteMatchL1[];
  readonly filters?: RouteFilterL1[];
  readonly backendRefs?: BackendRefL1[];
}

/** TLSRoute and TCPRoute rules: only backends (both CRDs require at least one). */
export interface StreamRouteRuleL1 {
  readonly name?: string;
  readonly backendRefs: BackendRefL1[];
}

export interface HttpRouteSpecL1 {
  readonly parentRefs: ParentReferenceL1[];
  readonly hostnames?: string[];
  readonly rules: HttpRouteRuleL1[];
}

export interface GrpcRouteSpecL1 {
  readonly parentRefs: ParentReferenceL1[];
  readonly hostnames?: string[];
  readonly rules: GrpcRouteRuleL1[];
}

export interface TlsRouteSpecL1 {
  readonly parentRefs: ParentReferenceL1[];
  /** Matched against the TLS ClientHello's SNI. Required (1+) in v1, optional in v1alpha2. */
  readonly hostnames?: string[];
  readonly rules: StreamRouteRuleL1[];
}

export interface TcpRouteSpecL1 {
  readonly parentRefs: ParentReferenceL1[];
  readonly rules: StreamRouteRuleL1[];
}

export type RouteSpecL1 = HttpRouteSpecL1 | GrpcRouteSpecL1 | TlsRouteSpecL1 | TcpRouteSpecL1;

export interface RouteObjectProps {
  /** e.g. 'v1' or 'v1alpha2'. */
  readonly version: string;
  readonly kind: 'HTTPRoute' | 'GRPCRoute' | 'TLSRoute' | 'TCPRoute';
  readonly name?: string;
  readonly namespace: string;
  readonly annotations?: Record<string, string>;
  /** Called at synth time, so rules added later are rendered. */
  readonly spec: () => RouteSpecL1;
}

/**
 * Adds a Gateway API route object under `scope` with id `id`. Without `props.name` the object
 * gets the name cdk8s generates from the construct path (a `name: undefined` key would erase it).
 */
export function routeObject(scope: Construct, id: string, props: RouteObjectProps): ApiObject {
  return new ApiObject(scope, id, {
    apiVersion: `${GATEWAY_API_GROUP}/${props.version}`,
    kind: props.kind,
    metadata: {
      ...(props.name !== undefined ? { name: props.name } : {}),
      namespace: props.namespace,
      ...(props.annotations !== undefined ? { annotations: props.annotations } : {}),
    },
    spec: Lazy.any({ produce: props.spec }),
  });
}
