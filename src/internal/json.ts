// Deterministic JSON for the proxy config: the same config always renders to the same bytes.

const FIRST_KEYS = ['apiVersion', 'kind'];

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function topLevelOrder(a: string, b: string): number {
  const ia = FIRST_KEYS.indexOf(a);
  const ib = FIRST_KEYS.indexOf(b);
  if (ia >= 0 || ib >= 0) return (ia < 0 ? FIRST_KEYS.length : ia) - (ib < 0 ? FIRST_KEYS.length : ib);
  return byName(a, b);
}

function sortKeys(value: unknown, top = false): unknown {
  if (Array.isArray(value)) return value.map((v) => sortKeys(v));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort(top ? topLevelOrder : byName)) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/**
 * Compact JSON with object keys sorted (apiVersion and kind first) and a trailing newline. Compact,
 * because the config is read by the proxy and sized against ConfigMap limits; `jq` or the proxy's
 * `/config` endpoint shows it indented.
 */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value, true)) + '\n';
}

/** Compact JSON of a value nested in a document, keys sorted as `stableJson` sorts them. */
export function stableJsonValue(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}
