// Which Gateway API version TLSRoute and TCPRoute objects are written in.

/**
 * API version of TLSRoute and TCPRoute objects.
 * @see https://gateway-api.sigs.k8s.io/concepts/versioning/
 */
export enum RouteApiVersion {
  /**
   * v1alpha2: what Linkerd watches and bundles (its Gateway API CRDs serve TLSRoute and TCPRoute
   * only as v1alpha2). Deprecated upstream but still served by the experimental channel.
   */
  V1ALPHA2 = 'v1alpha2',
  /** v1: the standard channel from Gateway API v1.5; TLSRoute v1 requires hostnames. */
  V1 = 'v1',
}
