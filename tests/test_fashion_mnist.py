"""The real Fashion-MNIST as Debian's dataset-fashion-mnist installs it: found offline, read, trained on."""

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from gan_core.cli import main
from gan_core.engine import idx
from gan_core.engine.data import load_dataset, offline_source

SYSTEM = idx.SYSTEM_FOLDERS["fashion-mnist"]
pytestmark = pytest.mark.skipif(
    not (SYSTEM / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"no Fashion-MNIST in {SYSTEM}: apt-get install dataset-fashion-mnist",
)
FIRST_LABELS = [
    9,
    0,
    0,
    3,
    0,
    2,
    7,
    2,
    5,
    5,
]  # the training split's first ten: an ankle boot, two T-shirts, ...


@pytest.fixture
def nothing_local(tmp_path_factory, monkeypatch) -> Path:
    """An empty data folder, working folder and $GAN_DATA_DIR: only the system's copy can be found. One folder
    for the module, so the runs below and load_dataset share the process's cached copy."""
    empty = tmp_path_factory.getbasetemp() / "fashion-nothing-local"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("GAN_DATA_DIR", str(empty))
    monkeypatch.chdir(empty)
    return empty


def test_the_system_copy_is_found_and_read_whole(nothing_local):
    assert offline_source("fashion-mnist", nothing_local) == str(SYSTEM)
    data = load_dataset("fashion-mnist", image_size=28, data_dir=nothing_local, download=False)
    assert data.x.shape == (60_000, 1, 28, 28) and data.x.dtype == torch.uint8
    assert data.x.min() == 0 and data.x.max() == 255
    assert data.y.dtype == torch.int64 and data.y.bincount().tolist() == [6_000] * 10
    assert data.y[:10].tolist() == FIRST_LABELS and data.class_names[data.y[0]] == "Ankle boot"
    assert data.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                "Sneaker", "Bag", "Ankle boot")  # fmt: skip


def test_train_on_the_system_copy_from_the_command_line(nothing_local, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "--arch", "mlp", "--dataset", "fashion-mnist", "--iterations", "3", "--batch-size",
                     "32", "--device", "cpu", "--eval-every", "0", "--runs-dir", str(tmp_path), "--name", "f"])  # fmt: skip
    assert code == 0 and "finished: reached 3 iterations" in err.getvalue(), err.getvalue()
    run = Path(out.getvalue().strip().splitlines()[-1])
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["dataset"] == "fashion-mnist" and config["data_dir"] == str(nothing_local)
    assert [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]] == [
        "1",
        "2",
        "3",
    ]
    data = load_dataset("fashion-mnist", image_size=28, data_dir=nothing_local)  # the copy the run trained on
    assert len(data) == 60_000 and data.y[0] == 9
