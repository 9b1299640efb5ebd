// DNS name, label, IP and CIDR checks that phrase a precise rule and, where it can, a repaired value.
import { isIP } from 'net';
import { parseCidr } from './cidr';
import { isDnsLabel } from '../model/names';

export interface NameProblem {
  /** e.g. `is not a valid DNS name (empty label)` */
  readonly rule: string;
  /** e.g. `did you mean "api.github.com"?` */
  readonly fix: string;
}

export interface DnsNameOptions {
  /** Accept a leading `*.` label (Gateway API hostname wildcards). */
  readonly wildcard?: boolean;
}

/** Why `name` is not a lower-case RFC 1123 DNS name, or undefined when it is one. */
export function dnsNameReason(name: string, options: DnsNameOptions = {}): string | undefined {
  if (name.length === 0) return 'empty';
  if (isIP(name) !== 0) return 'an IP address';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(name)) return 'has a URL scheme';
  if (name.includes('/')) return 'has a path';
  if (name.includes(':')) return 'has a port';
  if (/\s/.test(name)) return 'has whitespace';
  if (name.endsWith('.') && name.length > 1) return 'trailing dot';
  if (name !== name.toLowerCase()) return 'upper-case letters';
  if (name.length > 253) return 'longer than 253 characters';
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label === '') return 'empty label';
    if (label.includes('*')) {
      if (!options.wildcard) return 'wildcards are not allowed here';
      if (label !== '*' || i !== 0) return 'a wildcard must be the whole leftmost label, as in "*.example.com"';
      if (labels.length < 2) return 'a wildcard needs a domain after it, as in "*.example.com"';
      continue;
    }
    if (label.length > 63) return `label "${label.slice(0, 20)}..." is longer than 63 characters`;
    if (label.startsWith('-') || label.endsWith('-')) return `label "${label}" starts or ends with "-"`;
    if (!isDnsLabel(label)) {
      const bad = [...label].find((c) => !/[a-z0-9-]/.test(c));
      return `label "${label}" has character ${JSON.stringify(bad)}; only a-z, 0-9 and "-" are allowed`;
    }
  }
  if (labels.length > 1 && /^[0-9]+$/.test(labels[labels.length - 1])) return 'top-level label is all digits';
  return undefined;
}

/** A best-effort repair of a near-miss name: scheme, path, port, case, empty labels, trailing dot. */
export function repairDnsName(name: string): string {
  let s = name.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  s = s.split('/')[0];
  if (isIP(s) === 0) s = s.replace(/:\d*$/, '');
  s = s.toLowerCase().replace(/_/g, '-');
  return s.split('.').filter((l) => l !== '').map((l) => l.replace(/^-+|-+$/g, '')).join('.');
}

/** The problem with `name` as a DNS name, phrased for an error message, or undefined. */
export function dnsNameProblem(name: string, options: DnsNameOptions = {}): NameProblem | undefined {
  if (typeof name !== 'string') {
    return { rule: 'is not a string', fix: 'give a DNS name such as "api.example.com"' };
  }
  const reason = dnsNameReason(name, options);
  if (!reason) return undefined;
  if (reason === 'an IP address') {
    return {
      rule: 'is an IP address, not a DNS name',
      fix: 'give the DNS name clients use and list the address under \'endpoints\'',
    };
  }
  const repaired = repairDnsName(name);
  const fix = repaired !== name && repaired.length > 0 && dnsNameReason(repaired, options) === undefined
    ? `did you mean ${JSON.stringify(repaired)}?`
    : `use a lower-case DNS name such as ${options.wildcard ? '"api.example.com" or "*.example.com"' : '"api.example.com"'}`;
  return { rule: `is not a valid DNS name (${reason})`, fix };
}

/** True for an IPv4 or IPv6 address literal. */
export function isIpAddress(value: string): boolean {
  return typeof value === 'string' && isIP(value) !== 0;
}

/** Why `value` is not a CIDR the proxy accepts (`10.0.0.0/8`, `fd00::/8`), or undefined. */
export function cidrReason(value: string): string | undefined {
  if (typeof value !== 'string') return 'is not a string';
  try {
    parseCidr(value);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
