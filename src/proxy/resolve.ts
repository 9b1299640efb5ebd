// Name resolution for upstreams: an injectable resolver bounded by the DNS timeout, whose answers
// are vetted before anything dials them. Callers get IPs only; the name is never dialled again.
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { EgressError } from './errors';
import type { AddressVetter, VetVerdict } from './vet';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: number;
}

/** Returns every address of `host`. Injected by tests; the default asks the system resolver. */
export type Resolver = ((host: string) => Promise<readonly ResolvedAddress[]>) & {
  /**
   * The fresh answer already in hand for `host`, if any (a caching resolver): used as it is, with
   * no DNS timeout to arm. Undefined sends the request through the resolver.
   */
  readonly settled?: (host: string) => readonly ResolvedAddress[] | undefined;
};

export const systemLookup: Resolver = async (host) => dns.lookup(host, { all: true, verbatim: true });

/**
 * Share lookups: concurrent requests for one name wait on one lookup, and answers are reused for
 * ttlMs. getaddrinfo runs on libuv's small thread pool and reports no TTL, so without this every
 * request would queue a blocking lookup. Failures are not cached. Bounded to maxEntries names.
 */
export function cachingResolver(inner: Resolver, ttlMs = 5_000, maxEntries = 10_000): Resolver {
  interface Entry {
    readonly at: number;
    readonly answer: Promise<readonly ResolvedAddress[]>;
    /** The answer once it came. */
    value?: readonly ResolvedAddress[];
  }
  const cache = new Map<string, Entry>();
  const resolve = (host: string): Promise<readonly ResolvedAddress[]> => {
    const now = performance.now();
    const hit = cache.get(host);
    if (hit && now - hit.at < ttlMs) return hit.answer;
    if (cache.size >= maxEntries) {
      for (const [k, v] of cache) if (now - v.at >= ttlMs) cache.delete(k);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
    }
    const answer = inner(host);
    const entry: Entry = { at: now, answer };
    cache.set(host, entry);
    answer.then((value) => {
      entry.value = value;
    }, () => {
      if (cache.get(host) === entry) cache.delete(host);
    });
    return answer;
  };
  const settled = (host: string): readonly ResolvedAddress[] | undefined => {
    const hit = cache.get(host);
    return hit?.value !== undefined && performance.now() - hit.at < ttlMs ? hit.value : undefined;
  };
  return Object.assign(resolve, { settled });
}

/** The default: the system resolver (search domains, /etc/hosts) behind a 5 s shared cache. */
export const systemResolver: Resolver = cachingResolver(systemLookup);

export interface VettedAddresses {
  readonly addresses: readonly string[];
  /** Answers the vetter refused (logged, and asserted by tests). */
  readonly refused: readonly VetVerdict[];
  /** ReportOnly parents: addresses dialled although outside the parent's networks. */
  readonly wouldRefuse: readonly VetVerdict[];
  readonly dnsMs: number;
}

/**
 * Resolve (IP literals skip the resolver) and vet. `exempt` skips the address policy: in-cluster
 * Service backends resolve to cluster IPs by design.
 */
export async function resolveAndVet(
  resolver: Resolver, host: string, timeoutMs: number, vetter: AddressVetter, exempt = false,
): Promise<VettedAddresses> {
  const started = performance.now();
  const answers = literalAnswer(host) ?? resolver.settled?.(host) ?? await withTimeout(resolver(host), timeoutMs);
  return vetAnswers(answers, host, vetter, exempt, performance.now() - started);
}

/**
 * resolveAndVet without waiting, when the answer is already in hand (an IP literal, or the
 * caching resolver's fresh answer): the vetted addresses, or the vetting error thrown. Undefined
 * when `host` must be resolved first, which only resolveAndVet does.
 */
export function vetInHand(resolver: Resolver, host: string, vetter: AddressVetter, exempt = false): VettedAddresses | undefined {
  const answers = literalAnswer(host) ?? resolver.settled?.(host);
  return answers === undefined ? undefined : vetAnswers(answers, host, vetter, exempt, 0);
}

function vetAnswers(answers: readonly ResolvedAddress[], host: string, vetter: AddressVetter, exempt: boolean, dnsMs: number): VettedAddresses {
  // A cached answer is the same array until it expires: vetted once per vetter (a reload brings a new one).
  const memo = vetted.get(answers);
  if (memo !== undefined && memo.vetter === vetter && memo.exempt === exempt && memo.host === host) {
    if (memo.error) throw new EgressError(memo.error.code, memo.error.detail);
    return dnsMs === 0 ? memo.result! : { ...memo.result!, dnsMs };
  }
  const addresses: string[] = [];
  const refused: VetVerdict[] = [];
  const wouldRefuse: VetVerdict[] = [];
  let error: EgressError | undefined;
  if (answers.length === 0) {
    error = new EgressError('DNS_FAILED', `no addresses for ${host}`);
  } else {
    for (const a of answers) {
      if (exempt) {
        if (isIP(a.address)) addresses.push(a.address);
        continue;
      }
      const v = vetter.vet(a.address);
      if (v.ok) {
        if (v.wouldRefuse) wouldRefuse.push(v);
        if (!addresses.includes(v.address)) addresses.push(v.address);
      } else {
        refused.push(v);
      }
    }
    if (addresses.length === 0) {
      const first = refused[0];
      error = new EgressError('ADDRESS_REFUSED', first && !first.ok ? `${host} → ${first.address}: ${first.reason}` : host);
    }
  }
  const result = { addresses, refused, wouldRefuse, dnsMs };
  vetted.set(answers, { host, vetter, exempt, result: error ? undefined : { ...result, dnsMs: 0 }, error });
  if (error) throw error;
  return result;
}

/**
 * An IP literal's answer: itself, as one array per literal so that its verdict is remembered as a
 * resolver's answer is. Literals also come from clients (forward-proxy requests): at most
 * LITERAL_ANSWERS_MAX are kept, then all are forgotten at once. Undefined for a name.
 */
function literalAnswer(host: string): readonly ResolvedAddress[] | undefined {
  const known = literalAnswers.get(host);
  if (known !== undefined) return known;
  const family = isIP(host);
  if (family === 0) return undefined;
  if (literalAnswers.size >= LITERAL_ANSWERS_MAX) literalAnswers.clear();
  const answers = [{ address: host, family }];
  literalAnswers.set(host, answers);
  return answers;
}

const LITERAL_ANSWERS_MAX = 1024;
const literalAnswers = new Map<string, readonly ResolvedAddress[]>();

/** The verdicts on a resolver's answer (an array kept until its TTL ends) or a literal's, by the vetter that gave them. */
const vetted = new WeakMap<readonly ResolvedAddress[], {
  readonly host: string;
  readonly vetter: AddressVetter;
  readonly exempt: boolean;
  readonly result?: VettedAddresses;
  readonly error?: EgressError;
}>();

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EgressError('DNS_TIMEOUT')), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } catch (err) {
    if (err instanceof EgressError) throw err;
    throw new EgressError('DNS_FAILED', (err as { code?: string }).code, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
