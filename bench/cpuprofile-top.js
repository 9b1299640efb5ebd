// Summarise a V8 .cpuprofile (from node --cpu-prof): self time by function and by area (node
// internals, undici, pino, prom-client, this proxy, GC), so a profile before and after a change
// can be compared in a commit message. A .heapprofile from bench/alloc-probe.js is summarised the
// same way in bytes allocated per request. Usage: node bench/cpuprofile-top.js FILE [N]
'use strict';
const fs = require('node:fs');

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/cpuprofile-top.js FILE.cpuprofile|FILE.heapprofile [N]');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
/** Self time (µs) or, for a heap profile, self bytes, by profile node id. */
const selfUs = new Map();
const byId = new Map();
const heap = profile.head !== undefined;
if (heap) {
  // A tree: each node carries the bytes its function allocated itself.
  const stack = [profile.head];
  while (stack.length > 0) {
    const n = stack.pop();
    byId.set(n.id, n);
    if (n.selfSize > 0) selfUs.set(n.id, n.selfSize);
    stack.push(...n.children);
  }
} else {
  for (const n of profile.nodes) byId.set(n.id, n);
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i] ?? 0));
  }
}

function area(cf) {
  const url = cf.url || '';
  const name = cf.functionName;
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)' || name === '(program)') return name;
  if (url.startsWith('node:') || (!url && name)) {
    if (/tls|_tls|crypto/.test(url)) return 'node TLS';
    if (/http|_http/.test(url)) return 'node http';
    if (/stream/.test(url)) return 'node streams';
    if (/net/.test(url)) return 'node net';
    return url ? 'node other' : 'native';
  }
  return bundleArea(url, cf.lineNumber);
}

/**
 * The bundle: esbuild marks where each module starts with a `// path` comment line, so a line
 * number names its package (undici, pino, prom-client, ...) or this proxy's own source.
 */
const bundleModules = new Map();
function bundleArea(url, line) {
  if (!bundleModules.has(url)) {
    const starts = [];
    try {
      // A CPU profile names the bundle by file: URL, a heap profile by path.
      const text = fs.readFileSync(url.startsWith('/') ? url : new URL(url), 'utf8').split('\n');
      text.forEach((l, i) => {
        if (/^\/\/ \S+\.(c|m)?[jt]s$/.test(l)) starts.push([i, l.slice(3)]);
      });
    } catch { /* not readable: one area for it */ }
    bundleModules.set(url, starts);
  }
  const starts = bundleModules.get(url);
  let lo = 0;
  let hi = starts.length - 1;
  let found;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid][0] <= line) {
      found = starts[mid][1];
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (!found) return 'bundle';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(found);
  if (pkg) return pkg[1];
  return found.startsWith('src/') ? `proxy ${found.slice(4)}` : 'bundle';
}

const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const areas = new Map();
const fns = new Map();
for (const [id, us] of selfUs) {
  const cf = byId.get(id).callFrame;
  const a = area(cf);
  areas.set(a, (areas.get(a) ?? 0) + us);
  const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\//, '')}:${cf.lineNumber + 1}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
}
const busy = total - (areas.get('(idle)') ?? 0);
const perRequest = heap && profile.requests > 0;
const show = heap
  ? (bytes) => `${(perRequest ? bytes / profile.requests : bytes / 1024).toFixed(0).padStart(7)} ${perRequest ? 'B/req' : 'KiB'} ${((100 * bytes) / total).toFixed(1).padStart(5)} %`
  : (us) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
if (heap) {
  console.log(perRequest
    ? `allocated ${(total / profile.requests / 1024).toFixed(1)} KiB per request over ${profile.requests} requests (${(total / 1048576).toFixed(0)} MiB)\n`
    : `allocated ${(total / 1048576).toFixed(0)} MiB (no request count in the profile)\n`);
} else {
  console.log(`busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms sampled\n`);
}
for (const [a, v] of [...areas].filter(([a]) => a !== '(idle)').sort((x, y) => y[1] - x[1])) console.log(`${show(v)}  ${a}`);
console.log('');
for (const [k, v] of [...fns].sort((x, y) => y[1] - x[1]).slice(0, Number(topArg ?? 40))) {
  if (k.startsWith('(idle)')) continue;
  console.log(`${show(v)}  ${k}`);
}
