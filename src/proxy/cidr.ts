// The CIDR implementation lives in src/model/cidr.ts: constructs and proxy share it, and the npm
// package leaves lib/proxy/ out. Proxy modules keep importing it from here.
export * from '../model/cidr';
