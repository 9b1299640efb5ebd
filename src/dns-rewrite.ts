import { ApiObject, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { isIp } from './internal/cidr';
import {
  dnsNameProblem, findRootServerBlock, insertIntoRootBlock, parseCorefile, renderRewriteRule, RewriteRuleSpec, suffixRegex,
} from './internal/corefile';
import { DEFAULT_EGRESS_SUFFIX } from './model/defaults';

/**
 * The Corefile kubeadm installs, used as the base when DnsRewrite owns the whole `coredns`
 * ConfigMap and the user gives none. `CLUSTER_DOMAIN` is replaced with the cluster domain.
 */
const KUBEADM_COREFILE = `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
        max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`;

/** What a DNS flavour needs from the DnsRewrite it serves: plain data, already validated. */
export interface DnsRewriteBinding {
  /** The gateway Service's cluster name, without trailing dot ('proxy.egress.svc.cluster.local'). */
  readonly targetName: string;
  /** Namespace of the gateway Service. */
  readonly targetNamespace: string;
  readonly clusterDomain: string;
  /** Egress suffixes, lower case, no leading or trailing dot. */
  readonly suffixes: string[];
  /** Real host names rewritten to the gateway. */
  readonly hijackHosts: string[];
  /** The rewrite lines (`rewrite stop { ... }`), unindented, one entry per line. */
  readonly rewriteLines: string[];
}

/**
 * How the rewrite reaches the cluster's DNS. Create one with the `DnsFlavor` factories.
 */
export interface IDnsFlavor {
  /** Synthesises the flavour's objects under `scope`; throws when its options do not fit. */
  bind(scope: Construct, binding: DnsRewriteBinding): void;
}

/** Options of `DnsFlavor.corednsConfigMap()`. */
export interface CorednsConfigMapOptions {
  /**
   * The cluster's Corefile, as the platform wants it, without the egress rewrite. The rewrite
   * lines are inserted into its root server block (`.:53 { ... }`) before the first `rewrite`,
   * `kubernetes` or `forward` line; everything else is kept as written.
   *
   * @see https://coredns.io/manual/configuration/
   * @default - kubeadm's default Corefile for the cluster domain
   */
  readonly baseCorefile?: string;
  /**
   * Name of the ConfigMap the CoreDNS Deployment mounts.
   * @default 'coredns'
   */
  readonly configMapName?: string;
  /**
   * Namespace of CoreDNS.
   * @default 'kube-system'
   */
  readonly namespace?: string;
}

/** Options of `DnsFlavor.corednsCustom()`. */
export interface CorednsCustomOptions {
  /**
   * Name of the ConfigMap the platform's CoreDNS imports extra configuration from.
   * @default 'coredns-custom'
   */
  readonly configMapName?: string;
  /**
   * Data key holding the rewrite lines. It must end in `.override`: k3s and AKS import
   * `*.override` keys inside the root server block and `*.server` keys as extra blocks.
   * @see https://learn.microsoft.com/azure/aks/coredns-custom
   * @default 'egress-rewrite.override'
   */
  readonly key?: string;
  /**
   * Namespace of CoreDNS.
   * @default 'kube-system'
   */
  readonly namespace?: string;
}

/** Options of `DnsFlavor.kubeDns()`. */
export interface KubeDnsStubDomainOptions {
  /**
   * Fixed ClusterIP of the small CoreDNS Service this flavour adds. kube-dns `stubDomains`
   * take IP addresses only, so the Service's address must be known before it exists: pick a
   * free address inside the cluster's service range.
   * @see https://kubernetes.io/docs/tasks/administer-cluster/dns-custom-nameservers/
   */
  readonly clusterIp: string;
  /**
   * Namespace of the DNS Deployment and Service.
   * @default - the gateway's namespace
   */
  readonly namespace?: string;
  /**
   * CoreDNS image of the DNS Deployment.
   * @default 'registry.k8s.io/coredns/coredns:v1.11.3'
   */
  readonly image?: string;
  /**
   * Replicas of the DNS Deployment.
   * @default 2
   */
  readonly replicas?: number;
  /**
   * kube-dns `upstreamNameservers`, kept in the `kube-dns` ConfigMap this flavour owns.
   * @default - kube-dns uses the nodes' resolvers
   */
  readonly upstreamNameservers?: string[];
}

/** Port the dedicated CoreDNS listens on inside its pod: above 1024, so no capability is needed. */
const STUB_DNS_CONTAINER_PORT = 1053;
const STUB_DNS_HEALTH_PORT = 8080;
const STUB_DNS_READY_PORT = 8181;

/** Factories for the ways a DnsRewrite reaches a cluster's DNS. */
export class DnsFlavor {
  /**
   * **Replaces the whole `kube-system/coredns` ConfigMap.** For clusters where the platform team
   * owns the Corefile only. The rewrite is inserted into `baseCorefile`'s root block; without
   * `baseCorefile`, kubeadm's default Corefile is written.
   *
   * WARNING: on EKS, GKE, AKS and most managed clusters the provider owns that ConfigMap.
   * Applying this drops the provider's settings (stub domains, forwarders, plugins), can break
   * DNS for every pod, and may be reverted by the provider. There, use `corednsCustom()` (AKS,
   * k3s), `kubeDns()` (GKE) or `snippetOnly()` (EKS and any Corefile managed elsewhere).
   *
   * @example
   * // Only where you own the Corefile: pass the cluster's actual Corefile.
   * gateway.addDnsRewrite('Dns', {
   *   flavor: DnsFlavor.corednsConfigMap({ baseCorefile: readFileSync('Corefile', 'utf8') }),
   * });
   */
  public static corednsConfigMap(options: CorednsConfigMapOptions = {}): IDnsFlavor {
    return new CorednsConfigMapFlavor(options);
  }

  /**
   * Add a key to the `coredns-custom` ConfigMap that k3s and AKS import into their managed
   * Corefile's root block: the cluster's own Corefile is left alone. Applying it replaces a
   * `coredns-custom` ConfigMap managed elsewhere unless the apply is server-side; merge keys by
   * hand when there is one.
   *
   * @example
   * gateway.addDnsRewrite('Dns', { flavor: DnsFlavor.corednsCustom() });
   */
  public static corednsCustom(options: CorednsCustomOptions = {}): IDnsFlavor {
    return new CorednsCustomFlavor(options);
  }

  /**
   * kube-dns clusters (GKE): a `stubDomains` entry per suffix sends those names to a small
   * CoreDNS Deployment this flavour adds, which rewrites them to the gateway and asks the
   * cluster DNS. The `kube-dns` ConfigMap is owned by this flavour (GKE ships none).
   *
   * @example
   * gateway.addDnsRewrite('Dns', { flavor: DnsFlavor.kubeDns({ clusterIp: '10.96.0.53' }) });
   */
  public static kubeDns(options: KubeDnsStubDomainOptions): IDnsFlavor {
    return new KubeDnsFlavor(options);
  }

  /**
   * Synthesise nothing: read `DnsRewrite.snippet` and add it to a Corefile managed elsewhere
   * (on EKS, the CoreDNS add-on's configuration).
   *
   * @example
   * const dns = gateway.addDnsRewrite('Dns', { flavor: DnsFlavor.snippetOnly() });
   * console.log(dns.snippet); // paste into the root server block of the Corefile
   */
  public static snippetOnly(): IDnsFlavor {
    return new SnippetFlavor();
  }

  private constructor() {}
}

class SnippetFlavor implements IDnsFlavor {
  public bind(_scope: Construct, _binding: DnsRewriteBinding): void {
    // Nothing to synthesise: the snippet is read from DnsRewrite.snippet.
  }
}

class CorednsConfigMapFlavor implements IDnsFlavor {
  constructor(private readonly options: CorednsConfigMapOptions) {}
  public bind(scope: Construct, binding: DnsRewriteBinding): void {
    const base = this.options.baseCorefile ?? KUBEADM_COREFILE.replace('CLUSTER_DOMAIN', binding.clusterDomain);
    const where = `DnsRewrite ${scope.node.path}: DnsFlavor.corednsConfigMap() 'baseCorefile' cannot take the rewrite`;
    let corefile: string;
    try {
      corefile = insertIntoRootBlock(base, binding.rewriteLines).text;
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}. Give a Corefile with a '.:53 { ... }' block, one plugin per line.`);
    }
    // Applying the output as the base again must not stack a second copy of the rule.
    const root = findRootServerBlock(parseCorefile(base))!;
    const clash = root.directives.find(d => d.name === 'rewrite'
      && [...d.args, ...(d.block ?? []).flatMap(b => [b.name, ...b.args])].includes(`${binding.targetName}.`));
    if (clash) {
      throw new Error(`${where}: its root block already rewrites to "${binding.targetName}." on line ${clash.line}; give the Corefile without the egress rewrite.`);
    }
    new ApiObject(scope, 'CorednsConfigMap', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: this.options.configMapName ?? 'coredns', namespace: this.options.namespace ?? 'kube-system' },
      data: { Corefile: corefile },
    });
  }
}

class CorednsCustomFlavor implements IDnsFlavor {
  constructor(private readonly options: CorednsCustomOptions) {}
  public bind(scope: Construct, binding: DnsRewriteBinding): void {
    const key = this.options.key ?? 'egress-rewrite.override';
    if (!/^[-._a-zA-Z0-9]+\.override$/.test(key)) {
      throw new Error(`DnsRewrite ${scope.node.path}: DnsFlavor.corednsCustom() 'key' ${JSON.stringify(key)} must be a ConfigMap key ending in '.override' (only those are imported into the root server block); did you mean "egress-rewrite.override"?`);
    }
    new ApiObject(scope, 'CorednsCustomConfigMap', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: this.options.configMapName ?? 'coredns-custom', namespace: this.options.namespace ?? 'kube-system' },
      data: { [key]: binding.rewriteLines.join('\n') + '\n' },
    });
  }
}

class KubeDnsFlavor implements IDnsFlavor {
  constructor(private readonly options: KubeDnsStubDomainOptions) {}
  public bind(scope: Construct, binding: DnsRewriteBinding): void {
    const o = this.options;
    const problems: string[] = [];
    if (!isIp(o.clusterIp ?? '')) {
      problems.push(`'clusterIp' ${JSON.stringify(o.clusterIp)} is not an IP address; stubDomains take addresses only, so give a free address in the cluster's service range, e.g. "10.96.0.53"`);
    }
    if (o.replicas !== undefined && (!Number.isInteger(o.replicas) || o.replicas < 1)) {
      problems.push(`'replicas' ${o.replicas} must be a whole number of at least 1`);
    }
    for (const ns of o.upstreamNameservers ?? []) {
      if (!isIp(ns)) problems.push(`'upstreamNameservers' entry ${JSON.stringify(ns)} is not an IP address`);
    }
    if (problems.length) {
      throw new Error(`DnsRewrite ${scope.node.path}: DnsFlavor.kubeDns() options are invalid:\n- ${problems.join('\n- ')}`);
    }
    const namespace = o.namespace ?? binding.targetNamespace;
    const zones = [...binding.suffixes, ...binding.hijackHosts];
    const stubDomains: Record<string, string[]> = {};
    for (const zone of zones) stubDomains[zone] = [o.clusterIp];

    const data: Record<string, string> = { stubDomains: JSON.stringify(stubDomains) };
    if (o.upstreamNameservers?.length) data.upstreamNameservers = JSON.stringify(o.upstreamNameservers);
    new ApiObject(scope, 'KubeDnsConfigMap', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'kube-dns', namespace: 'kube-system' },
      data,
    });

    const corefile = renderStubCorefile(zones, binding.rewriteLines);
    const config = new kplus.ConfigMap(scope, 'StubDnsConfig', {
      metadata: { namespace },
      data: { Corefile: corefile },
    });
    const deployment = new kplus.Deployment(scope, 'StubDns', {
      metadata: { namespace },
      replicas: o.replicas ?? 2,
      // Pods resolve through the cluster DNS (ClusterFirst), which is what `forward` asks.
      dns: { policy: kplus.DnsPolicy.CLUSTER_FIRST },
      securityContext: { ensureNonRoot: true, user: 65532, group: 65532 },
      automountServiceAccountToken: false,
    });
    const container = deployment.addContainer({
      name: 'coredns',
      image: o.image ?? 'registry.k8s.io/coredns/coredns:v1.11.3',
      args: ['-conf', '/etc/coredns/Corefile'],
      ports: [
        { number: STUB_DNS_CONTAINER_PORT, protocol: kplus.Protocol.UDP, name: 'dns' },
        { number: STUB_DNS_CONTAINER_PORT, protocol: kplus.Protocol.TCP, name: 'dns-tcp' },
      ],
      liveness: kplus.Probe.fromHttpGet('/health', { port: STUB_DNS_HEALTH_PORT }),
      readiness: kplus.Probe.fromHttpGet('/ready', { port: STUB_DNS_READY_PORT }),
      securityContext: { ensureNonRoot: true, user: 65532, group: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
      resources: {
        cpu: { request: kplus.Cpu.millis(50), limit: kplus.Cpu.millis(500) },
        memory: { request: Size.mebibytes(32), limit: Size.mebibytes(128) },
      },
    });
    container.mount('/etc/coredns', kplus.Volume.fromConfigMap(scope, 'StubDnsVolume', config));
    new kplus.Service(scope, 'StubDnsService', {
      metadata: { namespace },
      clusterIP: o.clusterIp,
      selector: deployment,
      ports: [
        { name: 'dns', port: 53, targetPort: STUB_DNS_CONTAINER_PORT, protocol: kplus.Protocol.UDP },
        { name: 'dns-tcp', port: 53, targetPort: STUB_DNS_CONTAINER_PORT, protocol: kplus.Protocol.TCP },
      ],
    });
  }
}

/**
 * The dedicated CoreDNS's Corefile: one server block for the stub zones that rewrites and asks
 * the cluster DNS; names in the zones that no rule rewrote get NXDOMAIN here, because
 * forwarding them would send them back to kube-dns, which sends them here again.
 */
function renderStubCorefile(zones: string[], rewriteLines: string[]): string {
  const indent = (l: string) => (l ? `    ${l}` : l);
  return [
    `${zones.map(z => `${z}:${STUB_DNS_CONTAINER_PORT}`).join(' ')} {`,
    '    errors',
    `    health :${STUB_DNS_HEALTH_PORT}`,
    `    ready :${STUB_DNS_READY_PORT}`,
    ...rewriteLines.map(indent),
    `    template ANY ANY ${zones.join(' ')} {`,
    '        rcode NXDOMAIN',
    '    }',
    '    forward . /etc/resolv.conf',
    '    cache 30',
    // ConfigMap volume updates reach the pod in about a minute; reload applies them without a restart.
    '    reload',
    '}',
    '',
  ].join('\n');
}

/** Props of `DnsRewrite`. */
export interface DnsRewriteProps {
  /**
   * How the rewrite reaches the cluster's DNS: the whole `coredns` ConfigMap, the
   * `coredns-custom` convention of k3s and AKS, kube-dns stub domains, or a snippet to paste.
   */
  readonly flavor: IDnsFlavor;
  /**
   * Name of the gateway's Service.
   * @default 'proxy'
   */
  readonly serviceName?: string;
  /**
   * Namespace of the gateway's Service.
   * @default 'egress'
   */
  readonly serviceNamespace?: string;
  /**
   * The cluster's DNS domain.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
  /**
   * Name suffixes that mark a call for the gateway: `http://api.github.com.<suffix>/` resolves
   * to the gateway's Service. Outside the cluster the names do not resolve, so a misrouted
   * plaintext call fails instead of leaving.
   *
   * `.local` is the mDNS domain (RFC 6762): systemd-resolved, macOS and some musl/Alpine
   * setups answer it with multicast DNS or never send it to the cluster DNS. Prefer
   * `egress.internal` (`.internal` is reserved for private use) where those resolvers run.
   *
   * @default ['egress.local']
   */
  readonly suffixes?: string[];
  /**
   * Real host names to rewrite to the gateway cluster-wide, for transparent TLS passthrough on
   * port 443: `api.github.com` then resolves to the gateway, which must run its TLS
   * passthrough listener on the Service's port 443 and forwards by SNI.
   *
   * Off by default, because it hijacks the name for every pod using the cluster DNS,
   * including the gateway itself: the gateway must resolve upstream names through resolvers
   * that do not carry this rewrite (e.g. a pod `dnsConfig` with `dnsPolicy: None`), or it
   * will dial itself. TLS stays end to end (the gateway never holds the certificate), so
   * clients still verify the real server and certificate pinning keeps working.
   *
   * @default - no host is hijacked
   */
  readonly hijackHosts?: string[];
}

/** Options of `EgressGateway.addDnsRewrite()`: the DnsRewrite props the gateway does not know. */
export interface EgressGatewayAddDnsRewriteOptions {
  /** How the rewrite reaches the cluster's DNS. */
  readonly flavor: IDnsFlavor;
  /**
   * Real host names to rewrite to the gateway; needs the gateway's `tlsPassthrough`.
   * See `DnsRewriteProps.hijackHosts` for the risks.
   * @default - none
   */
  readonly hijackHosts?: string[];
}

/** What a gateway tells `DnsRewrite._forGateway()` about itself. */
interface GatewayDnsFacts {
  readonly serviceName: string;
  readonly namespace: string;
  readonly clusterDomain: string;
  readonly suffixes: string[];
  readonly tlsPassthrough: boolean;
}

/**
 * DNS configuration that makes `<name>.<suffix>` resolve to the egress gateway's Service, for
 * CoreDNS (`coredns-custom`, a printable snippet, or, replacing it, the whole `coredns`
 * ConfigMap) or kube-dns (stub domain + small CoreDNS). See `DnsFlavor` for which one is safe on
 * which cluster.
 *
 * The rule is `rewrite stop { name regex ^(.+)\.egress\.local\.$ <gateway> answer auto }`:
 * anchored, every dot escaped, and with the answer rewritten back to the asked name so that
 * resolvers accept it. `answer auto` needs CoreDNS 1.8.4 or later (Kubernetes 1.22+).
 *
 * @see https://coredns.io/plugins/rewrite/
 *
 * @example
 * // Usually through the gateway, which knows its Service and suffixes:
 * gateway.addDnsRewrite('Dns', { flavor: DnsFlavor.corednsCustom() });
 * // Or standalone, for a gateway deployed some other way:
 * new DnsRewrite(chart, 'Dns', {
 *   flavor: DnsFlavor.snippetOnly(),
 *   serviceName: 'proxy',
 *   serviceNamespace: 'egress',
 *   suffixes: ['egress.local'],
 * });
 */
export class DnsRewrite extends Construct {
  /** @internal EgressGateway's seam: a DnsRewrite for the gateway's Service and suffixes. */
  public static _forGateway(gateway: Construct, id: string, facts: GatewayDnsFacts, options: EgressGatewayAddDnsRewriteOptions): DnsRewrite {
    if ((options.hijackHosts ?? []).length > 0 && !facts.tlsPassthrough) {
      throw new Error(`EgressGateway "${gateway.node.path}": addDnsRewrite() 'hijackHosts' ${JSON.stringify(options.hijackHosts)} needs the gateway's TLS passthrough listener, which is off; set 'tlsPassthrough: true' on the gateway or drop 'hijackHosts'`);
    }
    return new DnsRewrite(gateway, id, {
      flavor: options.flavor,
      hijackHosts: options.hijackHosts,
      serviceName: facts.serviceName,
      serviceNamespace: facts.namespace,
      clusterDomain: facts.clusterDomain,
      suffixes: facts.suffixes,
    });
  }

  /** The rewrite lines, to paste into the root server block of a Corefile managed elsewhere. */
  public readonly snippet: string;
  /** The name clients' queries are rewritten to ('proxy.egress.svc.cluster.local'). */
  public readonly targetName: string;
  /** The suffixes rewritten. */
  public readonly suffixes: string[];
  /** The real host names rewritten (hijacked). */
  public readonly hijackHosts: string[];

  constructor(scope: Construct, id: string, props: DnsRewriteProps) {
    super(scope, id);
    const serviceName = props.serviceName ?? 'proxy';
    const serviceNamespace = props.serviceNamespace ?? 'egress';
    const clusterDomain = props.clusterDomain ?? 'cluster.local';
    const suffixes = props.suffixes ?? [DEFAULT_EGRESS_SUFFIX];
    const hijackHosts = props.hijackHosts ?? [];

    const problems: string[] = [];
    const checkName = (prop: string, value: string) => {
      const problem = dnsNameProblem(value);
      if (problem) {
        const hint = value.toLowerCase().replace(/^\.+|\.+$/g, '').replace(/\.{2,}/g, '.');
        problems.push(`'${prop}' ${JSON.stringify(value)} is not a valid DNS name: ${problem}${hint !== value && !dnsNameProblem(hint) ? `; did you mean "${hint}"?` : ''}`);
      }
      return !problem;
    };
    if (!props.flavor) problems.push("'flavor' is required: choose DnsFlavor.corednsConfigMap(), corednsCustom(), kubeDns({ clusterIp }) or snippetOnly()");
    checkName('serviceName', serviceName);
    checkName('serviceNamespace', serviceNamespace);
    checkName('clusterDomain', clusterDomain);
    if (suffixes.length === 0) problems.push("'suffixes' is empty; give at least one, e.g. [\"egress.local\"]");
    const seen = new Set<string>();
    for (const s of suffixes) {
      if (!checkName('suffixes', s)) continue;
      if (seen.has(s)) problems.push(`'suffixes' lists ${JSON.stringify(s)} twice; list each suffix once`);
      seen.add(s);
      if (s === clusterDomain || s.endsWith(`.${clusterDomain}`) || clusterDomain.endsWith(`.${s}`)) {
        problems.push(`'suffixes' entry ${JSON.stringify(s)} overlaps the cluster domain "${clusterDomain}"; use a suffix of its own such as "egress.internal"`);
      }
    }
    for (const h of hijackHosts) {
      if (!checkName('hijackHosts', h)) continue;
      if (seen.has(h)) problems.push(`'hijackHosts' lists ${JSON.stringify(h)} twice or also as a suffix; list it once`);
      seen.add(h);
      if (h === clusterDomain || h.endsWith(`.${clusterDomain}`)) {
        problems.push(`'hijackHosts' entry ${JSON.stringify(h)} is a cluster name; only external names can be hijacked`);
      }
      const underSuffix = suffixes.find(s => h.endsWith(`.${s}`));
      if (underSuffix) problems.push(`'hijackHosts' entry ${JSON.stringify(h)} is already under the suffix "${underSuffix}"; remove it`);
    }
    if (problems.length) {
      throw new Error(`DnsRewrite ${this.node.path}: invalid props:\n- ${problems.join('\n- ')}`);
    }

    this.targetName = `${serviceName}.${serviceNamespace}.svc.${clusterDomain}`;
    this.suffixes = [...suffixes];
    this.hijackHosts = [...hijackHosts];
    const rules: RewriteRuleSpec[] = [
      ...suffixes.map(s => ({ type: 'regex' as const, from: suffixRegex(s), to: this.targetName })),
      ...hijackHosts.map(h => ({ type: 'exact' as const, from: h, to: this.targetName })),
    ];
    const rewriteLines = rules.flatMap(renderRewriteRule);
    this.snippet = rewriteLines.join('\n') + '\n';

    props.flavor.bind(this, {
      targetName: this.targetName,
      targetNamespace: serviceNamespace,
      clusterDomain,
      suffixes: this.suffixes,
      hijackHosts: this.hijackHosts,
      rewriteLines,
    });
  }
}
