// What a Node proxy allocates per request, by function: loaded with `--require` (through
// BENCH_EGRESS_NODE_ARGS or BENCH_PEER_NODE_ARGS), it runs V8's sampling heap profiler over the
// process's life, objects the collector has freed included, and counts the HTTP/1.1 requests its
// servers received. At exit it writes both to ALLOC_PROBE_DIR (default: the working directory) as
// alloc-<pid>.heapprofile, which `node bench/cpuprofile-top.js FILE` summarises in bytes per
// request. Allocation is a steadier measure of a change on the request path than CPU time, which
// moves tens of percent between runs on a shared machine.
'use strict';
const diagnostics = require('node:diagnostics_channel');
const fs = require('node:fs');
const inspector = require('node:inspector');
const path = require('node:path');

const dir = process.env.ALLOC_PROBE_DIR || process.cwd();
let requests = 0;
diagnostics.subscribe('http.server.request.start', () => {
  requests++;
});
const session = new inspector.Session();
session.connect();
// One sample per 4 KiB allocated on average; V8 scales each sample back to the bytes it stands for.
session.post('HeapProfiler.startSampling', {
  samplingInterval: 4096,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
process.on('exit', () => {
  // An in-process session answers synchronously, so the profile is written before the exit.
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err) {
      process.stderr.write(`alloc-probe: ${err.message}\n`);
      return;
    }
    fs.writeFileSync(path.join(dir, `alloc-${process.pid}.heapprofile`), JSON.stringify({ ...result.profile, requests }));
  });
});
