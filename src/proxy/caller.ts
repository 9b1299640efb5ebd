// Who is calling: the caller's mesh identity, read from the header the pod's own sidecar sets, and
// trusted only on a connection that comes from inside the pod. Pure: addresses and headers in.
//
// What the sidecars do (the reason for each rule below):
// - Linkerd: the inbound proxy terminates the client's mTLS and sets `l5d-client-id` to the
//   client's identity, `<sa>.<ns>.serviceaccount.identity.linkerd.<trust domain>`, removing any
//   value the client sent; a client without mTLS (unmeshed) gets no header. Since Linkerd 2.11 the
//   inbound proxy connects to the application on the pod IP, from the pod IP (before, from
//   127.0.0.1): hence `PodIP` among the trusted peers.
// - Istio: the sidecar's Envoy appends an element for the client it authenticated to
//   `x-forwarded-client-cert` (XFCC): `;`-separated `Key=Value` pairs (`By`, `Hash`, `Subject`,
//   `URI`, ...), values double-quoted where they hold `,`, `;` or `=`, elements `,`-separated, the
//   one the sidecar added last. Its `URI` is the client's SPIFFE ID,
//   `spiffe://<trust domain>/ns/<ns>/sa/<sa>`. Envoy's inbound connects to the application from
//   127.0.0.6 (the iptables rules let that source pass uncaptured).
// Anyone else can send these headers too: from another pod they are ignored (the caller is
// unknown), and they are stripped from every request sent upstream (forward-http.ts).
import { CidrSet, parseCidr, tryParseIp } from './cidr';
import { DEFAULT_CALLERS, DEFAULT_TRUSTED_PEERS, TRUSTED_PEER_POD_IP } from '../model/defaults';
import { isDnsLabelAt, isDnsSubdomainAt } from '../model/names';
import type { CallerIdentitySourceSpec, CallersSpec, ClientSpec, ProxyConfig } from '../model/proxy-config';

export const LINKERD_IDENTITY_HEADER = 'l5d-client-id';
export const ISTIO_IDENTITY_HEADER = 'x-forwarded-client-cert';
/** Never forwarded upstream, whatever the identity source: they describe the hop into this pod. */
export const IDENTITY_HEADERS: readonly string[] = Object.freeze([LINKERD_IDENTITY_HEADER, ISTIO_IDENTITY_HEADER]);

/** An identified caller. `keys` are the ClientSpec keys it can match (see clientKey()). */
export interface Caller {
  /** The identity exactly as the header carried it (a Linkerd name or a SPIFFE URI). */
  readonly identity: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly keys: { readonly id: string; readonly sa: string; readonly ns: string };
}

/**
 * Why a caller is unknown:
 * - 'no-identity-source'  callers.source is None
 * - 'no-header'           no identity header (an unmeshed client, or the sidecar did not set one)
 * - 'untrusted-peer'      a header, on a connection that does not come from the pod's sidecar: ignored
 * - 'multiple-headers'    the header more than once
 * - 'unparsable'          not an identity of the configured mesh
 * - 'other-trust-domain'  an identity of another trust domain
 * - 'no-headers'          a TLS passthrough or TCP connection: bytes only, no headers to read
 */
export type UnknownCallerReason =
  | 'no-identity-source' | 'no-header' | 'untrusted-peer' | 'multiple-headers' | 'unparsable' | 'other-trust-domain' | 'no-headers';

/** The caller of one request or connection, as the log line reports it. */
export interface CallerResolution {
  /** Undefined: the caller is unknown (see `unknown`). */
  readonly caller: Caller | undefined;
  /** The connection comes from a trusted peer (the pod's own sidecar). */
  readonly trustedPeer: boolean;
  readonly unknown?: UnknownCallerReason;
}

/** The key a client entry stands for: `sa:<ns>/<name>`, `ns:<ns>` or `id:<identity>`. */
export function clientKey(c: ClientSpec): string {
  if (c.serviceAccount) return `sa:${c.serviceAccount.namespace}/${c.serviceAccount.name}`;
  if (c.namespace !== undefined) return `ns:${c.namespace}`;
  return `id:${c.identity ?? ''}`;
}

function makeCaller(identity: string, namespace: string, serviceAccount: string): Caller {
  return { identity, namespace, serviceAccount, keys: { id: `id:${identity}`, sa: `sa:${namespace}/${serviceAccount}`, ns: `ns:${namespace}` } };
}

/* ------------------------------------------------------------------------- parsers */

const LINKERD_MARK = '.serviceaccount.identity.linkerd.';

/** `<sa>.<ns>.serviceaccount.identity.linkerd.<td>` → the caller, or why not. */
export function parseLinkerdIdentity(value: string, trustDomain: string): Caller | 'unparsable' | 'other-trust-domain' {
  const suffix = LINKERD_MARK + trustDomain;
  if (!value.endsWith(suffix)) return value.includes(LINKERD_MARK) ? 'other-trust-domain' : 'unparsable';
  const mark = value.length - suffix.length;
  // The namespace is one label (no dots); the ServiceAccount name before it may hold dots.
  const dot = value.lastIndexOf('.', mark - 1);
  if (dot <= 0 || !isDnsLabelAt(value, dot + 1, mark) || !isDnsSubdomainAt(value, 0, dot)) return 'unparsable';
  return makeCaller(value, value.slice(dot + 1, mark), value.slice(0, dot));
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>` (Istio's SPIFFE ID) → the caller, or why not. */
export function parseSpiffeId(uri: string, trustDomain: string): Caller | 'unparsable' | 'other-trust-domain' {
  if (!uri.startsWith('spiffe://')) return 'unparsable';
  const slash = uri.indexOf('/', 9);
  if (slash < 0) return 'unparsable';
  if (uri.slice(9, slash) !== trustDomain) return 'other-trust-domain';
  if (!uri.startsWith('/ns/', slash)) return 'unparsable';
  const nsStart = slash + 4;
  const sa = uri.indexOf('/sa/', nsStart);
  if (sa < 0 || !isDnsLabelAt(uri, nsStart, sa) || !isDnsSubdomainAt(uri, sa + 4)) return 'unparsable';
  return makeCaller(uri, uri.slice(nsStart, sa), uri.slice(sa + 4));
}

/**
 * The `URI` values of the last element of an XFCC header (the one the nearest proxy, the pod's
 * sidecar, added), with quotes and escapes removed. Undefined when the header is malformed (an
 * unterminated quote). Elements split at `,`, pairs at `;`, key and value at the first `=`, none
 * of them inside double quotes; keys are case-insensitive.
 */
export function lastXfccElementUris(header: string): string[] | undefined {
  // The last element starts after the last comma outside quotes.
  let start = 0;
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const c = header.charCodeAt(i);
    if (quoted) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) quoted = false;
    } else if (c === 34) {
      quoted = true;
    } else if (c === 44 /* , */) {
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  const uris: string[] = [];
  let i = start;
  while (i <= header.length) {
    // One pair: key up to '=', value up to ';' or the end, either possibly quoted.
    let key = '';
    let value = '';
    let inKey = true;
    let q = false;
    for (; i < header.length; i++) {
      const ch = header[i];
      if (q) {
        if (ch === '\\' && i + 1 < header.length) value += header[++i];
        else if (ch === '"') q = false;
        else value += ch;
        continue;
      }
      if (ch === ';') break;
      if (inKey) {
        if (ch === '=') inKey = false;
        else key += ch;
      } else if (ch === '"') {
        q = true;
      } else {
        value += ch;
      }
    }
    if (!inKey && key.trim().toLowerCase() === 'uri') uris.push(value.trim());
    i++;
  }
  return uris;
}

/** The caller in an XFCC header: its last element's single URI, a SPIFFE ID of the trust domain. */
export function parseXfcc(header: string, trustDomain: string): Caller | 'unparsable' | 'other-trust-domain' {
  const uris = lastXfccElementUris(header);
  // A certificate with several URI SANs names several identities: none of them is the caller.
  if (!uris || uris.length !== 1) return 'unparsable';
  return parseSpiffeId(uris[0], trustDomain);
}

/* ------------------------------------------------------------------------- peers */

/**
 * A trustedPeers CIDR must stay inside loopback (127.0.0.0/8, ::1/128, or their IPv4-mapped
 * form): a connection from anywhere else can come from another pod. Throws on unparsable text.
 */
export function isLoopbackCidr(text: string): boolean {
  const c = parseCidr(text);
  const V4 = 4294967296n; // 2^32: IPv4-mapped addresses are ::ffff:<32 bits>
  const mapped = c.family === 6 && c.prefix >= 96 && c.network / V4 === 0xffffn;
  if (c.family === 4 || mapped) {
    const network = mapped ? c.network % V4 : c.network;
    const prefix = mapped ? c.prefix - 96 : c.prefix;
    return prefix >= 8 && network / 16777216n === 127n; // the first octet, 127
  }
  return c.prefix === 128 && c.network === 1n;
}

/** Which connections may assert an identity, compiled from callers.trustedPeers. */
export class PeerTrust {
  private readonly podIp: boolean;
  private readonly set: CidrSet;
  /** The default list: a few string checks, no parsing per request. */
  private readonly defaults: boolean;

  /** Throws CidrParseError on a bad entry (config validation refuses those first). */
  constructor(entries: readonly string[] = DEFAULT_TRUSTED_PEERS) {
    this.podIp = entries.includes(TRUSTED_PEER_POD_IP);
    const cidrs = entries.filter((e) => e !== TRUSTED_PEER_POD_IP);
    this.set = new CidrSet(cidrs);
    this.defaults = this.podIp && cidrs.length === 2 && cidrs.includes('127.0.0.0/8') && cidrs.includes('::1/128');
  }

  /**
   * Does a connection from `remote` to `local` come from inside the pod? A loopback peer can
   * only be in the pod's own network namespace, and so can a peer whose address is the local
   * address (Linux drops packets from outside that carry a local source address, and the
   * handshake's answer would never leave the host). IPv4-mapped IPv6 addresses count as IPv4.
   */
  public trusts(remote: string | undefined, local: string | undefined): boolean {
    if (!remote) return false;
    const r = unmapText(remote);
    if (this.podIp && local !== undefined && r === unmapText(local)) return true;
    if (this.defaults) return r.startsWith('127.') || r === '::1';
    const ip = tryParseIp(r);
    return ip !== undefined && this.set.has(ip);
  }
}

function unmapText(a: string): string {
  return a.length > 7 && a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/* ------------------------------------------------------------------------- resolver */

/** Request headers as node:http and node:http2 give them (lower-case names). */
export type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

/** A request's headers as node:http gives them: parsed, and raw (name, value, ...). */
export interface RequestHeaders {
  readonly headers: HeaderMap;
  readonly rawHeaders?: readonly string[];
}

/** The two ends of a client connection (a net.Socket). */
export interface PeerAddresses {
  readonly remoteAddress?: string;
  readonly localAddress?: string;
}

const NO_SOURCE: CallerResolution = Object.freeze({ caller: undefined, trustedPeer: false, unknown: 'no-identity-source' });
const NO_HEADERS: CallerResolution = Object.freeze({ caller: undefined, trustedPeer: false, unknown: 'no-headers' });
const NO_HEADER: CallerResolution = Object.freeze({ caller: undefined, trustedPeer: false, unknown: 'no-header' });
const NO_HEADER_TRUSTED: CallerResolution = Object.freeze({ caller: undefined, trustedPeer: true, unknown: 'no-header' });
const UNTRUSTED: CallerResolution = Object.freeze({ caller: undefined, trustedPeer: false, unknown: 'untrusted-peer' });
const unknownOf = (trustedPeer: boolean, unknown: UnknownCallerReason): CallerResolution => ({ caller: undefined, trustedPeer, unknown });

/** How many lines named `name` (lower case) the request carried; node:http joins repeats into one value. */
function headerLines(raw: readonly string[] | undefined, name: string): number {
  if (!raw) return 1;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const h = raw[i];
    if (h.length === name.length && h.toLowerCase() === name) n++;
  }
  return n;
}

/** callers compiled once per config: the source, the trust domain and the peer rule. */
export class CallerResolver {
  public readonly spec: CallersSpec;
  public readonly source: CallerIdentitySourceSpec;
  public readonly peers: PeerTrust;
  private readonly header: string;

  constructor(spec: CallersSpec = DEFAULT_CALLERS) {
    this.spec = spec;
    this.source = spec.source;
    this.peers = new PeerTrust(spec.trustedPeers ?? DEFAULT_TRUSTED_PEERS);
    this.header = spec.source === 'Istio' ? ISTIO_IDENTITY_HEADER : LINKERD_IDENTITY_HEADER;
  }

  /** True when callers are identified at all (source Linkerd or Istio). */
  public get active(): boolean {
    return this.source !== 'None';
  }

  /**
   * The caller of an HTTP request or CONNECT: its identity header, trusted only on a connection
   * from a trusted peer. `rawHeaders` (name, value, ...) tells a repeated header apart from one
   * value with commas. Allocates only for an identified caller.
   */
  public resolve(
    headers: HeaderMap, rawHeaders: readonly string[] | undefined, remoteAddress: string | undefined, localAddress: string | undefined,
  ): CallerResolution {
    if (this.source === 'None') return NO_SOURCE;
    const trustedPeer = this.peers.trusts(remoteAddress, localAddress);
    const value = headers[this.header];
    if (value === undefined) return trustedPeer ? NO_HEADER_TRUSTED : NO_HEADER;
    if (!trustedPeer) return UNTRUSTED;
    if (typeof value !== 'string' || headerLines(rawHeaders, this.header) > 1) return unknownOf(true, 'multiple-headers');
    const v = value.trim();
    return this.parsed(this.source === 'Istio' ? parseXfcc(v, this.spec.trustDomain) : parseLinkerdIdentity(v, this.spec.trustDomain), true);
  }

  /**
   * The caller of a request on `socket`, or undefined when callers are not identified (source
   * None): what the listeners record.
   */
  public ofRequest(req: RequestHeaders, socket: PeerAddresses): CallerResolution | undefined {
    return this.active ? this.resolve(req.headers, req.rawHeaders, socket.remoteAddress, socket.localAddress) : undefined;
  }

  /** A TLS passthrough or TCP connection: no headers, so no identity. */
  public connection(): CallerResolution {
    return this.source === 'None' ? NO_SOURCE : NO_HEADERS;
  }

  /**
   * The caller with this identity, as a client entry's `identity` names it: a Linkerd name, or
   * for Istio a SPIFFE URI (explain uses this; requests carry a whole XFCC header instead).
   */
  public fromIdentity(identity: string, trustedPeer = true): CallerResolution {
    if (this.source === 'None') return NO_SOURCE;
    return this.parsed(this.source === 'Istio' ? parseSpiffeId(identity, this.spec.trustDomain) : parseLinkerdIdentity(identity, this.spec.trustDomain), trustedPeer);
  }

  private parsed(r: Caller | 'unparsable' | 'other-trust-domain', trustedPeer: boolean): CallerResolution {
    return typeof r === 'string' ? unknownOf(trustedPeer, r) : { caller: r, trustedPeer };
  }

  /** The identity the configured mesh gives a ServiceAccount. */
  public identityOf(namespace: string, serviceAccount: string): string | undefined {
    const td = this.spec.trustDomain;
    if (this.source === 'Linkerd') return `${serviceAccount}.${namespace}${LINKERD_MARK}${td}`;
    if (this.source === 'Istio') return `spiffe://${td}/ns/${namespace}/sa/${serviceAccount}`;
    return undefined;
  }
}

/** The callers section in force: the config's, or the defaults where it has none. */
export function callersOf(config: ProxyConfig): CallersSpec {
  return config.callers ?? DEFAULT_CALLERS;
}
