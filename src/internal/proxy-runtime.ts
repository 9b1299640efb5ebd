// The proxy process's runtime memory settings, set once for the image (Dockerfile ENV) and the
// container (gateway-workload.ts), so the proxy runs lean whichever of the two a cluster uses.

/**
 * Environment for the proxy's Node.js process. Two caps on resident memory, neither costing
 * throughput, and the collector that gives memory back after a burst:
 *
 * - `--max-semi-space-size=16` (MiB): Node 24 sizes the young generation from the heap limit and
 *   keeps it resident; 16 MiB per semi-space is enough for the request path (1 MiB halved
 *   throughput).
 * - `MALLOC_ARENA_MAX=2`: glibc gives each thread (libuv pool, V8 helpers) its own malloc arena,
 *   and the arenas fragment; two are enough for a single-threaded event loop.
 *
 * - `--expose-gc`: gc() for the proxy's idle memory reclaim (src/proxy/idle-memory.ts), which is
 *   off without it; taking gc() any other way costs every allocation (see exposedGc).
 *
 * With 1,000 idle keep-alive clients after a load the two caps took Node 24's RSS from about 321
 * to 207 MiB (Node 20: 168 to 157 MiB); bench/README.md, "Idle memory".
 */
export const PROXY_RUNTIME_ENV: Readonly<Record<string, string>> = Object.freeze({
  NODE_OPTIONS: '--max-semi-space-size=16 --expose-gc',
  MALLOC_ARENA_MAX: '2',
});
