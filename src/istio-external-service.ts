// IstioExternalService: renders an ExternalService as an Istio ServiceEntry and, when it
// originates TLS, the DestinationRule that makes sidecars do the origination.
import { ApiObject, ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import type { ExternalService, IExternalServiceRenderer } from './external-service';
import { Problems } from './internal/problems';
import { renderIstio } from './mesh/istio';
import { renderInputOf } from './mesh/render-input';
import { dnsLabelProblem, isDnsLabel } from './model/names';

/** Props of `IstioExternalService`. */
export interface IstioExternalServiceProps {
  /**
   * Namespace of the ServiceEntry and DestinationRule. The DestinationRule's `credentialName`
   * Secret is read from the namespace of the client workloads, so keep it there.
   * @default - the ExternalService's namespace
   */
  readonly namespace?: string;

  /**
   * Namespaces that see the ServiceEntry and DestinationRule (`.` is their own namespace).
   * @see https://istio.io/latest/docs/reference/config/networking/service-entry/
   * @default - every namespace (Istio's default)
   */
  readonly exportTo?: string[];
}

/**
 * Renders an `ExternalService` for Istio: a `ServiceEntry` (MESH_EXTERNAL; DNS resolution, STATIC
 * for IP endpoints, NONE for wildcard hosts) on which clients call the declared ports in
 * plaintext, and, when the service originates TLS, a `DestinationRule` whose per-port TLS
 * (SIMPLE, or MUTUAL with a client certificate) makes the sidecar originate TLS to the target port.
 *
 * Errors at bind time, naming Istio and the field, where a DestinationRule has no faithful form:
 * TLS versions other than TLS 1.2+/auto, renegotiation, SkipCA and SkipSAN (Istio only skips
 * both, which `TlsVerification.skipAll()` maps to), Prefix SANs, CA from a ConfigMap or inline,
 * TLS material spread over several Secrets or under keys other than `ca.crt`/`tls.crt`/`tls.key`
 * (or `cacert`/`cert`/`key`), endpoint priorities, retries, timeouts, injected headers and pool
 * tuning.
 *
 * @see https://istio.io/latest/docs/tasks/traffic-management/egress/egress-tls-origination/
 *
 * @example
 * gateway.addExternalService('Github', { host: 'api.github.com' })
 *   .addRenderer(new IstioExternalService());
 */
export class IstioExternalService implements IExternalServiceRenderer {
  private readonly namespace?: string;
  private readonly exportTo?: string[];

  public constructor(props: IstioExternalServiceProps = {}) {
    const problems = new Problems('IstioExternalService');
    const nsProblem = props.namespace !== undefined ? dnsLabelProblem(props.namespace, { what: 'a namespace' }) : undefined;
    if (nsProblem) problems.add('namespace', props.namespace, nsProblem.rule, nsProblem.fix);
    (props.exportTo ?? []).forEach((ns, i) => {
      if (ns !== '.' && ns !== '*' && !isDnsLabel(ns)) {
        problems.add(`exportTo[${i}]`, ns, 'is not ".", "*" or a namespace name', 'list namespace names, or "." for the object\'s own namespace');
      }
    });
    if (props.exportTo !== undefined && props.exportTo.length === 0) {
      problems.add('exportTo', [], 'is empty', 'leave it unset to export everywhere, or list namespaces');
    }
    problems.throwIfAny();
    this.namespace = props.namespace;
    this.exportTo = props.exportTo ? [...props.exportTo] : undefined;
  }

  /** Creates the Istio objects as children of `service` (construct id `Istio`). */
  public bind(service: ExternalService): void {
    const manifests = renderIstio(renderInputOf(service), {
      name: service.name,
      namespace: this.namespace ?? service.namespace,
      exportTo: this.exportTo,
      subject: `IstioExternalService for ExternalService "${service.node.path}"`,
    });
    const scope = new Construct(service, 'Istio');
    new ApiObject(scope, 'ServiceEntry', clone(manifests.serviceEntry));
    if (manifests.destinationRule) new ApiObject(scope, 'DestinationRule', clone(manifests.destinationRule));
  }
}

function clone(o: object): ApiObjectProps {
  return JSON.parse(JSON.stringify(o));
}
