// The one CIDR implementation, shared with the proxy (src/model/cidr.ts).
export { parseCidr, cidrContains, cidrsOverlap, formatCidr, isIp, CidrParseError } from '../model/cidr';
export type { Cidr } from '../model/cidr';
