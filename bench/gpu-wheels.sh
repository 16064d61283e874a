#!/usr/bin/env bash
# The wheels the device machine lacks, for its Python 3.12 on x86-64 Linux, into .whl/ (git-ignored): streamlit,
# plotly, tensorboard and what they need that the machine's image has not (/work/.library/device/KINDS.md lists
# what it has). A device call carries .whl and bench/gpu.sh installs it there offline first.
#
#   bash bench/gpu-wheels.sh            # download (each at the version this checkout's .venv has), the static check
#   bash bench/gpu-wheels.sh --check    # the same, then install the set with --no-index into a bare Python 3.12 venv that
#                                       # holds only what the image has (from PyPI), and import it there
#
# The static check reads every wheel's requirements (markers for Python 3.12 on Linux) and fails on any that is
# neither a wheel here nor a package of the image; --check proves it by installing.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
PYTHON=${PYTHON:-.venv/bin/python}
# what the image lacks that the app needs (streamlit 1.6x's server is starlette + uvicorn)
PACKAGES=(streamlit plotly tensorboard altair jsonschema jsonschema-specifications referencing rpds-py watchdog
          starlette uvicorn python-multipart websockets itsdangerous)
# required, but left out: streamlit imports pydeck only inside st.pydeck_chart and st.map, which the app never
# calls, and its wheel (11 MB) would take the Fashion-MNIST files' room in a call's 64 MiB
LEFT_OUT="pydeck"
# the image's packages that the set needs, as KINDS.md lists them (2026-11-17)
IMAGE_HAS="absl-py anyio attrs certifi charset-normalizer click grpcio h11 idna jinja2 markdown markupsafe narwhals
numpy packaging pandas pillow protobuf pyarrow python-dateutil requests setuptools six tensorboard-data-server
typing-extensions urllib3 werkzeug"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

download() {
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  local specs=() name version
  for name in "${PACKAGES[@]}"; do
    version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null || true)
    specs+=("$name${version:+==$version}")
  done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$WHEELS" "${specs[@]}" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  echo "gpu-wheels: $(ls "$WHEELS" | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1) in $WHEELS/"
}

# Prints the names the set needs from the image, one a line; exits 1 naming any need neither meets.
needs_from_image() {
  "$PYTHON" - "$WHEELS" "$IMAGE_HAS" "$LEFT_OUT" <<'EOF'
import sys, zipfile
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64", "extra": ""}
wheels = sorted(Path(sys.argv[1]).glob("*.whl"))
have = {canonicalize_name(w.name.split("-")[0]) for w in wheels} | set(sys.argv[3].split())
image = {canonicalize_name(name) for name in sys.argv[2].split()}
needed, missing = set(), set()
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        name = canonicalize_name(req.name)
        if (req.marker and not req.marker.evaluate(env)) or name in have:
            continue
        (needed if name in image else missing).add(name)
if missing:
    sys.exit(f"gpu-wheels: needed, but neither a wheel here nor in the image: {', '.join(sorted(missing))}")
print("\n".join(sorted(needed)))
EOF
}

python312() {
  local candidate
  for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    if "$candidate" -c "import venv" 2>/dev/null; then echo "$candidate"; return; fi
  done
  echo "gpu-wheels: no Python 3.12 here for --check" >&2
  return 1
}

check() {
  local base
  base=$(needs_from_image)
  venv=$(mktemp -d /tmp/gpu-wheels-check.XXXXXX)
  trap 'rm -rf "$venv"' EXIT
  "$(python312)" -m venv "$venv"
  echo "gpu-wheels: --check: the image's part from PyPI: $(echo $base)"
  # shellcheck disable=SC2086  # one name a word
  "$venv/bin/python" -m pip install -q $base
  # the line bench/gpu.sh runs on the device machine
  "$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$venv/site" "$WHEELS"/*.whl
  PYTHONPATH="$venv/site" "$venv/bin/python" - <<'EOF'
import plotly, streamlit, tensorboard
from streamlit.testing.v1 import AppTest

app = AppTest.from_string("import plotly.graph_objects as go, streamlit as st; st.plotly_chart(go.Figure())")
app.run(timeout=60)
assert not app.exception, app.exception
print(f"gpu-wheels: --check passed: streamlit {streamlit.__version__}, plotly {plotly.__version__}, tensorboard "
      f"{tensorboard.__version__} installed with --no-index beside the image's packages alone (Python 3.12), "
      "imported, and a page with a plotly chart ran under AppTest")
EOF
}

download
needs_from_image >/dev/null && echo "gpu-wheels: static check passed: every requirement is a wheel here or in the image"
if [ "${1:-}" = "--check" ]; then
  check
fi
