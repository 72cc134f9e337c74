#!/usr/bin/env bash
# Run nbdev-test on each library notebook in a process of its own, two at a time.
# (nbdev-test's worker pool reuses processes across notebooks, but TensorFlow's logical-device
# setup can only happen once per process, before TensorFlow starts.)
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${VENV:-.venv}/bin
export TF_ENABLE_ONEDNN_OPTS=${TF_ENABLE_ONEDNN_OPTS:-1}  # as `import tilegan_core` sets it (see nbs/03_device.ipynb)
logs=$(mktemp -d)
# NBFLAGS=slow also runs the cells marked `#| slow` (make test); unset skips them (make test-fast)
ls nbs/*.ipynb | xargs -P "${JOBS:-2}" -I{} sh -c \
  '"$0/nbdev-test" ${3:+--flags "$3"} "$1" > "$2/$(basename "$1").log" 2>&1 || echo "$1" >> "$2/failed"' "$bin" {} "$logs" "${NBFLAGS:-}"
if [ -s "$logs/failed" ]; then
  for f in $(cat "$logs/failed"); do
    echo "=== $f"; grep -v -E 'cuda|absl::|IPKernelApp' "$logs/$(basename "$f").log" | tail -40
  done
  echo "notebook tests failed: $(tr '\n' ' ' < "$logs/failed")"
  exit 1
fi
echo "notebook tests passed: $(ls nbs/*.ipynb | wc -l) notebooks"
