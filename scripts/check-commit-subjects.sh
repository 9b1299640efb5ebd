#!/usr/bin/env bash
# Fails when a commit made since this check was added has a subject longer than 72 characters.
# Older commits are history and are not rewritten: only commits whose committer date is at or
# after SINCE (the check's introduction) are read. Merges of branches started earlier still pass
# as long as their own new commits keep the rule.
#
# Usage: scripts/check-commit-subjects.sh [revision]   (default HEAD)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly MAX=72
# 2026-12-02 16:57:35 UTC, when the rule became a check.
readonly SINCE=1796230655
rev=${1:-HEAD}

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "commit subjects: not a git checkout, nothing to check"
  exit 0
fi

bad=0
checked=0
# %x1f separates the fields; subjects never hold it. Characters, not bytes, are counted.
while IFS=$'\x1f' read -r when hash subject; do
  [[ $when -ge $SINCE ]] || continue
  checked=$((checked + 1))
  length=$(printf '%s' "$subject" | LC_ALL=C.UTF-8 wc -m)
  if [[ $length -gt $MAX ]]; then
    echo "commit $hash: subject is $length characters, more than $MAX: $subject" >&2
    bad=$((bad + 1))
  fi
done < <(git log --format='%ct%x1f%h%x1f%s' "$rev")

if [[ $bad -gt 0 ]]; then
  echo "$bad commit subject(s) over $MAX characters; reword them before they are merged (git commit --amend, or git rebase -i for older ones)" >&2
  exit 1
fi
echo "commit subjects: $checked commit(s) since the check, none over $MAX characters"
