// Names, for both halves: what a Kubernetes name (RFC 1123 label or subdomain) and a host name
// the proxy matches are, and the one wording of the problem when a value is not one.

/** An RFC 1123 label (Kubernetes' DNS-1123 label): namespaces, Service names, label-like names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_LABEL_MAX = 63;
/** An RFC 1123 subdomain (Kubernetes object names such as Secret and ConfigMap): labels joined by '.'. */
export const DNS_SUBDOMAIN_MAX = 253;

/** A lower-case RFC 1123 label of at most 63 characters. */
export function isDnsLabel(value: unknown): value is string {
  return typeof value === 'string' && value.length <= DNS_LABEL_MAX && DNS_LABEL.test(value);
}

/** A lower-case RFC 1123 subdomain of at most 253 characters. */
export function isDnsSubdomain(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= DNS_SUBDOMAIN_MAX
    && value.split('.').every((l) => DNS_LABEL.test(l));
}

/** What is wrong with a name and what to write instead, phrased to follow the quoted value. */
export interface NameProblem {
  readonly rule: string;
  readonly fix: string;
}

export interface NameProblemOptions {
  /** What the name is, for the message: "a namespace", "a Kubernetes object name". */
  readonly what?: string;
  /** The fix to suggest instead of a repaired name. */
  readonly fix?: string;
}

/** `value` as a label: lower case, runs of other characters (dots too) to '-', at most 63. */
export function suggestDnsLabel(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, DNS_LABEL_MAX).replace(/-+$/, '');
}

/** `value` as a subdomain: lower case, runs of other characters but '.' to '-'. */
export function suggestDnsSubdomain(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/-*\.+-*/g, '.').replace(/^[-.]+|[-.]+$/g, '').slice(0, DNS_SUBDOMAIN_MAX);
}

const LABEL_CHARS = 'lower-case letters, digits and "-", at most 63 characters';
const SUBDOMAIN_CHARS = 'lower-case letters, digits, "-" and ".", at most 253 characters';

const detail = (what: string | undefined, chars: string) => (what ? `${what}: ${chars}` : chars);
const example = (suggested: string, fallback: string) => `use e.g. ${JSON.stringify(suggested || fallback)}`;

/** The problem with `value` as a DNS label, or undefined when it is one. */
export function dnsLabelProblem(value: unknown, options: NameProblemOptions = {}): NameProblem | undefined {
  if (isDnsLabel(value)) return undefined;
  return {
    rule: `is not a DNS label (${detail(options.what, LABEL_CHARS)})`,
    fix: options.fix ?? example(suggestDnsLabel(String(value ?? '')), 'egress'),
  };
}

/** The problem with `value` as a DNS subdomain, or undefined when it is one. */
export function dnsSubdomainProblem(value: unknown, options: NameProblemOptions = {}): NameProblem | undefined {
  if (isDnsSubdomain(value)) return undefined;
  return {
    rule: `is not a DNS subdomain (${detail(options.what, SUBDOMAIN_CHARS)})`,
    fix: options.fix ?? example(suggestDnsSubdomain(String(value ?? '')), 'egress'),
  };
}

// Host names, not just RFC 1123 ones: '_' is valid in DNS (RFC 2181 §11) and real SaaS tenant
// names carry it; only a leading or trailing '-' is refused, as resolvers and CAs do.
const HOST_LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A host name the proxy matches: labels of letters, digits, '-' and '_' (lower case), at most 253 bytes. */
export function isHostName(name: string): boolean {
  if (name.length === 0 || name.length > DNS_SUBDOMAIN_MAX) return false;
  const labels = name.split('.');
  for (const l of labels) if (!HOST_LABEL.test(l)) return false;
  return true;
}

/** An exact host name or a leading wildcard '*.example.com'. */
export function isHostPattern(pattern: string): boolean {
  return pattern.startsWith('*.') ? isHostName(pattern.slice(2)) : isHostName(pattern);
}
