"""Shared fixtures: tiny data sets made in memory, a temporary runs folder."""

import os

# Two test workers (pytest-xdist) share the cores: one torch thread each, set before torch reads it, so
# neither's thread team fights the other's (subprocesses the tests start inherit it).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import contextlib  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import struct  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gan_core.engine.data import Data, load_dataset


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    path = tmp_path / "runs"
    monkeypatch.setenv("GAN_RUNS_DIR", str(path))
    return path


def tiny_images(size: int = 28, n: int = 64, channels: int = 1) -> Data:
    """n real digits (labels 0..9) at the given size, from scikit-learn's bundled set."""
    digits = load_dataset("digits", size)
    x = digits.x[:n]
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    return Data("digits", x, digits.y[:n], 10, digits.class_names)


def write_idx(raw: Path, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> tuple[Path, Path]:
    """A training split as MNIST-format IDX files in raw/ (torchvision's ROOT/FashionMNIST/raw layout), gzipped or
    plain; returns the images' and labels' paths."""
    raw.mkdir(parents=True, exist_ok=True)
    pack, suffix = (gzip.compress, ".gz") if gz else (bytes, "")
    n, rows, cols = images.shape
    paths = (raw / f"train-images-idx3-ubyte{suffix}", raw / f"train-labels-idx1-ubyte{suffix}")
    paths[0].write_bytes(pack(struct.pack(">4I", 0x803, n, rows, cols) + images.astype(np.uint8).tobytes()))
    paths[1].write_bytes(pack(struct.pack(">2I", 0x801, len(labels)) + labels.astype(np.uint8).tobytes()))
    return paths


def tiny_points(n: int = 256) -> Data:
    ring = load_dataset("ring")
    return Data("ring", ring.x[:: len(ring.x) // n][:n].clone(), None, 1, ("ring",))


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.01) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def fresh_registry(runs_dir):
    """The app's process-wide registry afresh, its runs stopped after the test (pages and app tests)."""
    import streamlit as st

    from dashboard.registry import registry

    st.cache_resource.clear()
    yield
    registry().stop_all()
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A data folder whose classifiers/ caches the digits classifier once `digits_evaluator` has trained it."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def digits_evaluator(data_dir):
    """The digits classifier's evaluator (trained once a session, about 15 s on a CPU) and the digits."""
    from gan_core.quality.metrics import image_evaluator

    digits = load_dataset("digits", 28)
    return image_evaluator(digits, torch.device("cpu"), data_dir, samples=300), digits


def cli(*args) -> tuple[int, str, str]:
    """`python -m gan_core ARGS` in this process (training runs in this main thread, as from a terminal)."""
    from gan_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def live(tmp_path):
    """A run training in a background thread of this process (it reads its folder's control channel too)."""
    from gan_core.engine.presets import resolve
    from gan_core.training.run import start_run

    config, knobs = resolve(None, arch="mlp", dataset="ring", batch_size=64, device="cpu", iterations=100_000,
                            eval_every=0, threads=1, sample_every=1000)  # fmt: skip
    run = start_run(config, knobs, runs_dir=tmp_path / "runs", name="live", data=tiny_points(1024))
    try:
        assert wait_for(lambda: run.iteration >= 3 and (run.run_dir / "heartbeat.json").exists())
        yield run
    finally:
        run.stop()
