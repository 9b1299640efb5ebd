// The stable key of a declared client, as CallersSpec.metricsLabel defines it: the value of the
// `caller` metric label, and how messages and checks name a client.
import type { ClientSpec } from './proxy-config';

/** `sa:<namespace>/<name>`, `ns:<namespace>` or `id:<identity>`. */
export function clientKey(c: ClientSpec): string {
  if (c.serviceAccount) return `sa:${c.serviceAccount.namespace}/${c.serviceAccount.name}`;
  if (c.namespace !== undefined) return `ns:${c.namespace}`;
  return `id:${c.identity}`;
}
