// Closed choices shared by EgressGateway and EgressNetwork: what unmatched traffic gets, and
// whether decisions are enforced.

/**
 * What happens to traffic that no route matches (Linkerd's EgressNetwork `trafficPolicy`).
 *
 * @see https://linkerd.io/2-edge/reference/egress-network/
 */
export enum TrafficPolicy {
  /** Unmatched traffic goes to its original destination. */
  ALLOW = 'Allow',
  /** Unmatched traffic is refused (HTTP 403, TLS and TCP connections closed). */
  DENY = 'Deny',
}

/** Whether the gateway enforces denials or only reports them. */
export enum EnforcementMode {
  /** Denied traffic is refused. */
  ENFORCE = 'Enforce',
  /**
   * Denied traffic is let through and logged and counted as a would-be denial: for rolling out
   * a Deny policy without breaking callers you did not know about.
   */
  REPORT_ONLY = 'ReportOnly',
}
