// Address vetting (SSRF defence): decides whether a resolved IP may be dialled, from the built-in
// refusals, the config's addressPolicy and the parent's networks. Pure; compiled once per config.
import { CidrSet, tryParseIp, unmapIp, formatIp, type IpAddress } from './cidr';
import type { AddressPolicySpec, NetworkSpec } from '../model/proxy-config';

/**
 * Ranges no egress proxy should reach unless told to: they address the proxy's own host, the
 * cluster, cloud metadata or nothing routable. IPv4-mapped IPv6 forms match through cidr.ts.
 */
export const BUILT_IN_REFUSED_CIDRS: readonly string[] = [
  '0.0.0.0/8', // "this network", includes the unspecified address
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // CGNAT (RFC 6598), often used for cluster pod ranges
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, includes cloud metadata 169.254.169.254
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // TEST-NET-1
  '192.88.99.0/24', // deprecated 6to4 relay anycast
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, includes broadcast
  '::/128', // unspecified
  '::1/128', // loopback
  '64:ff9b:1::/48', // local-use NAT64
  '100::/64', // discard-only
  // Teredo (RFC 4380): tunnels to an IPv4 host behind NAT through public relays; no server has a
  // reason to be reached that way, and the relay hop hides the IPv4 address it ends at.
  '2001::/32',
  '2001:db8::/32', // documentation
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'fec0::/10', // deprecated site-local
  'ff00::/8', // multicast
];

export type VetVerdict =
  | { readonly ok: true; readonly address: string; readonly family: 4 | 6; readonly wouldRefuse?: VetReason }
  | { readonly ok: false; readonly address: string; readonly reason: VetReason; readonly matched?: string };

export type VetReason = 'invalid-address' | 'built-in-refusal' | 'deny-cidr' | 'outside-networks' | 'network-except';

/** One compiled vetting policy; build per config load. */
export class AddressVetter {
  private readonly builtIn = new CidrSet(BUILT_IN_REFUSED_CIDRS);
  private readonly allow: CidrSet;
  private readonly deny: CidrSet;
  private readonly networks: ReadonlyArray<{ readonly cidr: CidrSet; readonly except: CidrSet }>;

  /** Throws CidrParseError on a bad CIDR: config validation reports those first. */
  /**
   * `networksReportOnly`: the parent is in ReportOnly mode, so an address outside its networks is
   * allowed and flagged (`wouldRefuse`) instead of refused. The SSRF refusals always apply.
   */
  constructor(policy: AddressPolicySpec, networks: readonly NetworkSpec[], private readonly networksReportOnly = false) {
    this.allow = new CidrSet(policy.allowCidrs);
    this.deny = new CidrSet(policy.denyCidrs);
    this.networks = networks.map((n) => ({ cidr: new CidrSet([n.cidr]), except: new CidrSet(n.except) }));
  }

  /** denyCidrs, then the built-in refusals unless allowCidrs lists the address. */
  private refusal(ip: IpAddress, text: string): VetVerdict | undefined {
    const denied = this.deny.find(ip);
    if (denied) return { ok: false, address: text, reason: 'deny-cidr', matched: cidrText(denied) };
    const refused = this.builtIn.find(ip);
    if (refused && !this.allow.has(ip)) return { ok: false, address: text, reason: 'built-in-refusal', matched: cidrText(refused) };
    return undefined;
  }

  /**
   * Order: denyCidrs refuse; built-in refusals apply unless allowCidrs lists the address; then
   * the address must be inside one of the parent's networks (if any) and not in its except list.
   */
  public vet(address: string): VetVerdict {
    const parsed = tryParseIp(address);
    if (!parsed) return { ok: false, address, reason: 'invalid-address' };
    const ip = unmapIp(parsed);
    const text = formatIp(ip);
    // An IPv6 address that carries an IPv4 one (NAT64, 6to4, Teredo) reaches that IPv4 address
    // through a translator or relay: it is refused for whatever the IPv4 address would be refused for.
    const refusal = this.refusal(ip, text);
    if (refusal) return refusal;
    for (const embedded of embeddedIpv4(ip)) {
      const embeddedRefusal = this.refusal(embedded, text);
      if (embeddedRefusal) return embeddedRefusal;
    }
    if (this.networks.length > 0) {
      let inside = false;
      for (const n of this.networks) {
        if (!n.cidr.has(ip)) continue;
        if (n.except.has(ip)) continue;
        inside = true;
        break;
      }
      if (!inside) {
        const reason: VetReason = this.networks.some((n) => n.cidr.has(ip)) ? 'network-except' : 'outside-networks';
        if (this.networksReportOnly) return { ok: true, address: text, family: ip.family, wouldRefuse: reason };
        return { ok: false, address: text, reason };
      }
    }
    return { ok: true, address: text, family: ip.family };
  }
}

const NAT64_WELL_KNOWN = 0x0064ff9b0000000000000000n; // 64:ff9b::/96 (RFC 6052), shifted right by 32
const SIX_TO_FOUR = 0x2002n; // 2002::/16 (RFC 3056), shifted right by 112
const TEREDO = 0x20010000n; // 2001::/32 (RFC 4380), shifted right by 96
const NONE: readonly IpAddress[] = Object.freeze([]);

/**
 * The IPv4 addresses inside an IPv6 address that leads to them: the one of a NAT64 well-known-prefix
 * or 6to4 address; the Teredo server (bits 32-63, in clear) and client (bits 96-127, every bit
 * inverted, RFC 4380 §4) of a Teredo address. Empty for anything else.
 */
/* eslint-disable no-bitwise */ // address arithmetic is bit arithmetic
export function embeddedIpv4(ip: IpAddress): readonly IpAddress[] {
  if (ip.family !== 6) return NONE;
  if ((ip.value >> 32n) === NAT64_WELL_KNOWN) return [{ family: 4, value: ip.value & 0xffffffffn }];
  if ((ip.value >> 112n) === SIX_TO_FOUR) return [{ family: 4, value: (ip.value >> 80n) & 0xffffffffn }];
  if ((ip.value >> 96n) === TEREDO) {
    return [{ family: 4, value: (ip.value >> 64n) & 0xffffffffn }, { family: 4, value: (ip.value ^ 0xffffffffn) & 0xffffffffn }];
  }
  return NONE;
}
/* eslint-enable no-bitwise */

function cidrText(c: { family: 4 | 6; network: bigint; prefix: number }): string {
  return `${formatIp({ family: c.family, value: c.network })}/${c.prefix}`;
}
