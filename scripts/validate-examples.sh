#!/usr/bin/env bash
# Validates every synthesised example (dist/<example>/ for each examples/<example>/main.ts) with
# the shared strict validator, one example at a time, and fails on any problem but one: the
# validator's known false positive on OSM and Istio objects, which is printed and set aside.
#
# The false positive: the OSM (policy.openservicemesh.io, config.openservicemesh.io) and Istio
# (networking.istio.io) CRDs declare only `spec` (and `status`) at the root of their schema, and
# the validator closes every object schema, so it rejects `apiVersion`, `kind` and `metadata`,
# which every API server accepts on every object. Exactly those three messages, at the root, on
# objects of those groups are set aside; everything else in those objects (all of `spec`) counts.
#
# Usage: scripts/validate-examples.sh [example ...]   (run `npm run synth` first)
# VALIDATE_MANIFESTS overrides the validator (default ../shared/tools/validate-manifests);
# EXAMPLES_DIR and DIST_DIR the folders (default examples and dist), for testing this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
validator=${VALIDATE_MANIFESTS:-../shared/tools/validate-manifests}
examples=${EXAMPLES_DIR:-examples}
dist=${DIST_DIR:-dist}
[[ -x $validator ]] || { echo "validate-examples: validator $validator not found or not executable" >&2; exit 2; }

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for main in "$examples"/*/main.ts; do [[ -f $main ]] && names+=("$(basename "$(dirname "$main")")"); done
fi
[[ ${#names[@]} -gt 0 ]] || { echo "validate-examples: no $examples/*/main.ts found" >&2; exit 2; }

# The classifier reads the validator's output on stdin; prints every line, marking the set-aside
# ones, and exits 1 when anything else failed (or the output is not what it understands).
classifier=$(mktemp --suffix .cjs)
trap 'rm -f "$classifier"' EXIT
cat >"$classifier" <<'JS'
const { readFileSync } = require('fs');
const { resolve } = require('path');
const YAML = require('yaml');
const GROUPS = new Set(['policy.openservicemesh.io', 'config.openservicemesh.io', 'networking.istio.io']);
const ROOT_TYPE_META = /^FAIL (.+)#(\d+)(?:\.(\d+))?: \/ must NOT have additional properties \((apiVersion|kind|metadata)\)$/;
const FAIL = /^FAIL (.+)#(\d+)(?:\.(\d+))?: /;
const SUMMARY = /^(\d+) passed, (\d+) failed$/;
const docs = new Map();
/** The object the validator calls `<file>#<doc>[.<item>]`, numbered as it numbers them. */
function objectAt(file, doc, item) {
  if (!docs.has(file)) docs.set(file, YAML.parseAllDocuments(readFileSync(resolve(file), 'utf8')).map((d) => d.toJS()));
  const o = docs.get(file)[Number(doc)];
  return item === undefined ? o : o?.items?.[Number(item)];
}
const lines = readFileSync(0, 'utf8').split('\n').filter((l) => l !== '');
const failedObjects = new Set();
const realObjects = new Set();
let setAside = 0;
let other = 0;
let summary;
for (const line of lines) {
  const m = ROOT_TYPE_META.exec(line);
  if (m) {
    const o = objectAt(m[1], m[2], m[3]);
    const group = typeof o?.apiVersion === 'string' && o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '';
    failedObjects.add(`${m[1]}#${m[2]}.${m[3] ?? ''}`);
    if (GROUPS.has(group)) {
      setAside++;
      console.log(`  set aside (known validator defect, ${group} ${o.kind}): ${line}`);
      continue;
    }
  }
  const f = FAIL.exec(line);
  if (f) {
    failedObjects.add(`${f[1]}#${f[2]}.${f[3] ?? ''}`);
    realObjects.add(`${f[1]}#${f[2]}.${f[3] ?? ''}`);
    other++;
    console.log(`  ${line}`);
    continue;
  }
  const s = SUMMARY.exec(line);
  if (s) summary = { passed: Number(s[1]), failed: Number(s[2]) };
  console.log(`  ${line}`);
}
if (!summary) {
  console.log('  validate-examples: no "N passed, N failed" line in the validator output');
  process.exit(1);
}
// Every failed object the summary counts must be one this script saw FAIL lines for.
if (summary.failed !== failedObjects.size) {
  console.log(`  validate-examples: the validator reports ${summary.failed} failed objects but printed FAIL lines for ${failedObjects.size}`);
  process.exit(1);
}
if (setAside > 0) {
  const passed = summary.passed + failedObjects.size - realObjects.size;
  console.log('  note: the OSM and Istio CRDs declare only spec at the root and the validator closes that schema, so it rejects the apiVersion, kind and metadata every object has; those messages alone are set aside');
  console.log(`  => ${passed} passed, ${realObjects.size} failed once the ${setAside} message(s) above are set aside`);
}
process.exit(other > 0 ? 1 : 0);
JS
classify() { NODE_PATH="$PWD/node_modules" node "$classifier"; }

status=0
for name in "${names[@]}"; do
  dir=$dist/$name
  echo "== $dir"
  if [[ ! -f $examples/$name/main.ts ]]; then echo "  no example $examples/$name/main.ts"; status=1; continue; fi
  if [[ ! -d $dir ]]; then echo "  $dir is missing: run \`npm run synth\` first"; status=1; continue; fi
  set +e
  out=$("$validator" "$dir" 2>&1)
  rc=$?
  set -e
  if [[ $rc -gt 1 ]]; then
    printf '%s\n' "$out" | sed 's/^/  /'
    echo "  validator exited with $rc"
    status=1
    continue
  fi
  if ! printf '%s\n' "$out" | classify; then status=1; fi
done
if [[ $status -ne 0 ]]; then echo "validate-examples: FAILED" >&2; else echo "validate-examples: every example passed"; fi
exit $status
