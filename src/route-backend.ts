// Value class for where a route rule sends traffic: back out to the original destination through
// its EgressNetwork, or to an in-cluster Service (e.g. a stand-in for a disallowed destination).
import type * as kplus from 'cdk8s-plus-28';
import type { IRouteParent } from './route-parent';

/** What a backend reference points at. */
export enum RouteBackendKind {
  /** An EgressNetwork: the request continues to the destination the client asked for. */
  EGRESS_NETWORK = 'EgressNetwork',
  /** A Kubernetes Service inside the cluster. */
  SERVICE = 'Service',
}

/** Options shared by every backend. */
export interface RouteBackendOptions {
  /**
   * Relative share of the rule's traffic (0-1000000); 0 sends none.
   * @default 1
   */
  readonly weight?: number;
}

/** Options for a cdk8s-plus Service backend. */
export interface ServiceBackendOptions extends RouteBackendOptions {
  /**
   * Service port to send to.
   * @default - the Service's first port
   */
  readonly port?: number;
}

/** Options for a Service named by reference. */
export interface ServiceRefBackendOptions extends RouteBackendOptions {
  /** Service port to send to (the Gateway API requires it for Services). */
  readonly port: number;
  /**
   * Namespace of the Service. Linkerd follows a reference to another namespace as is; other
   * Gateway API implementations also want a ReferenceGrant there.
   * @default - the route's namespace
   */
  readonly namespace?: string;
}

/**
 * A backendRef of a route rule.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#backendref
 * @see https://linkerd.io/2/reference/egress-network/
 */
export class RouteBackend {
  /**
   * Let the traffic through to the original destination: a backendRef to the route's own
   * EgressNetwork, as Linkerd requires for pass-through.
   */
  public static passthrough(options: RouteBackendOptions = {}): RouteBackend {
    return new RouteBackend(RouteBackendKind.EGRESS_NETWORK, undefined, undefined, undefined, undefined, options.weight);
  }

  /**
   * The original destination through `network`, named explicitly. Linkerd only accepts the
   * route's own parent here; naming another EgressNetwork is a synth error.
   */
  public static egressNetwork(network: IRouteParent, options: RouteBackendOptions = {}): RouteBackend {
    return new RouteBackend(RouteBackendKind.EGRESS_NETWORK, network, undefined, undefined, undefined, options.weight);
  }

  /** A cdk8s-plus Service in the same app. */
  public static service(service: kplus.Service, options: ServiceBackendOptions = {}): RouteBackend {
    return new RouteBackend(RouteBackendKind.SERVICE, undefined, service, undefined, undefined, options.weight, options.port);
  }

  /** A Service by name, e.g. one another app deploys. */
  public static serviceRef(name: string, options: ServiceRefBackendOptions): RouteBackend {
    return new RouteBackend(RouteBackendKind.SERVICE, undefined, undefined, name, options.namespace, options.weight, options.port);
  }

  private constructor(
    public readonly kind: RouteBackendKind,
    /** The EgressNetwork named, when given explicitly. */
    public readonly network?: IRouteParent,
    /** The cdk8s-plus Service, for `service()`. */
    public readonly serviceResource?: kplus.Service,
    /** The Service name, for `serviceRef()`. */
    public readonly serviceName?: string,
    /** The Service namespace, for `serviceRef()`. */
    public readonly serviceNamespace?: string,
    /** Relative share of traffic. */
    public readonly weight?: number,
    /** The Service port. */
    public readonly port?: number,
  ) {}
}
