// Memory back after a burst: under load V8 fills its young generation (twice
// --max-semi-space-size) and grows its old one, and keeps both resident when the load stops. Once
// the proxy has admitted nothing for a while and has nothing in flight, and only when its resident
// memory has grown since the last time, one memory-reducing collection gives the pages back.

import { IDLE_RECLAIM_BOUNDS } from '../model/bounds';
import { DEFAULT_IDLE_RECLAIM_MS } from '../model/defaults';

/** A synchronous, memory-reducing full garbage collection. */
export type GcFunction = () => void;

type V8Gc = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/**
 * V8's gc() as a memory-reducing full collection, when node runs with `--expose-gc` (command line
 * or NODE_OPTIONS; PROXY_RUNTIME_ENV sets it for the image and the rendered container); otherwise
 * undefined. Node 22+: the `last-resort` flavour, which also shrinks the young generation and
 * releases pooled pages (measured on Node 24). Node 20's gc() runs no full collection when given
 * options, so there it is a plain gc(): a full collection only.
 *
 * Never taken from a new vm context (where a flag set at run time would put it): with a second
 * context in the process, every allocation of the proxy's got 10-20 times slower about half a
 * minute after start (Node 24: 300-600 against 15-35 ns for a small object literal, at idle), and
 * the proxy spent 3-10 % more CPU per request (bench/README.md, "Idle memory").
 */
export function exposedGc(): GcFunction | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') return undefined;
  const raw = gc as V8Gc;
  const reducing = Number(process.versions.node.split('.')[0]) >= 22;
  return reducing ? () => raw({ type: 'major', execution: 'sync', flavor: 'last-resort' }) : () => raw();
}

/** Growth of resident memory since the last reclaim (or the start) below which a reclaim is not worth its pause. */
export const DEFAULT_RECLAIM_GROWTH_BYTES = 16 * 1024 * 1024;

export interface IdleReclaimOptions {
  /** How long the proxy must have admitted nothing, with nothing in flight, before a reclaim. */
  readonly idleMs: number;
  /** Resident memory growth that makes a reclaim worthwhile (0: every idle period); default DEFAULT_RECLAIM_GROWTH_BYTES. */
  readonly growthBytes?: number;
  /** Requests and tunnels admitted so far (monotonic) and in flight now. */
  readonly activity: () => { readonly admitted: number; readonly inflight: number };
  /** The collection to run; the proxy passes exposedGc()'s, and runs no reclaimer without one. */
  readonly gc: GcFunction;
  /** Resident memory; default process.memoryUsage.rss. */
  readonly rssBytes?: () => number;
  /** Default Date.now. */
  readonly now?: () => number;
  /** Called after each reclaim. */
  readonly onReclaim?: (result: ReclaimResult) => void;
}

export interface ReclaimResult {
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
  /** How long the collection held the event loop. */
  readonly pauseMs: number;
}

export interface IdleReclaimer {
  /** One check now (the timer calls it); true when it reclaimed. */
  check(): boolean;
  stop(): void;
}

/**
 * Watch the proxy's activity and reclaim memory once per idle period after resident memory has
 * grown. A request that arrives during the collection waits for it (20-110 ms measured on Node 24
 * after load), and the next burst runs as on a fresh heap for its first seconds (the young
 * generation regrows); low, steady traffic does not grow memory by growthBytes, so it never pays.
 */
export function startIdleReclaim(options: IdleReclaimOptions): IdleReclaimer {
  if (!Number.isInteger(options.idleMs) || options.idleMs <= 0) {
    throw new RangeError(`idleMs must be a positive integer, got ${options.idleMs}`);
  }
  const rssBytes = options.rssBytes ?? (() => process.memoryUsage.rss());
  const now = options.now ?? Date.now;
  const growth = options.growthBytes ?? DEFAULT_RECLAIM_GROWTH_BYTES;
  let baseline = rssBytes();
  let lastAdmitted = options.activity().admitted;
  let quietSince = now();
  /** This idle period has had its collection (or did not need one); the next admission ends it. */
  let settled = false;

  const check = (): boolean => {
    const { admitted, inflight } = options.activity();
    const t = now();
    if (admitted !== lastAdmitted || inflight > 0) {
      lastAdmitted = admitted;
      quietSince = t;
      settled = false;
      return false;
    }
    if (settled || t - quietSince < options.idleMs) return false;
    settled = true;
    const rssBefore = rssBytes();
    if (growth > 0 && rssBefore - baseline < growth) return false;
    const start = performance.now();
    options.gc();
    const pauseMs = performance.now() - start;
    baseline = rssBytes();
    options.onReclaim?.({ rssBeforeBytes: rssBefore, rssAfterBytes: baseline, pauseMs });
    return true;
  };
  // A quarter of the idle time (at most a second) between checks: a reclaim comes at most that
  // much after the idle time has passed.
  const timer = setInterval(check, Math.min(1000, Math.max(10, Math.floor(options.idleMs / 4))));
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}

export { DEFAULT_IDLE_RECLAIM_MS };

/** The environment variable that sets the idle time before a reclaim (0: off); EgressGateway's idleMemoryReclaim. */
export const IDLE_RECLAIM_ENV = 'EGRESS_IDLE_RECLAIM_MS';

/** EGRESS_IDLE_RECLAIM_MS: unset or empty gives the default; anything but 0..3600000 throws. */
export function idleReclaimMsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[IDLE_RECLAIM_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_IDLE_RECLAIM_MS;
  const ms = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!(ms <= IDLE_RECLAIM_BOUNDS.max)) {
    throw new Error(`${IDLE_RECLAIM_ENV}=${JSON.stringify(raw)}: must be whole milliseconds from 0 (off) to ${IDLE_RECLAIM_BOUNDS.max}; `
      + `unset it for the default, ${DEFAULT_IDLE_RECLAIM_MS}`);
  }
  return ms;
}
