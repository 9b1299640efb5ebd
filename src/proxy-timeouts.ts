// The per-phase timeouts an EgressGateway and its ExternalServices take (cdk8s Durations); the
// proxy config carries them as the model's millisecond fields (internal/timeouts.ts).
import type { Duration } from 'cdk8s';

/**
 * A timeout per phase of a proxied request or connection. Unset phases keep the gateway's value
 * (for a service) or the built-in default (for the gateway).
 */
export interface ProxyTimeouts {
  /**
   * Resolving the upstream name.
   * @default Duration.seconds(5)
   */
  readonly dns?: Duration;
  /**
   * Establishing a TCP connection to one upstream address.
   * @default Duration.seconds(10)
   */
  readonly connect?: Duration;
  /**
   * Completing the TLS handshake with the upstream.
   * @default Duration.seconds(10)
   */
  readonly tlsHandshake?: Duration;
  /**
   * Receiving the complete request headers from the client.
   * @default Duration.seconds(30)
   */
  readonly requestHeaders?: Duration;
  /**
   * Receiving the start of the upstream response.
   * @default Duration.minutes(1)
   */
  readonly responseHeaders?: Duration;
  /**
   * No bytes either way on a request.
   * @default Duration.minutes(5)
   */
  readonly idle?: Duration;
  /**
   * The whole request, first byte in to last byte out. Zero disables.
   * @default - no limit
   */
  readonly total?: Duration;
  /**
   * No bytes either way on a tunnel (CONNECT, TLS passthrough, TCP).
   * @default Duration.hours(1)
   */
  readonly tunnelIdle?: Duration;
}
