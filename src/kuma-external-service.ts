// KumaExternalService: renders an ExternalService as Kuma MeshExternalService objects and the
// HostnameGenerator that gives them names, next to (or instead of) the egress gateway.
import { ApiObject, ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import type { ExternalService, IExternalServiceRenderer } from './external-service';
import { Problems } from './internal/problems';
import {
  DEFAULT_KUMA_HOSTNAME_TEMPLATE, DEFAULT_KUMA_MESH, DEFAULT_KUMA_SYSTEM_NAMESPACE, renderKuma,
} from './mesh/kuma';
import { renderInputOf } from './mesh/render-input';
import { dnsLabelProblem } from './model/names';

/** Props of `KumaExternalService`. */
export interface KumaExternalServiceProps {
  /**
   * The Kuma mesh the MeshExternalServices belong to, set as the `kuma.io/mesh` label.
   * @see https://kuma.io/docs/latest/networking/meshexternalservice/
   * @default "default"
   */
  readonly mesh?: string;

  /**
   * Kuma's system namespace. Kuma only accepts MeshExternalServices (and reads its Secrets) in the
   * namespace its control plane runs in.
   * @default "kuma-system"
   */
  readonly systemNamespace?: string;

  /**
   * Render a HostnameGenerator that names this service's MeshExternalServices. Turn it off when the
   * platform already runs a generator that selects them (Kuma's built-in ones select by
   * `kuma.io/origin`), or two generators would claim the same hostname.
   * @see https://kuma.io/docs/latest/networking/hostnamegenerator/
   * @default true
   */
  readonly hostnameGenerator?: boolean;

  /**
   * Go template of the generated hostname; `{{ .DisplayName }}` is the MeshExternalService's name.
   * @see https://kuma.io/docs/latest/networking/hostnamegenerator/
   * @default "{{ .DisplayName }}.extsvc.mesh.local"
   */
  readonly hostnameTemplate?: string;
}

/**
 * Renders an `ExternalService` for Kuma: workloads in the mesh reach it at a generated hostname
 * (`<name>.extsvc.mesh.local` by default) and their sidecars originate TLS as the service says.
 *
 * Each port becomes one MeshExternalService, because Kuma matches exactly one port per object:
 * a single-port service is named after the service, a multi-port one gets `<name>-<port>` per
 * port (and so one hostname per port). Everything Kuma cannot express is an error at bind time,
 * naming Kuma and the field: wildcard hosts, retries, timeouts, injected headers, pool tuning,
 * CA or client material from a ConfigMap, and Secret keys other than Kuma's `value`.
 *
 * TLS material from `CertificateSource.fromSecret(name, 'value')` is referenced as the Kuma
 * Secret `name`, which must exist in the system namespace with type `system.kuma.io/secret`.
 *
 * @see https://kuma.io/docs/latest/networking/meshexternalservice/
 *
 * @example
 * gateway.addExternalService('Github', { host: 'api.github.com' })
 *   .addRenderer(new KumaExternalService());
 */
export class KumaExternalService implements IExternalServiceRenderer {
  private readonly mesh: string;
  private readonly systemNamespace: string;
  private readonly hostnameTemplate?: string;

  public constructor(props: KumaExternalServiceProps = {}) {
    const problems = new Problems('KumaExternalService');
    this.mesh = props.mesh ?? DEFAULT_KUMA_MESH;
    this.systemNamespace = props.systemNamespace ?? DEFAULT_KUMA_SYSTEM_NAMESPACE;
    const meshProblem = dnsLabelProblem(this.mesh, { what: 'a mesh name, also used as a label value' });
    if (meshProblem) problems.add('mesh', this.mesh, meshProblem.rule, meshProblem.fix);
    const nsProblem = dnsLabelProblem(this.systemNamespace, { what: 'a namespace', fix: 'use the namespace Kuma runs in, e.g. "kuma-system"' });
    if (nsProblem) problems.add('systemNamespace', this.systemNamespace, nsProblem.rule, nsProblem.fix);
    if (props.hostnameGenerator === false && props.hostnameTemplate !== undefined) {
      problems.add('hostnameTemplate', props.hostnameTemplate, 'has no effect because \'hostnameGenerator\' is false', 'remove one of the two');
    }
    const template = props.hostnameTemplate ?? DEFAULT_KUMA_HOSTNAME_TEMPLATE;
    if (props.hostnameGenerator !== false && (template.trim().length === 0 || !template.includes('{{'))) {
      problems.add('hostnameTemplate', template, 'has no template action, so every service would get the same hostname',
        'include {{ .DisplayName }}, e.g. "{{ .DisplayName }}.extsvc.mesh.local"');
    }
    problems.throwIfAny();
    this.hostnameTemplate = props.hostnameGenerator === false ? undefined : template;
  }

  /** Creates the Kuma objects as children of `service` (construct id `Kuma`). */
  public bind(service: ExternalService): void {
    const manifests = renderKuma(renderInputOf(service), {
      name: service.name,
      namespace: this.systemNamespace,
      mesh: this.mesh,
      hostnameTemplate: this.hostnameTemplate,
      subject: `KumaExternalService for ExternalService "${service.node.path}"`,
    });
    const scope = new Construct(service, 'Kuma');
    const single = manifests.meshExternalServices.length === 1;
    for (const mes of manifests.meshExternalServices) {
      new ApiObject(scope, single ? 'MeshExternalService' : `MeshExternalService${mes.spec.match.port}`, clone(mes));
    }
    if (manifests.hostnameGenerator) new ApiObject(scope, 'HostnameGenerator', clone(manifests.hostnameGenerator));
  }
}

/** ApiObject keeps a reference to the props; hand it its own copy. */
function clone(o: object): ApiObjectProps {
  return JSON.parse(JSON.stringify(o));
}
