#!/bin/bash
# slim.sh on | off | size: keep results/ out of the working tree while a device call carries it.
# Why: a call carries the working tree (tracked and untracked-not-ignored files) and at most 64 MiB of it; since
# results/laptop-cv/ (275 runs) was recorded the tracked files alone are ~76 MB, and a call needs none of results/
# (the tuned rates are in bcdet_helpers/profiles.py; a call reads only .gpu/ and the code). `on` is a git sparse
# checkout: results/ leaves the working tree, nothing committed changes, `git status` stays clean; `off` brings it
# back. Untried on the device tool as of 2026-12-04 (no GPU lent): if a call is still refused as over 64 MiB, the
# tool counts the index rather than the tree, and results/ must shrink instead (see README.md here).
set -eu
cd "$(git rev-parse --show-toplevel)"
size() { git ls-files -z | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
           | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1; }
case "${1:-size}" in
  on) [ -z "$(git status --porcelain -- results)" ] || { echo "results/ has uncommitted changes: commit them first" >&2; exit 1; }
      git sparse-checkout set --no-cone '/*' '!/results/' ;;
  off) git sparse-checkout disable ;;
  size) ;;
  *) echo "usage: slim.sh on | off | size" >&2; exit 2 ;;
esac
echo "tracked files in the working tree: $(( $(size) / 1048576 )) MiB (a device call carries at most 64 MiB with .gpu/ and .whl/)"
