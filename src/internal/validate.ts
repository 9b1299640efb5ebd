// Field checks shared by the egress constructs, mirroring what the Gateway API and Linkerd CRDs
// and controllers accept. Each returns the problems found (prop '' means the value itself).
import type { Problem } from './problems';
import { dnsLabelProblem, dnsSubdomainProblem } from '../model/names';

// Gateway API Hostname: an optional leading '*.' label, then a DNS-1123 subdomain.
const ROUTE_HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// RFC 7230 token, as the Gateway API HTTPHeaderName pattern states it.
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
// Gateway API: Exact and PathPrefix values may only hold these characters and %-escapes.
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;
const IPV4ISH = /^[0-9.]+$/;

function problem(rule: string, fix: string, value: unknown, prop = ''): Problem {
  return { prop, value, rule, fix };
}

export function checkPort(value: number | undefined): Problem[] {
  if (value === undefined) return [];
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    return [problem('must be an integer port in 1-65535', 'use the port the clients dial, e.g. 80 or 443', value)];
  }
  return [];
}

export function checkDnsLabel(value: string, what: string): Problem[] {
  const p = dnsLabelProblem(value, { what });
  return p ? [problem(p.rule, p.fix, value)] : [];
}

export function checkDnsSubdomain(value: string, what: string): Problem[] {
  const p = dnsSubdomainProblem(value, { what });
  return p ? [problem(p.rule, p.fix, value)] : [];
}

export interface HostnameCheckOptions {
  /** TLS SNI and HTTP Host matching: a name, never an address. */
  readonly purpose: string;
}

/** A Gateway API route hostname: DNS name or '*.' wildcard, lower case, not an IP address. */
export function checkRouteHostname(value: string, opts: HostnameCheckOptions): Problem[] {
  if (value.length === 0) return [problem('must not be empty', 'remove the entry or name a host, e.g. "api.example.com"', value)];
  if (IPV4ISH.test(value) || value.includes(':')) {
    return [problem(`is an IP address; Gateway API hostnames are DNS names (${opts.purpose})`,
      'name the host instead, or leave hostnames out and narrow the EgressNetwork networks to the address', value)];
  }
  if (value.length > 253 || !ROUTE_HOSTNAME.test(value)) {
    const lower = value.toLowerCase();
    const hint = lower !== value && ROUTE_HOSTNAME.test(lower)
      ? `write it in lower case: ${JSON.stringify(lower)}`
      : value.includes('*') && !value.startsWith('*.')
        ? 'a wildcard may only be the whole first label, e.g. "*.example.com"'
        : value.includes('..') ? `remove the empty label: ${JSON.stringify(value.replace(/\.{2,}/g, '.'))}`
          : 'use a DNS name such as "api.example.com" or a wildcard such as "*.example.com"';
    return [problem(`is not a valid hostname (${opts.purpose})`, hint, value)];
  }
  return [];
}

export function checkHeaderName(value: string): Problem[] {
  if (value.length === 0 || value.length > 256 || !HEADER_NAME.test(value)) {
    return [problem('is not a valid HTTP header name (RFC 7230 token: letters, digits and !#$%&\'*+-.^_`|~, at most 256 characters)',
      `use e.g. ${JSON.stringify(value.replace(/[^A-Za-z0-9!#$%&'*+\-.^_`|~]+/g, '-').replace(/^-+|-+$/g, '') || 'x-example')}`, value)];
  }
  return [];
}

export function checkValueLength(value: string, max: number, what: string): Problem[] {
  if (value.length === 0) return [problem(`must not be empty (${what})`, 'give a value, or remove the entry', value)];
  if (value.length > max) return [problem(`is ${value.length} characters; ${what} allows at most ${max}`, 'shorten it', value)];
  return [];
}

/**
 * A regular expression Linkerd's proxy can run: it must compile, and it must stay within the RE2
 * family (Rust's regex crate, like RE2, has no lookaround and no backreferences).
 */
export function checkRegex(value: string): Problem[] {
  const found: Problem[] = [];
  try {
    new RegExp(value);
  } catch (e) {
    found.push(problem(`does not compile as a regular expression (${(e as Error).message})`, 'fix the syntax, e.g. escape literal characters such as "." or "("', value));
    return found;
  }
  const unsupported = findUnsupportedRegexSyntax(value);
  if (unsupported) {
    found.push(problem(`uses ${unsupported}, which RE2-style engines (Linkerd's proxy, Envoy) do not support`,
      'rewrite it without lookaround or backreferences, e.g. match the positive form and list alternatives', value));
  }
  return found;
}

function findUnsupportedRegexSyntax(src: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      const n = src[i + 1];
      if (!inClass && n !== undefined && /[1-9]/.test(n)) return `a backreference (\\${n})`;
      if (!inClass && n === 'k' && src[i + 2] === '<') return 'a named backreference (\\k<...>)';
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      inClass = true;
      if (src[i + 1] === ']') i++;
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2, i + 4);
      if (rest.startsWith('<=') || rest.startsWith('<!')) return 'a lookbehind ((?<= or (?<!)';
      if (rest.startsWith('=') || rest.startsWith('!')) return 'a lookahead ((?= or (?!)';
    }
  }
  return undefined;
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';

/** An HTTPRoute path match value, with the Gateway API's rules for each type. */
export function checkPathValue(type: PathMatchType, value: string): Problem[] {
  if (value.length > 1024) return [problem(`is ${value.length} characters; Gateway API allows at most 1024`, 'shorten it or match a prefix', value)];
  if (type === 'RegularExpression') return checkRegex(value);
  const found: Problem[] = [];
  if (!value.startsWith('/')) {
    found.push(problem(`must start with '/' (${type} paths are absolute)`, `use ${JSON.stringify('/' + value.replace(/^\/*/, ''))}`, value));
    return found;
  }
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
    if (value.includes(bad)) {
      found.push(problem(`must not contain '${bad}' (the Gateway API rejects unnormalised paths)`, 'write the normalised path', value));
      return found;
    }
  }
  if (value.endsWith('/..') || value.endsWith('/.')) {
    found.push(problem("must not end with '/.' or '/..'", 'write the normalised path', value));
  } else if (!PATH_CHARS.test(value)) {
    found.push(problem('holds characters a URL path may not carry unescaped', 'percent-encode them (e.g. a space as %20)', value));
  }
  return found;
}

/** Gateway API Duration: up to four `<1-5 digits><h|m|s|ms>` parts. Undefined when not representable. */
export function formatGatewayDuration(ms: number): string | undefined {
  if (!Number.isInteger(ms) || ms < 0) return undefined;
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = Math.floor(rest / 1000);
  rest -= s * 1000;
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (s) parts.push(`${s}s`);
  if (rest) parts.push(`${rest}ms`);
  if (h > 99_999) return undefined;
  return parts.join('');
}

/** Linkerd annotation duration: one integer with a unit (ms, s, m, h); fractions are rejected. */
export function formatLinkerdDuration(ms: number): string | undefined {
  if (!Number.isInteger(ms) || ms < 0) return undefined;
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
