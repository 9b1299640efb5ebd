// Classify what a client asked for (Host under an egress suffix, absolute-form URI, CONNECT
// authority, TLS SNI) into a normalised Target for decide(). No I/O.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { Caller } from './caller';
import type { Target, TargetProtocol } from './decide';
import { EgressError } from './errors';
import { ambiguousPath, normalizePath, unescapeAmbiguousPath, type AmbiguousPathKind } from './route-match';
import { isHostName } from '../model/names';
import type { AmbiguousPathsSpec } from '../model/proxy-config';

const NON_ASCII = /[^\x00-\x7f]/;
const NON_LATIN1 = /[^\x00-\xff]/;

/**
 * An internationalised name in its A-label (punycode) form, the one DNS, certificates, SNI and
 * the config use, so that policy, metrics and logs see one spelling: 'bücher.example' →
 * 'xn--bcher-kva.example'. node:http hands header bytes over as latin1, so UTF-8 sent raw in a
 * Host header is decoded first. ASCII input is returned as is (no work on the common path);
 * undefined when the name is not a valid IDN.
 */
export function toALabels(raw: string): string | undefined {
  if (!NON_ASCII.test(raw)) return raw;
  let text = raw;
  if (!NON_LATIN1.test(raw)) {
    const utf8 = Buffer.from(raw, 'latin1').toString('utf8');
    if (!utf8.includes('\ufffd')) text = utf8;
  }
  const ascii = domainToASCII(text);
  return ascii === '' ? undefined : ascii;
}

/** A-labels, lower case and one trailing dot dropped; undefined if what is left is not a DNS name. */
export function normaliseDnsName(raw: string): string | undefined {
  const ascii = toALabels(raw);
  if (ascii === undefined) return undefined;
  let name = ascii.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  return isHostName(name) ? name : undefined;
}

/** Split 'host', 'host:port', '[v6]' or '[v6]:port'. Undefined when malformed. */
export function splitHostPort(authority: string): { host: string; port?: number } | undefined {
  let host: string;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end < 0) return undefined;
    host = authority.slice(1, end);
    const rest = authority.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portText = rest.slice(1);
    }
    if (isIP(host) !== 6) return undefined;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon >= 0) {
      if (authority.indexOf(':') !== colon) return undefined; // bare IPv6 without brackets
      host = authority.slice(0, colon);
      portText = authority.slice(colon + 1);
    } else {
      host = authority;
    }
  }
  if (host === '') return undefined;
  if (portText === undefined) return { host };
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}

/** Normalise a destination host: DNS name (lower case, no trailing dot) or an IP literal. */
function destinationHost(raw: string, allowIp: boolean): string {
  if (isIP(raw)) {
    if (!allowIp) throw new EgressError('BAD_REQUEST', 'IP literal under an egress suffix');
    return raw.toLowerCase();
  }
  const name = normaliseDnsName(raw);
  if (!name) throw new EgressError('BAD_REQUEST', 'invalid host name');
  return name;
}

/** Origin-form Host values a SuffixMatcher remembers; past this many it forgets them all and starts over. */
const AUTHORITY_MEMO_MAX = 1024;

/** The destination an origin-form Host names: the name under the suffix, and the port if given. */
export interface OriginAuthority {
  readonly host: string;
  readonly port?: number;
}

/**
 * The egress suffixes of a config, precompiled as '.suffix' for endsWith checks, and the Host
 * values already classified under them (a client sends the same few on every request).
 */
export class SuffixMatcher {
  private readonly dotted: readonly string[];
  private readonly authorities = new Map<string, OriginAuthority>();
  constructor(suffixes: readonly string[]) {
    this.dotted = suffixes.map((s) => `.${s.toLowerCase().replace(/^\.+|\.+$/g, '')}`);
  }

  /**
   * What an origin-form request's Host names. Throws BAD_REQUEST for a malformed one and
   * UNKNOWN_NAME for one under no suffix; only accepted values are remembered, at most
   * AUTHORITY_MEMO_MAX, so junk costs its own work each time and no more memory.
   */
  public origin(authority: string): OriginAuthority {
    const known = this.authorities.get(authority);
    if (known !== undefined) return known;
    const hp = splitHostPort(authority);
    if (!hp) throw new EgressError('BAD_REQUEST', 'malformed Host header');
    const ascii = toALabels(hp.host);
    if (ascii === undefined) throw new EgressError('BAD_REQUEST', 'invalid host name');
    const lower = ascii.toLowerCase().replace(/\.$/, '');
    const name = this.strip(lower);
    if (name === undefined) throw new EgressError('UNKNOWN_NAME');
    const host = destinationHost(name, false);
    const origin: OriginAuthority = hp.port === undefined ? { host } : { host, port: hp.port };
    if (this.authorities.size >= AUTHORITY_MEMO_MAX) this.authorities.clear();
    this.authorities.set(authority, origin);
    return origin;
  }
  /** The name without its suffix, or undefined when no suffix matches. Input is lower case. */
  public strip(name: string): string | undefined {
    for (const d of this.dotted) {
      if (name.length > d.length && name.endsWith(d)) return name.slice(0, name.length - d.length);
    }
    return undefined;
  }
}

export interface ClassifiedRequest {
  readonly target: Target;
  /** Origin-form path and query to send upstream. */
  readonly path: string;
  /** The request used absolute-form (http_proxy style). */
  readonly absolute: boolean;
  /**
   * With ambiguousPaths 'Reject': what made the path ambiguous. The caller refuses the request
   * (400) when a route that takes the host restricts paths (decide's pathRestricted()); elsewhere
   * it is forwarded as received.
   */
  readonly ambiguity?: AmbiguousPathKind;
}

export interface RequestLike {
  readonly method: string;
  readonly url: string;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Name, value, name, value... as received: Node keeps only the first of repeated Host lines in `headers`. */
  readonly rawHeaders?: readonly string[];
}

/** How many `Host` field lines the request carried (node:http folds repeats away in `headers`). */
function hostLines(raw: readonly string[] | undefined): number {
  if (!raw) return 0;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

/**
 * The authority a request names, from HTTP/2's `:authority` or else `Host`. More than one Host
 * line is a 400 (RFC 9112 §3.2: the first and the last would name different servers to different
 * hops), and so is an HTTP/2 Host that names another authority than `:authority` (RFC 9113 §8.3.1).
 */
export function requestAuthority(req: Pick<RequestLike, 'headers' | 'rawHeaders'>): string | undefined {
  if (hostLines(req.rawHeaders) > 1) throw new EgressError('BAD_REQUEST', 'more than one Host header');
  const h = req.headers;
  const pseudo = h[':authority'];
  const host = h.host;
  if (typeof pseudo === 'string') {
    if (typeof host === 'string' && host.toLowerCase() !== pseudo.toLowerCase()) {
      throw new EgressError('BAD_REQUEST', 'Host header differs from :authority');
    }
    return pseudo;
  }
  return typeof host === 'string' ? host : undefined;
}

/** Same host (case-insensitive, one trailing dot ignored) and port (absent means `dfltPort`). */
function sameAuthority(a: { host: string; port?: number }, b: { host: string; port?: number }, dfltPort: number): boolean {
  const norm = (h: string) => h.toLowerCase().replace(/\.$/, '');
  return norm(a.host) === norm(b.host) && (a.port ?? dfltPort) === (b.port ?? dfltPort);
}

function isGrpc(headers: RequestLike['headers']): boolean {
  const ct = headers['content-type'];
  return typeof ct === 'string' && ct.startsWith('application/grpc');
}

function splitPathQuery(pathAndQuery: string): { path: string; query?: string } {
  const q = pathAndQuery.indexOf('?');
  return q < 0 ? { path: pathAndQuery } : { path: pathAndQuery.slice(0, q), query: pathAndQuery.slice(q + 1) };
}

/**
 * A plaintext HTTP request: absolute-form (when forwardProxy is on) or origin-form with
 * `Host: <name>.<suffix>`. Throws BAD_REQUEST for malformed input and UNKNOWN_NAME when the
 * request is not addressed to the gateway.
 */
export function classifyHttp(
  req: RequestLike, authority: string | undefined, suffixes: SuffixMatcher, forwardProxy: boolean, parentPort: number, pick: number,
  ambiguousPaths: AmbiguousPathsSpec = 'Reject', caller?: Caller,
): ClassifiedRequest {
  const protocol: TargetProtocol = isGrpc(req.headers) ? 'grpc' : 'http';
  let host: string;
  let port = parentPort;
  let pathAndQuery: string;
  let absolute = false;
  if (req.url.startsWith('/')) {
    pathAndQuery = req.url;
    if (!authority) throw new EgressError('BAD_REQUEST', 'missing Host header');
    const origin = suffixes.origin(authority);
    host = origin.host;
    // The gateway Service exposes every HTTP-family service port (gRPC on 9000, say) on this one
    // listener; only the Host port tells them apart, and it names the service port to use.
    if (origin.port !== undefined) port = origin.port;
  } else {
    if (!forwardProxy) throw new EgressError('UNKNOWN_NAME', 'absolute-form request without forwardProxy');
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      throw new EgressError('BAD_REQUEST', 'malformed request target');
    }
    if (url.protocol !== 'http:') throw new EgressError('BAD_REQUEST', 'absolute-form scheme must be http');
    if (url.username || url.password) throw new EgressError('BAD_REQUEST', 'credentials in request target');
    absolute = true;
    const rawHost = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    // RFC 9112 §3.2: a client sends a Host identical to the target's authority. A different one
    // would let a hop that reads Host (a header match, a sidecar, the upstream) see another server
    // than the one policy decided on.
    if (authority !== undefined) {
      const hp = splitHostPort(authority);
      const hostAscii = hp ? toALabels(hp.host) : undefined;
      const targetAuthority = { host: rawHost, port: url.port ? Number(url.port) : undefined };
      if (!hp || hostAscii === undefined || !sameAuthority({ host: hostAscii, port: hp.port }, targetAuthority, 80)) {
        throw new EgressError('BAD_REQUEST', 'Host header differs from the request target');
      }
    }
    const lower = rawHost.toLowerCase().replace(/\.$/, '');
    const stripped = isIP(lower) ? undefined : suffixes.strip(lower);
    host = destinationHost(stripped ?? lower, stripped === undefined);
    port = url.port ? Number(url.port) : 80;
    pathAndQuery = `${url.pathname}${url.search}`;
  }
  const split = splitPathQuery(pathAndQuery);
  // Match and forward the same, dot-segment-free path: '/get/../admin' must not pass a '/get'
  // rule and then reach '/admin' upstream. A path servers read in different ways ('/get/..%2fip')
  // is decoded, or kept as received, per ambiguousPaths; either way the one path is matched and sent.
  const ambiguity = ambiguousPath(split.path);
  const path = ambiguity === undefined ? normalizePath(split.path)
    : ambiguousPaths === 'UnescapeAndForward' ? normalizePath(unescapeAmbiguousPath(split.path))
      : normalizePath(split.path, false);
  if (path === undefined) throw new EgressError('BAD_REQUEST', 'request path climbs above the root');
  const query = split.query;
  if (path !== split.path) pathAndQuery = query === undefined ? path : `${path}?${query}`;
  return {
    target: { protocol, host, port, method: req.method, path, query, headers: req.headers, pick, caller },
    path: pathAndQuery,
    absolute,
    ambiguity: ambiguousPaths === 'Reject' ? ambiguity : undefined,
  };
}

/** A CONNECT authority 'host:port': protocol 'tls' for 443, else 'tcp'. `caller` from the CONNECT request's headers. */
export function classifyConnect(authority: string, suffixes: SuffixMatcher, caller?: Caller): Target {
  const hp = splitHostPort(authority);
  if (!hp || hp.port === undefined) throw new EgressError('BAD_REQUEST', 'CONNECT needs host:port');
  const ascii = toALabels(hp.host);
  if (ascii === undefined) throw new EgressError('BAD_REQUEST', 'invalid host name');
  const lower = ascii.toLowerCase().replace(/\.$/, '');
  const stripped = isIP(lower) ? undefined : suffixes.strip(lower);
  const host = destinationHost(stripped ?? lower, stripped === undefined);
  return { protocol: hp.port === 443 ? 'tls' : 'tcp', host, port: hp.port, caller };
}

/** A TLS ClientHello's SNI. IP literals are not valid SNI (RFC 6066). */
export function classifySni(serverName: string, parentPort: number): Target {
  const host = normaliseDnsName(serverName);
  if (!host) throw new EgressError('BAD_REQUEST', 'invalid SNI');
  return { protocol: 'tls', host, port: parentPort };
}
