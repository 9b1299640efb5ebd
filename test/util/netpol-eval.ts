// A small Kubernetes NetworkPolicy (networking.k8s.io/v1) evaluator for tests: given synthesised
// policies, a cluster's namespaces and one flow, says whether the flow is allowed and why.
// It only evaluates data; it never sends a packet.
//
// Semantics (https://kubernetes.io/docs/concepts/services-networking/network-policies/):
// - a pod is isolated for a direction when any policy in its namespace selects it and lists
//   that direction in policyTypes (default: Ingress, plus Egress when the policy has egress rules);
// - an isolated pod's traffic in that direction is allowed when any rule of any selecting policy
//   allows it (rules are additive; there is no deny rule);
// - a flow between two pods needs the source's egress AND the destination's ingress to allow it;
//   a flow to an address outside the cluster is decided by the source's egress only;
// - a peer is an ipBlock (cidr minus except, address family must match), a podSelector (pods
//   in the policy's namespace), a namespaceSelector (every pod in matching namespaces), or both
//   (matching pods in matching namespaces); an empty or absent `to`/`from` matches everything;
// - ports: absent or empty matches every port and protocol; protocol defaults to TCP; a rule
//   port without `port` matches every port of its protocol; `endPort` makes a range.
import { cidrContains, parseCidr, parseIp } from '../../src/proxy/cidr';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface NamespaceInfo {
  readonly name: string;
  /** `kubernetes.io/metadata.name` is added automatically, as the API server does. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface PodInfo {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The pod's IP, matched by ipBlock peers. */
  readonly ip?: string;
  /** Name, for messages only. */
  readonly name?: string;
}

export type Endpoint = { readonly pod: PodInfo } | { readonly ip: string };

export interface Flow {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly port: number;
  readonly protocol?: Protocol;
}

export interface Verdict {
  readonly allowed: boolean;
  readonly egress: SideVerdict;
  readonly ingress: SideVerdict;
}

export interface SideVerdict {
  readonly allowed: boolean;
  /** 'not-isolated', or the policy and rule index that allowed it, or 'no rule allows'. */
  readonly reason: string;
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

interface PolicyPort { protocol?: Protocol; port?: number | string; endPort?: number }

interface PolicyRule { to?: PolicyPeer[]; from?: PolicyPeer[]; ports?: PolicyPort[] }

export interface NetworkPolicyObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: {
    podSelector?: LabelSelector;
    policyTypes?: ('Ingress' | 'Egress')[];
    ingress?: PolicyRule[];
    egress?: PolicyRule[];
  };
}

export function selectorMatches(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    switch (e.operator) {
      case 'In': if (!has || !(e.values ?? []).includes(labels[e.key])) return false; break;
      case 'NotIn': if (has && (e.values ?? []).includes(labels[e.key])) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: throw new Error(`unknown selector operator ${JSON.stringify((e as any).operator)}`);
    }
  }
  return true;
}

/** True when `ip` is inside `cidr` and of the same family (no IPv4-in-IPv6 equivalence here). */
function inBlock(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const a = parseIp(ip);
  return c.family === a.family && cidrContains(c, a);
}

export class NetworkPolicyEvaluator {
  private readonly policies: NetworkPolicyObject[];
  private readonly namespaces: Map<string, Record<string, string>>;

  constructor(objects: readonly any[], namespaces: readonly NamespaceInfo[]) {
    this.policies = objects.filter(o => o.kind === 'NetworkPolicy');
    for (const p of this.policies) {
      if (p.apiVersion !== 'networking.k8s.io/v1') throw new Error(`${p.metadata.name}: unexpected apiVersion ${p.apiVersion}`);
      if (!p.metadata.namespace) throw new Error(`${p.metadata.name}: NetworkPolicy without a namespace is ambiguous in a test`);
    }
    this.namespaces = new Map(namespaces.map(n => [n.name, { ...n.labels, 'kubernetes.io/metadata.name': n.name }]));
  }

  public evaluate(flow: Flow): Verdict {
    const protocol = flow.protocol ?? 'TCP';
    const egress = 'pod' in flow.from
      ? this.side('Egress', flow.from.pod, flow.to, flow.port, protocol)
      : { allowed: true, reason: 'source outside the cluster' };
    const ingress = 'pod' in flow.to
      ? this.side('Ingress', flow.to.pod, flow.from, flow.port, protocol)
      : { allowed: true, reason: 'destination outside the cluster' };
    return { allowed: egress.allowed && ingress.allowed, egress, ingress };
  }

  public allowed(flow: Flow): boolean {
    return this.evaluate(flow).allowed;
  }

  private nsLabels(name: string): Record<string, string> {
    const labels = this.namespaces.get(name);
    if (!labels) throw new Error(`namespace ${JSON.stringify(name)} is not declared to the evaluator`);
    return labels;
  }

  private side(direction: 'Ingress' | 'Egress', subject: PodInfo, peer: Endpoint, port: number, protocol: Protocol): SideVerdict {
    this.nsLabels(subject.namespace);
    const selecting = this.policies.filter(p => p.metadata.namespace === subject.namespace
      && selectorMatches(p.spec.podSelector ?? {}, subject.labels)
      && policyTypes(p).includes(direction));
    if (selecting.length === 0) return { allowed: true, reason: 'not-isolated' };
    for (const p of selecting) {
      const rules = (direction === 'Egress' ? p.spec.egress : p.spec.ingress) ?? [];
      for (const [i, rule] of rules.entries()) {
        const peers = direction === 'Egress' ? rule.to : rule.from;
        if (!portsMatch(rule.ports, port, protocol)) continue;
        if (!peers || peers.length === 0 || peers.some(x => this.peerMatches(x, p.metadata.namespace!, peer))) {
          return { allowed: true, reason: `${p.metadata.name} ${direction.toLowerCase()}[${i}]` };
        }
      }
    }
    return { allowed: false, reason: `no rule of ${selecting.map(p => p.metadata.name).join(', ')} allows it` };
  }

  private peerMatches(peer: PolicyPeer, policyNamespace: string, endpoint: Endpoint): boolean {
    if (peer.ipBlock) {
      const ip = 'ip' in endpoint ? endpoint.ip : endpoint.pod.ip;
      if (!ip) return false;
      return inBlock(peer.ipBlock.cidr, ip) && !(peer.ipBlock.except ?? []).some(e => inBlock(e, ip));
    }
    if (!('pod' in endpoint)) return false;
    const pod = endpoint.pod;
    if (peer.namespaceSelector) {
      if (!selectorMatches(peer.namespaceSelector, this.nsLabels(pod.namespace))) return false;
    } else if (pod.namespace !== policyNamespace) {
      return false;
    }
    return selectorMatches(peer.podSelector ?? {}, pod.labels);
  }
}

function policyTypes(p: NetworkPolicyObject): ('Ingress' | 'Egress')[] {
  if (p.spec.policyTypes && p.spec.policyTypes.length) return p.spec.policyTypes;
  return p.spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
}

function portsMatch(ports: PolicyPort[] | undefined, port: number, protocol: Protocol): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some(p => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'string') throw new Error(`named port ${JSON.stringify(p.port)} is not supported by the evaluator`);
    return p.endPort !== undefined ? port >= p.port && port <= p.endPort : port === p.port;
  });
}
