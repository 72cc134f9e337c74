#!/usr/bin/env bash
# Fail when nbdev-export, nbdev-clean or the README generator would change a tracked file:
# the library must match the notebooks, and notebooks must carry no outputs or metadata noise.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV:-.venv}/bin
$bin/nbdev-export
$bin/nbdev-clean
$bin/python scripts/readme.py
changed=$(git status --porcelain --untracked-files=no -- tilegan_core nbs README.md)
if [ -n "$changed" ]; then
  echo "check-sync: these tracked files change after nbdev-export / nbdev-clean / scripts/readme.py:" >&2
  echo "$changed" >&2
  echo "check-sync: run 'make export' and commit the result" >&2
  git --no-pager diff --stat -- tilegan_core nbs README.md >&2 || true
  exit 1
fi
untracked=$(git status --porcelain -- tilegan_core | grep '^??' || true)
if [ -n "$untracked" ]; then
  echo "check-sync: nbdev-export creates untracked library files; commit them:" >&2
  echo "$untracked" >&2
  exit 1
fi
echo "check-sync: library, notebooks and README are in sync"
