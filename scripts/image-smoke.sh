#!/usr/bin/env bash
# shellcheck disable=SC2016 # the node -e programs are single-quoted on purpose
# Smoke test of the built image: runs the proxy inside it (buildah run, chroot isolation, the
# image's own entrypoint and user, config mounted read-only, no writable path), checks /live and
# /ready, sends one request through it to a local HTTPS upstream (TLS originated and verified
# against a CA made here), checks the upstream answered and saw the right SNI, then stops the
# proxy with SIGTERM and expects a clean exit. Everything stays on loopback.
#
#   scripts/image-smoke.sh            IMAGE (default localhost/cdk8s-egress-proxy:dev)
#   STORAGE_DRIVER, BUILDAH_ROOT, BUILDAH_RUNROOT   as in scripts/assemble-base.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE=${IMAGE:-localhost/cdk8s-egress-proxy:dev}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
UPSTREAM_NAME=upstream.smoke.test   # never resolved: the ExternalService pins it to 127.0.0.1
WRONG_NAME=wrong.smoke.test         # same upstream, but its certificate does not name this
SUFFIX=egress.local

buildah_() {
  local args=(--storage-driver "$STORAGE_DRIVER")
  [[ -n ${BUILDAH_ROOT:-} ]] && args+=(--root "$BUILDAH_ROOT")
  [[ -n ${BUILDAH_RUNROOT:-} ]] && args+=(--runroot "$BUILDAH_RUNROOT")
  buildah "${args[@]}" "$@"
}

say() { echo "image-smoke: $*"; }
fail() {
  echo "image-smoke: FAIL: $*" >&2
  local log=${work:-/nonexistent}/${proxy_log:-proxy.log}
  if [[ -s $log ]]; then
    echo "image-smoke: --- proxy output (last 40 lines of $(basename "$log")) ---" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/egress-smoke.XXXXXX")
ctr=""
upstream_pid=""
run_pid=""
children_of() { # from /proc, so procps need not be installed
  local st
  for st in /proc/[0-9]*/status; do
    awk -v want="$1" '/^PPid:/ { if ($2 == want) { split(FILENAME, p, "/"); print p[3] } exit }' "$st" 2>/dev/null || true
  done
}
descendants() { local c; for c in $(children_of "$1"); do echo "$c"; descendants "$c"; done; }

# Two free loopback ports, on one line (the container shares the host's network).
two_free_ports() {
  node -e '
    const net = require("node:net");
    const servers = [0, 1].map(() => net.createServer());
    Promise.all(servers.map((s) => new Promise((r) => s.listen(0, "127.0.0.1", r)))).then(() => {
      console.log(servers.map((s) => s.address().port).join(" "));
      servers.forEach((s) => s.close());
    });'
}

# Listening sockets on a port, whoever holds them (the kernel's table; the container shares this
# network namespace), then for each PID given how many of them it holds (by socket inode).
listening_sockets() {
  node -e '
    const fs = require("node:fs");
    const [port, ...pids] = process.argv.slice(1).map(Number);
    const inodes = new Set();
    for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      let text = "";
      try { text = fs.readFileSync(f, "latin1"); } catch { continue; }
      for (const line of text.split("\n")) {
        const c = line.trim().split(/\s+/);
        if (c[3] === "0A" && parseInt(c[1].slice(c[1].lastIndexOf(":") + 1), 16) === port) inodes.add(c[9]);
      }
    }
    const held = pids.map((pid) => fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try { return inodes.has((/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`)) || [])[1]); } catch { return false; }
    }).length);
    console.log([inodes.size, ...held].join(" "));' "$@"
}

# A field of the proxy's (the supervisor's, with workers) "started" log line.
started_field() {
  node -e '
    const [file, field] = process.argv.slice(1);
    const lines = require("node:fs").readFileSync(file, "utf8").split("\n").filter((l) => l.startsWith("{"));
    const started = lines.map((l) => JSON.parse(l)).find((l) => l.event === "started" && !l.worker);
    console.log(started ? started[field] : "none");' "$1" "$2"
}

# 64 connections at once to the proxy's HTTP port, one GET each to the pinned loopback upstream;
# prints the statuses counted, fails unless every one is 200.
burst() {
  node -e '
    const net = require("node:net");
    const [port, host] = [Number(process.argv[1]), process.argv[2]];
    const one = () => new Promise((resolve) => {
      const c = net.connect(port, "127.0.0.1");
      let got = "";
      c.setTimeout(10000, () => c.destroy());
      c.on("connect", () => c.write(`GET /burst HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
      c.on("data", (d) => { got += d; });
      c.on("error", () => undefined);
      c.on("close", () => resolve(/^HTTP\/1\.1 \d{3} /.test(got) ? got.slice(9, 12) : "none"));
    });
    Promise.all(Array.from({ length: 64 }, one)).then((codes) => {
      const by = {};
      for (const c of codes) by[c] = (by[c] || 0) + 1;
      console.log(JSON.stringify(by));
      if (by[200] !== codes.length) process.exit(1);
    });' "$1" "$UPSTREAM_NAME.$SUFFIX"
}

# The image's entrypoint with these args in the container, as Kubernetes runs it (the config
# read-only, nothing else writable), in the background: its output goes to $work/<log>.
start_proxy() {
  local log=$1
  shift
  buildah_ run --isolation chroot \
    --mount "type=bind,src=$cfg,target=/etc/egress,ro" \
    --mount "type=bind,src=$work/empty,target=/tmp,ro" \
    --mount "type=bind,src=$work/empty,target=/home/nonroot,ro" \
    "$ctr" -- "${entrypoint[@]}" "$@" >"$work/$log" 2>&1 &
  run_pid=$!
}

# SIGTERM to the proxy's main process; the container must end with status 0 within 10 s.
stop_proxy() {
  local rc=0
  kill -TERM "$1"
  for _ in $(seq 100); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$run_pid" 2>/dev/null; then fail "the proxy did not exit within 10 s of SIGTERM"; fi
  wait "$run_pid" || rc=$?
  run_pid=""
  [[ $rc == 0 ]] || fail "the proxy exited with status $rc after SIGTERM"
}

cleanup() {
  set +e
  if [[ -n $run_pid ]] && kill -0 "$run_pid" 2>/dev/null; then
    # SIGKILL on buildah would orphan the container's process; TERM makes buildah stop it.
    local procs p
    procs=$(descendants "$run_pid")
    kill -TERM "$run_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
    for p in $procs; do kill -KILL "$p" 2>/dev/null; done
    kill -KILL "$run_pid" 2>/dev/null
    wait "$run_pid" 2>/dev/null
  fi
  [[ -n $upstream_pid ]] && kill "$upstream_pid" 2>/dev/null && wait "$upstream_pid" 2>/dev/null
  if [[ -n $ctr ]]; then
    buildah_ umount "$ctr" >/dev/null 2>&1
    buildah_ rm "$ctr" >/dev/null 2>&1
  fi
  if [[ -n ${KEEP_SMOKE:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# A signal (Ctrl-C, a closed pipe) must still run the cleanup, which exit does.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

command -v buildah >/dev/null || fail "buildah is not installed"
command -v openssl >/dev/null || fail "openssl is not installed"
command -v curl >/dev/null || fail "curl is not installed"
buildah_ inspect --type image "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE; run scripts/build-image.sh first"

# --- a CA and a server certificate for the upstream, made here and thrown away after
cfg=$work/etc-egress
mkdir -p "$cfg" "$work/pki" "$work/empty"
(
  cd "$work/pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=egress smoke CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$UPSTREAM_NAME" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$UPSTREAM_NAME" > ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile ext.cnf -out server.pem 2>/dev/null
)
cp "$work/pki/ca.pem" "$cfg/upstream-ca.pem"

# --- the upstream: HTTPS on 127.0.0.1, answers with what it saw and logs one line per request
nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
cat > "$work/upstream.js" <<'EOF'
const https = require('node:https');
const fs = require('node:fs');
const [dir, portFile, logFile] = process.argv.slice(2);
const server = https.createServer({
  key: fs.readFileSync(`${dir}/server.key`), cert: fs.readFileSync(`${dir}/server.pem`),
}, (req, res) => {
  const seen = { sni: req.socket.servername, host: req.headers.host, path: req.url, method: req.method };
  fs.appendFileSync(logFile, JSON.stringify(seen) + '\n');
  res.setHeader('content-type', 'application/json');
  res.setHeader('x-smoke-upstream', '1');
  res.end(JSON.stringify({ upstream: 'smoke', ...seen }));
});
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
EOF
node "$work/upstream.js" "$work/pki" "$work/upstream.port" "$work/upstream.log" &
upstream_pid=$!
for _ in $(seq 50); do [[ -s $work/upstream.port ]] && break; sleep 0.1; done
[[ -s $work/upstream.port ]] || fail "the local upstream did not start"
upstream_port=$(cat "$work/upstream.port")

# --- free loopback ports for the proxy's listeners (the container shares the host's network)
read -r http_port admin_port < <(two_free_ports)

# --- the config, hand-written as an operator would (defaults fill what is left out)
cat > "$cfg/config.json" <<EOF
{
  "apiVersion": "egress.cdk8s.io/v1alpha1",
  "kind": "EgressProxyConfig",
  "gateway": { "name": "smoke", "namespace": "default" },
  "listeners": {
    "bindAddress": "127.0.0.1",
    "http": { "port": $http_port, "suffixes": ["$SUFFIX"], "forwardProxy": false, "parentPort": 80 },
    "tcp": [],
    "admin": { "port": $admin_port }
  },
  "parent": {
    "group": "policy.linkerd.io", "kind": "EgressNetwork", "name": "smoke", "namespace": "default",
    "trafficPolicy": "Allow", "networks": [], "mode": "Enforce"
  },
  "externalServices": [
    {
      "name": "smoke-upstream",
      "host": "$UPSTREAM_NAME",
      "ports": [{ "port": 80, "protocol": "http", "targetPort": $upstream_port }],
      "endpoints": [{ "address": "127.0.0.1", "port": $upstream_port, "priority": 0 }],
      "tls": {
        "enabled": true, "minVersion": "TLS12", "maxVersion": "TLSAuto", "mode": "Secured",
        "caFile": "/etc/egress/upstream-ca.pem", "subjectAltNames": [], "allowRenegotiation": false
      },
      "pool": { "maxConnections": 8, "keepAliveTimeoutMs": 5000 },
      "injectHeaders": []
    },
    {
      "name": "smoke-wrong-name",
      "host": "$WRONG_NAME",
      "ports": [{ "port": 80, "protocol": "http", "targetPort": $upstream_port }],
      "endpoints": [{ "address": "127.0.0.1", "port": $upstream_port, "priority": 0 }],
      "tls": {
        "enabled": true, "minVersion": "TLS12", "maxVersion": "TLSAuto", "mode": "Secured",
        "caFile": "/etc/egress/upstream-ca.pem", "subjectAltNames": [], "allowRenegotiation": false
      },
      "pool": { "maxConnections": 8, "keepAliveTimeoutMs": 5000 },
      "injectHeaders": []
    }
  ],
  "routes": [],
  "addressPolicy": { "allowCidrs": ["127.0.0.0/8"], "denyCidrs": [] },
  "timeouts": {
    "dnsMs": 2000, "connectMs": 2000, "tlsHandshakeMs": 2000, "requestHeadersMs": 5000,
    "responseHeadersMs": 5000, "idleMs": 10000, "totalMs": 0, "tunnelIdleMs": 10000, "shutdownGraceMs": 2000
  },
  "limits": { "maxConcurrent": 100, "maxHeaderBytes": 16384 },
  "defaultTls": {
    "enabled": true, "minVersion": "TLS12", "maxVersion": "TLSAuto", "mode": "Secured",
    "subjectAltNames": [], "allowRenegotiation": false
  }
}
EOF
# The proxy runs as the image's non-root user; it only needs to read these.
chmod 0755 "$cfg" "$work/empty"
chmod 0644 "$cfg"/*

# --- the container: the image's entrypoint and default args, as Kubernetes would run it
read -r -a entrypoint <<<"$(buildah_ inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")"
read -r -a cmd <<<"$(buildah_ inspect --type image --format '{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$IMAGE")"
[[ ${#entrypoint[@]} -gt 0 ]] || fail "the image has no entrypoint"
user=$(buildah_ inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")
[[ $user =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fail "image user is \"$user\", expected a numeric non-root uid"
[[ " ${cmd[*]} " == *" /etc/egress/config.json "* ]] || fail "default args \"${cmd[*]}\" do not read /etc/egress/config.json"
ctr=$(buildah_ from --pull-never --name "egress-smoke-$$" "$IMAGE")
rootfs=$(buildah_ mount "$ctr")

# --- the runtime: the image's own node, a supported LTS (22 or later; Node 20 is end of life),
# and the release the Dockerfile pins unless EXPECT_NODE_VERSION says otherwise ("any": skip).
read -r node_version node_path < <(buildah_ run --isolation chroot "$ctr" -- node -p 'process.versions.node + " " + process.execPath' 2>&1) \
  || fail "node does not run inside the image"
[[ $node_version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "node inside the image answered \"$node_version $node_path\""
(( ${node_version%%.*} >= 22 )) || fail "the image runs Node $node_version; Node ${node_version%%.*} is end of life (22 or later)"
expected_node=${EXPECT_NODE_VERSION:-$(sed -nE 's/^ARG NODE_VERSION=([0-9.]+)[[:space:]]*$/\1/p' Dockerfile | head -n 1)}
if [[ $expected_node != any ]]; then
  [[ $node_version == "$expected_node" ]] || fail "the image runs Node $node_version, the Dockerfile pins $expected_node"
fi
say "runtime: node v$node_version ($node_path) inside $IMAGE; this machine runs $(node --version)"
touch "$work/before-run"
sleep 1 # mtime granularity: anything a run writes must be strictly newer than the marker

# --- contract: every proxy config the examples synthesised (npm run synth) passes the image's
# own --check-config, so what the constructs render is what the shipped proxy accepts.
mkdir -p "$work/synth-configs"
if [[ -d dist ]]; then
  node -e '
    const fs = require("node:fs"), path = require("node:path"), YAML = require("yaml");
    const [out] = process.argv.slice(1);
    for (const ex of fs.readdirSync("dist")) {
      const dir = path.join("dist", ex);
      if (!fs.statSync(dir).isDirectory()) continue;
      for (const f of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n))) {
        for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), "utf8"))) {
          const o = doc.toJS();
          const text = o && o.kind === "ConfigMap" && o.data && o.data["config.json"];
          if (text) fs.writeFileSync(path.join(out, `${ex}--${o.metadata.name}.json`), text);
        }
      }
    }' "$work/synth-configs"
fi
chmod 0755 "$work/synth-configs"
checked=0
for f in "$work"/synth-configs/*.json; do
  [[ -e $f ]] || break
  chmod 0644 "$f"
  name=$(basename "$f")
  out=$(buildah_ run --isolation chroot --mount "type=bind,src=$work/synth-configs,target=/etc/egress-check,ro" \
    "$ctr" -- "${entrypoint[@]}" --check-config "/etc/egress-check/$name" 2>&1) \
    || fail "synthesised config $name is rejected by the image's proxy: $out"
  checked=$((checked + 1))
done
if [[ $checked -gt 0 ]]; then
  say "contract: $checked synthesised proxy configs pass --check-config inside the image"
else
  say "contract: no synthesised proxy configs under dist/ (run npm run synth first); skipped"
fi

say "starting the proxy in $IMAGE as $user: ${entrypoint[*]} ${cmd[*]}"
start_proxy proxy.log "${cmd[@]}"

# buildah does not forward SIGTERM to the container, so find the node process it started.
proxy_pid=""
for _ in $(seq 100); do
  for p in $(descendants "$run_pid"); do
    # By executable, not name: recent Node names its main thread "MainThread".
    [[ /proc/$p/exe -ef $rootfs$node_path ]] && proxy_pid=$p
  done
  [[ -n $proxy_pid ]] && break
  kill -0 "$run_pid" 2>/dev/null || fail "the container exited at start"
  sleep 0.1
done
[[ -n $proxy_pid ]] || fail "no process under buildah run executes the image's $node_path"
proxy_uid=$(awk '/^Uid:/{print $2}' "/proc/$proxy_pid/status")
[[ $proxy_uid == "${user%%:*}" ]] || fail "the proxy runs as uid $proxy_uid, not the image user ${user%%:*}"

admin=http://127.0.0.1:$admin_port
for _ in $(seq 100); do
  curl -fsS -o /dev/null "$admin/live" 2>/dev/null && break
  kill -0 "$run_pid" 2>/dev/null || fail "the proxy exited before answering /live"
  sleep 0.1
done
live=$(curl -sS -o /dev/null -w '%{http_code}' "$admin/live") || fail "/live did not answer"
[[ $live == 200 ]] || fail "/live answered $live"
ready=""
for _ in $(seq 50); do
  ready=$(curl -sS -o /dev/null -w '%{http_code}' "$admin/ready" || true)
  [[ $ready == 200 ]] && break
  sleep 0.1
done
[[ $ready == 200 ]] || fail "/ready answered $ready"
say "admin: /live $live, /ready $ready (pid $proxy_pid, uid $proxy_uid, node v$node_version of the image)"

# --- one request through the proxy: plaintext in, verified TLS to the upstream out
body=$(curl -sS --max-time 10 -D "$work/headers" -H "Host: $UPSTREAM_NAME.$SUFFIX" \
  "http://127.0.0.1:$http_port/smoke/$nonce?via=image") || fail "the request through the proxy failed"
status=$(awk 'NR==1{print $2}' "$work/headers")
[[ $status == 200 ]] || fail "request through the proxy got $status: $body"
grep -qi '^x-smoke-upstream: 1' "$work/headers" || fail "the response did not come from the upstream: $(cat "$work/headers")"
node -e '
  const [body, nonce, name] = process.argv.slice(1);
  const b = JSON.parse(body);
  const problems = [];
  if (b.upstream !== "smoke") problems.push("not the smoke upstream");
  if (b.path !== `/smoke/${nonce}?via=image`) problems.push(`path ${b.path}`);
  if (b.sni !== name) problems.push(`SNI ${b.sni}, expected ${name}`);
  if (b.method !== "GET") problems.push(`method ${b.method}`);
  if (problems.length) { console.error(problems.join("; ")); process.exit(1); }' "$body" "$nonce" "$UPSTREAM_NAME" \
  || fail "upstream answer is wrong: $body"
[[ $(wc -l < "$work/upstream.log") -eq 1 ]] || fail "the upstream saw $(wc -l < "$work/upstream.log") requests, expected 1"
say "request via proxy: $status from the upstream (SNI $UPSTREAM_NAME, path /smoke/$nonce?via=image)"
# The proxy's own account of it: one JSON line for the request, TLS to the pinned loopback address.
logged=$(node -e '
  const [file, nonce] = process.argv.slice(1);
  const lines = require("node:fs").readFileSync(file, "utf8").split("\n").filter((l) => l.includes(nonce));
  if (lines.length !== 1) { console.error(`${lines.length} log lines mention the request`); process.exit(1); }
  const l = JSON.parse(lines[0]);
  const u = l.upstream || {};
  if (u.tls !== true || u.address !== "127.0.0.1") { console.error(`upstream ${JSON.stringify(u)}`); process.exit(1); }
  console.log(`${l.decision}/${l.reason} route ${l.route} -> ${u.host} at ${u.address}:${u.port} tls=${u.tls} status ${l.status}`);' \
  "$work/proxy.log" "$nonce") || fail "the proxy log does not show the request going out over TLS to 127.0.0.1"
say "proxy log: $logged"

# Verification is real: the same upstream under a name its certificate lacks is refused (502),
# never retried in plaintext or unverified.
wrong=$(curl -sS --max-time 10 -o "$work/wrong.body" -w '%{http_code} %header{x-egress-error}' \
  -H "Host: $WRONG_NAME.$SUFFIX" "http://127.0.0.1:$http_port/wrong") || fail "the wrong-name request failed to complete"
[[ ${wrong%% *} == 502 ]] || fail "a certificate without the requested name got \"$wrong\", expected 502: $(cat "$work/wrong.body")"
[[ $(wc -l < "$work/upstream.log") -eq 1 ]] || fail "the upstream served a request for a name its certificate lacks"
say "certificate name mismatch: ${wrong%% *} (x-egress-error: ${wrong#* })"

metrics=$(curl -fsS "$admin/metrics") || fail "/metrics did not answer"
grep -q '^outbound_http_route_request_statuses_total{.*http_status="200"' <<<"$metrics" \
  || grep -q '^outbound_http_route_request_statuses_total{.*200' <<<"$metrics" \
  || fail "/metrics has no outbound_http_route_request_statuses_total sample for the 200"
say "metrics: $(grep -c '^outbound_' <<<"$metrics") outbound_* samples"

# --- the image's Node shares the data-plane port among several listening sockets (SO_REUSEPORT,
# listeners.ts), so a burst of new connections is accepted several per event-loop turn; a burst
# of 64 connections at once, spread over them by the kernel, is answered on every one (by the
# pinned loopback upstream: a name the proxy had to resolve would send a query to the resolver).
listening=$(listening_sockets "$http_port")
(( listening > 1 )) || fail "the data-plane port $http_port has $listening listening socket(s) with the image's Node $node_version; expected several (SO_REUSEPORT)"
reported=$(started_field "$work/proxy.log" acceptSockets)
[[ $reported == "$listening" ]] || fail "the proxy reports $reported accept sockets per port; the kernel shows $listening on port $http_port"
burst=$(burst "$http_port") || fail "a burst of 64 connections: not all answered 200 ($burst)"
say "accept: $listening listening sockets on port $http_port; a burst of 64 connections all answered $burst"

# --- SIGTERM: not ready, drain, exit 0 within the grace period
stop_proxy "$proxy_pid"
say "SIGTERM: exited 0"

# --- the image's NODE_OPTIONS carries --expose-gc: the proxy has its collector for the idle memory
# reclaim (without it the proxy logs idle-reclaim-off at start; test/proxy/idle-memory.test.ts)
[[ $(started_field "$work/proxy.log" event) == started ]] || fail "no started line in the proxy log"
if grep -q '"event":"idle-reclaim-off"' "$work/proxy.log"; then
  fail "the proxy in the image runs without gc(): its NODE_OPTIONS lacks --expose-gc"
fi
say "idle memory reclaim: on (gc() exposed by the image's NODE_OPTIONS)"

# --- two workers (`workers: 2`, as an EgressGateway renders it for 2 CPUs): with the image's
# Node each worker binds the port beside the other (SO_REUSEPORT), the supervisor holds none of
# its sockets; a burst is answered, by both workers; SIGTERM drains both and the supervisor exits 0.
read -r w_http_port w_admin_port < <(two_free_ports)
node -e '
  const fs = require("node:fs");
  const [from, to, http, admin] = process.argv.slice(1);
  const c = JSON.parse(fs.readFileSync(from, "utf8"));
  c.workers = 2;
  c.listeners.http.port = Number(http);
  c.listeners.admin.port = Number(admin);
  fs.writeFileSync(to, JSON.stringify(c));' "$cfg/config.json" "$cfg/config-workers.json" "$w_http_port" "$w_admin_port"
chmod 0644 "$cfg/config-workers.json"
workers_cmd=("${cmd[@]/\/etc\/egress\/config.json/\/etc\/egress\/config-workers.json}")
proxy_log=workers.log
start_proxy workers.log "${workers_cmd[@]}"
for _ in $(seq 200); do
  [[ $(started_field "$work/workers.log" accept) != none ]] && break
  kill -0 "$run_pid" 2>/dev/null || fail "the two-worker proxy exited at start"
  sleep 0.1
done
accept=$(started_field "$work/workers.log" accept)
[[ $accept == workers ]] || fail "with two workers on Node $node_version the 'started' line says accept \"$accept\", expected workers"
# The supervisor: the image's node whose parent is not one (the workers are its children).
supervisor_pid=""
worker_pids=()
for p in $(descendants "$run_pid"); do
  [[ /proc/$p/exe -ef $rootfs$node_path ]] || continue
  parent=$(awk '/^PPid:/{print $2}' "/proc/$p/status")
  if [[ /proc/$parent/exe -ef $rootfs$node_path ]]; then worker_pids+=("$p"); else supervisor_pid=$p; fi
done
[[ -n $supervisor_pid && ${#worker_pids[@]} -eq 2 ]] || fail "expected a supervisor and 2 workers, found supervisor \"$supervisor_pid\" and workers \"${worker_pids[*]}\""
read -r w_listening held_supervisor held_w1 held_w2 < <(listening_sockets "$w_http_port" "$supervisor_pid" "${worker_pids[@]}")
w_reported=$(started_field "$work/workers.log" acceptSockets)
[[ $w_reported == "$w_listening" ]] || fail "two workers report $w_reported accept sockets; the kernel shows $w_listening on port $w_http_port"
[[ $held_supervisor == 0 && $held_w1 -gt 0 && $held_w2 -gt 0 && $((held_w1 + held_w2)) == "$w_listening" ]] \
  || fail "listening sockets held by supervisor, worker, worker: $held_supervisor $held_w1 $held_w2; expected none by the supervisor and all $w_listening by the workers"
w_burst=$(burst "$w_http_port") || fail "two workers: a burst of 64 connections: not all answered 200 ($w_burst)"
served=$(node -e '
  const lines = require("node:fs").readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const by = {};
  for (const l of lines) if (l.msg === "request" && l.path === "/burst") by[l.worker] = (by[l.worker] || 0) + 1;
  console.log(Object.keys(by).sort().map((w) => `worker ${w}: ${by[w]}`).join(", "));' "$work/workers.log")
[[ $served == *"worker 1:"*"worker 2:"* ]] || fail "two workers: the burst's access lines show \"$served\", expected both workers"
stop_proxy "$supervisor_pid"
say "two workers: accept $accept, $w_listening listening sockets on port $w_http_port held $held_w1 + $held_w2 by the workers, none by the supervisor; a burst of 64 all answered $w_burst ($served); SIGTERM: exited 0"
proxy_log=proxy.log

# --- nothing was written into the image's filesystem (buildah creates the mount points)
written=$(cd "$rootfs" && find . -newer "$work/before-run" \
  ! -path . ! -path ./etc ! -path ./etc/hosts ! -path ./etc/resolv.conf ! -path ./etc/hostname \
  ! -path ./etc/egress ! -path ./etc/egress-check ! -path ./proc ! -path ./dev ! -path ./sys ! -path ./run ! -path ./tmp \
  ! -path ./home/nonroot ! -path ./home -print)
[[ -z $written ]] || fail "the proxy wrote into the image filesystem: $written"
log_lines=$(grep -c '^{' "$work/proxy.log" || true)
say "ok: $IMAGE served /live, /ready and a TLS-originated request on loopback, wrote nothing, stopped cleanly ($log_lines JSON log lines)"
