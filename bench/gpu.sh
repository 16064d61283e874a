#!/usr/bin/env bash
# What a lent GPU runs, in one command of at most 8 minutes (bench/gpu.py says what and how long each step takes).
#
#   bash bench/gpu.sh --prepare     # here, before the device call: the wheels (.whl/) and Fashion-MNIST (.data/)
#   bash bench/gpu.sh               # there: the carried wheels installed offline first, then every step
#   bash bench/gpu.sh --dry-run     # here or in CI: every step on the CPU with tiny sizes, under 2 minutes
#   bash bench/gpu.sh --steps engine   # one step again (any of env,tests,quality,app,engine)
#
# Results go to $OUT (a temporary folder when unset): at most 8 files, the summary table printed last.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  bash bench/gpu-wheels.sh
  raw=.data/FashionMNIST/raw
  mkdir -p "$raw"
  for name in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz; do  # the training split is all a run reads
    cp /usr/share/datasets/fashion-mnist/$name "$raw/" 2>/dev/null ||
      echo "gpu.sh: no /usr/share/datasets/fashion-mnist/$name (apt-get install dataset-fashion-mnist)"
  done
  echo "gpu.sh: ready; carried: $(du -shc .whl .data | tail -1 | cut -f1) (with the tracked tree: under 64 MiB)"
  exit 0
fi

# here the project's venv, there the image's python3 (PYTHON overrides both)
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if [ "${1:-}" != "--dry-run" ] && ls .whl/*.whl >/dev/null 2>&1 && ! "$PYTHON" -c "import streamlit, plotly" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
exec "$PYTHON" bench/gpu.py "$@"
