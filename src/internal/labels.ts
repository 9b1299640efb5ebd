// Kubernetes label syntax checks shared by the monitoring constructs.
import { isDnsSubdomain } from '../model/names';

/** A Kubernetes label key: an optional DNS-subdomain prefix and a name of at most 63 characters. */
export function labelKeyOk(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (!isDnsSubdomain(prefix) || prefix.length > 253)) return false;
  return name.length > 0 && name.length <= 63 && /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(name);
}

/** A Kubernetes label value: empty, or at most 63 alphanumerics, "-", "_", "." starting and ending alphanumeric. */
export function labelValueOk(value: unknown): boolean {
  return typeof value === 'string' && value.length <= 63 && /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value);
}

/** Adds a problem per invalid label of `labels` (prop `prop.<key>`). */
export function checkLabels(add: (prop: string, value: unknown, rule: string, fix: string) => void, prop: string,
  labels: { [key: string]: string } | undefined, example: string): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (!labelKeyOk(k)) {
      add(`${prop}.${k}`, k, 'is not a valid label key (an optional DNS prefix and "/", then at most 63 alphanumerics, "-", "_", ".")', `use e.g. ${example}`);
    } else if (!labelValueOk(v)) {
      add(`${prop}.${k}`, v, 'is not a valid label value (at most 63 alphanumerics, "-", "_", ".", starting and ending alphanumeric)', `use e.g. ${example}`);
    }
  }
}
