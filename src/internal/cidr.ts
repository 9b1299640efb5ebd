// The one CIDR implementation, shared with the proxy. Constructs import it through this seam so
// that moving the module (it is pure, and the npm package leaves lib/proxy/ out) touches one line.
export { parseCidr, cidrContains, cidrsOverlap, formatCidr, isIp, CidrParseError } from '../proxy/cidr';
export type { Cidr } from '../proxy/cidr';
