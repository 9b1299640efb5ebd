#!/usr/bin/env bash
# Validates every synthesised example (dist/<example>/ for each examples/<example>/main.ts), one
# example (one app) at a time, with the project's own validator: strictly against the CRDs bundled
# in crds/ and the Kubernetes schemas, plus the references inside the set. When the independent
# validator ../shared/tools/validate-manifests exists (development machines, CI), it checks each
# example again; nothing is set aside by either.
#
# Usage: scripts/validate-examples.sh [example ...]   (run `npm run synth` first)
# VALIDATE_MANIFESTS overrides the second validator (default ../shared/tools/validate-manifests;
# skipped when missing); EXAMPLES_DIR and DIST_DIR the folders (default examples and dist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
second=${VALIDATE_MANIFESTS:-../shared/tools/validate-manifests}
examples=${EXAMPLES_DIR:-examples}
dist=${DIST_DIR:-dist}

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for main in "$examples"/*/main.ts; do [[ -f $main ]] && names+=("$(basename "$(dirname "$main")")"); done
fi
[[ ${#names[@]} -gt 0 ]] || { echo "validate-examples: no $examples/*/main.ts found" >&2; exit 2; }

status=0
dirs=()
for name in "${names[@]}"; do
  dir=$dist/$name
  if [[ ! -f $examples/$name/main.ts ]]; then echo "no example $examples/$name/main.ts"; status=1; continue; fi
  if [[ ! -d $dir ]]; then echo "$dir is missing: run \`npm run synth\` first"; status=1; continue; fi
  dirs+=("$dir")
done
[[ ${#dirs[@]} -gt 0 ]] || { echo "validate-examples: FAILED" >&2; exit 1; }

echo "==== the project's validator (bundled CRDs, Kubernetes schemas, references)"
set +e
npx --no-install ts-node --transpile-only --project test/tsconfig.json scripts/validate-manifests.ts "${dirs[@]}"
rc=$?
set -e
[[ $rc -eq 0 ]] || { echo "the project's validator exited with $rc"; status=1; }

if [[ -x $second ]]; then
  echo "==== second check: $second"
  for dir in "${dirs[@]}"; do
    echo "== $dir"
    set +e
    out=$("$second" "$dir" 2>&1)
    rc=$?
    set -e
    printf '%s\n' "$out" | sed 's/^/  /'
    [[ $rc -eq 0 ]] || { echo "  $second exited with $rc"; status=1; }
  done
else
  echo "==== second check skipped: $second not found"
fi

if [[ $status -ne 0 ]]; then echo "validate-examples: FAILED" >&2; else echo "validate-examples: every example passed"; fi
exit $status
