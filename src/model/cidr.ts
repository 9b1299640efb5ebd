// IP address and CIDR arithmetic for policy and address vetting: strict parsing, containment,
// overlap, and a compiled set for fast membership. Pure; IPv4-mapped IPv6 addresses are unmapped.
//
// API (stable):
//   parseIp(text): IpAddress                      throws CidrParseError
//   tryParseIp(text): IpAddress | undefined
//   isIp(text): boolean
//   formatIp(ip): string                          canonical text (RFC 5952 for IPv6)
//   unmapIp(ip): IpAddress                        '::ffff:a.b.c.d' → IPv4 a.b.c.d, others unchanged
//   parseCidr(text, options?): Cidr               throws CidrParseError
//   formatCidr(cidr): string
//   cidrContains(cidr, ip): boolean               strings or parsed values
//   cidrsOverlap(a, b): boolean
//   class CidrSet { constructor(cidrs); has(ip); find(ip); size; cidrs }
//   class CidrParseError extends Error { code: 'INVALID_IP' | 'INVALID_CIDR'; input }
//
// Equivalence: an address is matched in every form that dials the same host, so an IPv4-mapped
// address ('::ffff:10.0.0.1') is inside '10.0.0.0/8', and an IPv4 address is inside
// '::ffff:0:0/96' (and '::/0'). Without this, '::ffff:169.254.169.254' would slip past a v4 deny
// list. Other embeddings (NAT64 64:ff9b::/96, 6to4) are not unmapped: list them explicitly.
/* eslint-disable no-bitwise */ // address arithmetic is bit arithmetic

export type IpFamily = 4 | 6;

/** A parsed address. value: 32-bit (IPv4) or 128-bit (IPv6) unsigned integer. */
export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** A parsed network: `network` has no bits set beyond `prefix`. */
export interface Cidr {
  readonly family: IpFamily;
  readonly network: bigint;
  readonly prefix: number;
}

export interface ParseCidrOptions {
  /** Accept '10.0.0.1/8' and mask it to '10.0.0.0/8' instead of rejecting it. @default false */
  readonly allowHostBits?: boolean;
  /** Accept a bare address as a single-host network (/32 or /128). @default false */
  readonly allowBareAddress?: boolean;
}

export type CidrErrorCode = 'INVALID_IP' | 'INVALID_CIDR';

export class CidrParseError extends Error {
  public readonly code: CidrErrorCode;
  /** The text that failed to parse, as given. */
  public readonly input: string;
  constructor(code: CidrErrorCode, input: string, detail: string) {
    super(`invalid ${code === 'INVALID_IP' ? 'IP address' : 'CIDR'} ${JSON.stringify(input)}: ${detail}`);
    this.name = 'CidrParseError';
    this.code = code;
    this.input = input;
  }
}

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };
const MAPPED_PREFIX = 0xffffn << 32n; // ::ffff:0:0/96
const V4_MASK = 0xffffffffn;

/* ------------------------------------------------------------------------- addresses */

/** Parse an IPv4 or IPv6 address (no zone, no brackets, no port). */
export function parseIp(text: string): IpAddress {
  const r = parseIpInner(text);
  if (typeof r === 'string') throw new CidrParseError('INVALID_IP', text, r);
  return r;
}

export function tryParseIp(text: string): IpAddress | undefined {
  const r = parseIpInner(text);
  return typeof r === 'string' ? undefined : r;
}

export function isIp(text: string): boolean {
  return typeof parseIpInner(text) !== 'string';
}

/** Returns the address, or a string describing the problem (cheaper than throwing on hot paths). */
function parseIpInner(text: string): IpAddress | string {
  if (typeof text !== 'string' || text.length === 0) return 'empty';
  if (text.includes(':')) {
    const fast = fastV6(text);
    if (fast !== undefined) return { family: 6, value: fast };
    const v = parseV6(text);
    return typeof v === 'string' ? v : { family: 6, value: v };
  }
  const fast = fastV4(text);
  if (fast >= 0) return { family: 4, value: BigInt(fast) };
  const v = parseV4(text);
  return typeof v === 'string' ? v : { family: 4, value: BigInt(v) };
}

/** Dotted quad without allocation; -1 for anything parseV4 should explain. */
function fastV4(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20; // only 'A'-'F' and 'a'-'f' land in 'a'-'f'
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** IPv6 in one pass with no intermediate strings; undefined for anything parseV6 should explain. */
function fastV6(text: string): bigint | undefined {
  const len = text.length;
  const groups = [0, 0, 0, 0, 0, 0, 0, 0];
  let n = 0;
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
  }
  while (i < len) {
    if (n === 8) return undefined;
    const start = i;
    let v = 0;
    let h: number;
    while (i < len && (h = hexDigit(text.charCodeAt(i))) >= 0) {
      v = v * 16 + h;
      i++;
    }
    if (i < len && text.charCodeAt(i) === 46) {
      // An embedded IPv4 tail: re-read the group as decimal.
      const v4 = n <= 6 ? fastV4(text.slice(start)) : -1;
      if (v4 < 0) return undefined;
      groups[n++] = Math.floor(v4 / 65536);
      groups[n++] = v4 % 65536;
      break;
    }
    if (i === start || i - start > 4) return undefined;
    groups[n++] = v;
    if (i === len) break;
    if (text.charCodeAt(i) !== 58 || ++i === len) return undefined;
    if (text.charCodeAt(i) === 58) {
      if (gap !== -1) return undefined;
      gap = n;
      i++;
    }
  }
  if (gap === -1 ? n !== 8 : n > 7) return undefined;
  if (gap !== -1) {
    const moved = n - gap;
    for (let k = 0; k < moved; k++) groups[7 - k] = groups[n - 1 - k];
    for (let k = gap; k < 8 - moved; k++) groups[k] = 0;
  }
  let value = 0n;
  for (let k = 0; k < 8; k += 2) value = (value << 32n) | BigInt(groups[k] * 65536 + groups[k + 1]);
  return value;
}

function isHexGroup(p: string): boolean {
  if (p.length < 1 || p.length > 4) return false;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c >= 48 && c <= 57) continue;
    const lower = c | 0x20; // only 'A'-'F' and 'a'-'f' land in 'a'-'f'
    if (lower < 97 || lower > 102) return false;
  }
  return true;
}

function parseV4(text: string): number | string {
  const parts = text.split('.');
  if (parts.length !== 4) return `an IPv4 address has 4 dot-separated decimal octets, found ${parts.length}`;
  let value = 0;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return `octet ${JSON.stringify(part)} is not a decimal number 0-255`;
    // Leading zeros are octal to inet_aton and decimal to others: refuse the ambiguity.
    if (part.length > 1 && part[0] === '0') return `octet ${JSON.stringify(part)} has a leading zero (ambiguous octal)`;
    const n = Number(part);
    if (n > 255) return `octet ${part} is greater than 255`;
    value = value * 256 + n;
  }
  return value;
}

function parseV6(text: string): bigint | string {
  if (text.includes('%')) return 'zones (%iface) are not accepted';
  if (text.startsWith('[') || text.endsWith(']')) return 'remove the brackets';
  const dbl = text.indexOf('::');
  if (dbl !== -1 && text.indexOf('::', dbl + 1) !== -1) return "'::' may appear only once";
  const parseGroups = (s: string, allowV4Tail: boolean): number[] | string => {
    if (s === '') return [];
    const groups: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (allowV4Tail && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseV4(p);
        if (typeof v4 === 'string') return `embedded IPv4 ${JSON.stringify(p)}: ${v4}`;
        groups.push(Math.floor(v4 / 65536), v4 % 65536);
      } else {
        if (!isHexGroup(p)) return `group ${JSON.stringify(p)} is not 1-4 hex digits`;
        groups.push(parseInt(p, 16));
      }
    }
    return groups;
  };
  let groups: number[];
  if (dbl === -1) {
    const g = parseGroups(text, true);
    if (typeof g === 'string') return g;
    if (g.length !== 8) return `an IPv6 address has 8 groups, found ${g.length}`;
    groups = g;
  } else {
    const head = parseGroups(text.slice(0, dbl), false);
    if (typeof head === 'string') return head;
    const tail = parseGroups(text.slice(dbl + 2), true);
    if (typeof tail === 'string') return tail;
    if (head.length + tail.length > 7) return "too many groups around '::'";
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  // Four 32-bit words keep the BigInt work to a handful of operations.
  let value = 0n;
  for (let i = 0; i < 8; i += 2) value = (value << 32n) | BigInt(groups[i] * 65536 + groups[i + 1]);
  return value;
}

/** '::ffff:a.b.c.d' becomes the IPv4 address a.b.c.d; anything else is returned unchanged. */
export function unmapIp(ip: IpAddress): IpAddress {
  if (ip.family === 6 && (ip.value >> 32n) === 0xffffn) return { family: 4, value: ip.value & V4_MASK };
  return ip;
}

function v4Text(v: bigint): string {
  const n = Number(v);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as '::'). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return v4Text(ip.value);
  if ((ip.value >> 32n) === 0xffffn) return `::ffff:${v4Text(ip.value & V4_MASK)}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/* ------------------------------------------------------------------------- networks */

function maskOf(family: IpFamily, prefix: number): bigint {
  const bits = BITS[family];
  if (prefix === 0) return 0n;
  return ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
}

/** Parse 'a.b.c.d/n' or 'x:y::z/n'. Host bits and bare addresses are errors unless allowed. */
export function parseCidr(text: string, options: ParseCidrOptions = {}): Cidr {
  if (typeof text !== 'string' || text.length === 0) throw new CidrParseError('INVALID_CIDR', String(text), 'empty');
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const ip = parseIpInner(addrText);
  if (typeof ip === 'string') throw new CidrParseError('INVALID_CIDR', text, `address part: ${ip}`);
  const bits = BITS[ip.family];
  let prefix: number;
  if (slash === -1) {
    if (!options.allowBareAddress) {
      throw new CidrParseError('INVALID_CIDR', text, `missing prefix length; for a single host write "${addrText}/${bits}"`);
    }
    prefix = bits;
  } else {
    const p = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p[0] === '0') || Number(p) > bits) {
      throw new CidrParseError('INVALID_CIDR', text, `prefix length ${JSON.stringify(p)} must be a decimal 0-${bits}`);
    }
    prefix = Number(p);
  }
  const mask = maskOf(ip.family, prefix);
  const network = ip.value & mask;
  if (network !== ip.value && !options.allowHostBits) {
    const fixed = formatCidr({ family: ip.family, network, prefix });
    throw new CidrParseError('INVALID_CIDR', text, `host bits are set beyond /${prefix}; did you mean "${fixed}"?`);
  }
  return { family: ip.family, network, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, value: cidr.network })}/${cidr.prefix}`;
}

/** An IPv6 network inside ::ffff:0:0/96 is the IPv4 network it maps; others are unchanged. */
function unmapCidr(c: Cidr): Cidr {
  if (c.family === 6 && c.prefix >= 96 && (c.network >> 32n) === 0xffffn) {
    return { family: 4, network: c.network & V4_MASK, prefix: c.prefix - 96 };
  }
  return c;
}

function containsSameFamily(c: Cidr, family: IpFamily, value: bigint): boolean {
  return c.family === family && (value & maskOf(family, c.prefix)) === c.network;
}

function toCidr(c: Cidr | string): Cidr {
  return typeof c === 'string' ? parseCidr(c) : c;
}

function toIp(ip: IpAddress | string): IpAddress {
  return typeof ip === 'string' ? parseIp(ip) : ip;
}

/** True when `ip` (in any equivalent form, see header) is inside `cidr`. */
export function cidrContains(cidr: Cidr | string, ip: IpAddress | string): boolean {
  const c = unmapCidr(toCidr(cidr));
  const a = unmapIp(toIp(ip));
  if (containsSameFamily(c, a.family, a.value)) return true;
  // IPv4 also lives at ::ffff:a.b.c.d, inside any IPv6 network wider than /96 that covers it.
  return a.family === 4 && c.family === 6 && containsSameFamily(c, 6, MAPPED_PREFIX | a.value);
}

/** True when the two networks share at least one address. */
export function cidrsOverlap(a: Cidr | string, b: Cidr | string): boolean {
  let x = unmapCidr(toCidr(a));
  let y = unmapCidr(toCidr(b));
  if (x.family !== y.family) {
    // Compare an IPv4 network by its mapped IPv6 form.
    const lift = (c: Cidr): Cidr => (c.family === 4 ? { family: 6, network: MAPPED_PREFIX | c.network, prefix: c.prefix + 96 } : c);
    x = lift(x);
    y = lift(y);
  }
  const shorter = x.prefix <= y.prefix ? x : y;
  const longer = shorter === x ? y : x;
  return containsSameFamily(shorter, longer.family, longer.network);
}

/**
 * A compiled set of networks. Membership costs one masked lookup per distinct prefix length,
 * whatever the number of networks, so the address vetting hot path stays flat.
 */
export class CidrSet {
  /** The networks as given (parsed), in order. */
  public readonly cidrs: readonly Cidr[];
  // IPv4 tables use plain numbers: masking a double is far cheaper than masking a BigInt.
  private readonly v4: ReadonlyArray<{ readonly mask: number; readonly nets: Map<number, Cidr> }>;
  private readonly v6: ReadonlyArray<{ readonly mask: bigint; readonly nets: Map<bigint, Cidr> }>;
  /**
   * The widest IPv6 network holding all of ::ffff:0:0/96, if any. A network up to /96 holds the
   * whole block or none of it, and narrower ones inside it became IPv4 tables, so this single
   * answer settles every IPv4 address the IPv4 tables miss.
   */
  private readonly mappedCover?: Cidr;

  /** Throws CidrParseError on the first bad entry (strings are parsed strictly). */
  constructor(cidrs: Iterable<Cidr | string>) {
    const parsed = [...cidrs].map(toCidr);
    this.cidrs = parsed;
    const group = (family: IpFamily) => {
      const byPrefix = new Map<number, Map<bigint, Cidr>>();
      for (const orig of parsed) {
        const c = unmapCidr(orig);
        if (c.family !== family) continue;
        let nets = byPrefix.get(c.prefix);
        if (!nets) byPrefix.set(c.prefix, (nets = new Map()));
        if (!nets.has(c.network)) nets.set(c.network, orig);
      }
      // Widest first, so find() reports the covering network a human listed most broadly.
      return [...byPrefix.entries()].sort((p, q) => p[0] - q[0]);
    };
    this.v4 = group(4).map(([prefix, nets]) => ({
      mask: prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0,
      nets: new Map([...nets].map(([k, v]) => [Number(k), v])),
    }));
    this.v6 = group(6).map(([prefix, nets]) => ({ mask: maskOf(6, prefix), nets }));
    for (const t of this.v6) {
      this.mappedCover ??= t.nets.get(MAPPED_PREFIX & t.mask);
    }
  }

  public get size(): number {
    return this.cidrs.length;
  }

  /** True when `ip` (any equivalent form) is inside one of the networks. Throws on unparsable text. */
  public has(ip: IpAddress | string): boolean {
    return this.find(ip) !== undefined;
  }

  /** The (widest) network containing `ip`, as it was given; undefined when none does. */
  public find(ip: IpAddress | string): Cidr | undefined {
    const a = toIp(ip);
    const mapped = a.family === 6 && (a.value >> 32n) === 0xffffn;
    if (a.family === 6 && !mapped) {
      for (const t of this.v6) {
        const hit = t.nets.get(a.value & t.mask);
        if (hit) return hit;
      }
      return undefined;
    }
    const v4 = Number(mapped ? a.value & V4_MASK : a.value);
    for (const t of this.v4) {
      const hit = t.nets.get((v4 & t.mask) >>> 0);
      if (hit) return hit;
    }
    return this.mappedCover;
  }
}
