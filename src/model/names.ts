// Names, for both halves: what a Kubernetes name (RFC 1123 label or subdomain) and a host name
// the proxy matches are, and the one wording of the problem when a value is not one.

export const DNS_LABEL_MAX = 63;
export const DNS_SUBDOMAIN_MAX = 253;

function isLabelChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45; // a-z 0-9 -
}

/** `s.slice(from, to)` is lower-case letters, digits and '-', not at either end, and not empty. */
function isLabelShape(s: string, from: number, to: number): boolean {
  if (to <= from || s.charCodeAt(from) === 45 || s.charCodeAt(to - 1) === 45) return false;
  for (let i = from; i < to; i++) if (!isLabelChar(s.charCodeAt(i))) return false;
  return true;
}

/**
 * `s.slice(from, to)` is an RFC 1123 label (Kubernetes' DNS-1123 label: namespaces, Service
 * names): lower-case letters, digits and '-', not at either end, 1 to 63 characters. No regex and
 * no slice: the proxy runs it per request on parts of an identity.
 */
export function isDnsLabelAt(s: string, from = 0, to = s.length): boolean {
  return to - from <= DNS_LABEL_MAX && isLabelShape(s, from, to);
}

/**
 * `s.slice(from, to)` is an RFC 1123 subdomain as Kubernetes checks object names (Secret,
 * ServiceAccount): label-shaped parts joined by '.', at most 253 characters in all (Kubernetes
 * bounds the whole name, not each part).
 */
export function isDnsSubdomainAt(s: string, from = 0, to = s.length): boolean {
  if (to - from < 1 || to - from > DNS_SUBDOMAIN_MAX) return false;
  let start = from;
  for (let i = from; i <= to; i++) {
    if (i === to || s.charCodeAt(i) === 46) {
      if (!isLabelShape(s, start, i)) return false;
      start = i + 1;
    }
  }
  return true;
}

/** A lower-case RFC 1123 label of at most 63 characters. */
export function isDnsLabel(value: unknown): value is string {
  return typeof value === 'string' && isDnsLabelAt(value);
}

/** A lower-case RFC 1123 subdomain of at most 253 characters. */
export function isDnsSubdomain(value: unknown): value is string {
  return typeof value === 'string' && isDnsSubdomainAt(value);
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
  /** The name suggested when nothing of the value can be repaired. @default "egress" */
  readonly fallback?: string;
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

/** The rule a value that is not a DNS label breaks, phrased to follow it: `is not a DNS label (...)`. */
export function dnsLabelRule(what?: string): string {
  return `is not a DNS label (${detail(what, LABEL_CHARS)})`;
}

/** The rule a value that is not a DNS subdomain breaks: `is not a DNS subdomain (...)`. */
export function dnsSubdomainRule(what?: string): string {
  return `is not a DNS subdomain (${detail(what, SUBDOMAIN_CHARS)})`;
}

/** The problem with `value` as a DNS label, or undefined when it is one. */
export function dnsLabelProblem(value: unknown, options: NameProblemOptions = {}): NameProblem | undefined {
  if (isDnsLabel(value)) return undefined;
  return {
    rule: dnsLabelRule(options.what),
    fix: options.fix ?? example(suggestDnsLabel(String(value ?? '')), options.fallback ?? 'egress'),
  };
}

/** The problem with `value` as a DNS subdomain, or undefined when it is one. */
export function dnsSubdomainProblem(value: unknown, options: NameProblemOptions = {}): NameProblem | undefined {
  if (isDnsSubdomain(value)) return undefined;
  return {
    rule: dnsSubdomainRule(options.what),
    fix: options.fix ?? example(suggestDnsSubdomain(String(value ?? '')), options.fallback ?? 'egress'),
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
