"""The command line: train, resume, sample exports, list, and bad input as exit code 2 with one line."""

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=False):
    proc = subprocess.run([sys.executable, "-m", "gan_core", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)  # fmt: skip
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    proc = cli("train", "--preset", "tf-cdcgan", "--dataset", "digits", "--iterations", 4, "--sample-every", 2,
               "--batch-size", 16, "--width", 0.5, "--device", "cpu", "--runs-dir", runs, "--name", "cond")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = Path(proc.stdout.strip().splitlines()[-1])
    assert run == runs / "cond" and "iter 4/4" in proc.stderr
    shown = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("iter ")]
    assert len(shown) == len(set(shown)), proc.stderr  # no line repeated while the run finishes
    # half the reference's filters: sampling, resuming and evaluating must rebuild the same narrow networks
    assert json.loads((run / "config.json").read_text())["config"]["width"] == 0.5
    return run


def test_sample_exports(trained, tmp_path):
    assert main(["sample", str(trained), "--n", "20", "--out", str(tmp_path / "g.png")]) == 0
    grid = Image.open(tmp_path / "g.png")
    assert grid.size == (10 * 30 + 2, 2 * 30 + 2)  # conditional: ten a row, one column per class
    assert main(["sample", str(trained), "--n", "12", "--out", str(tmp_path / "s.zip"), "--class", "3"]) == 0
    with zipfile.ZipFile(tmp_path / "s.zip") as archive:
        names = archive.namelist()
        first = Image.open(io.BytesIO(archive.read(names[0])))
    assert len(names) == 12 and first.size == (28, 28) and first.mode == "L"
    assert main(["sample", str(trained), "--n", "5", "--out", str(tmp_path / "x.npy"), "--seed", "3"]) == 0
    samples = np.load(tmp_path / "x.npy")
    assert samples.dtype == np.float32 and samples.shape == (5, 1, 28, 28) and np.abs(samples).max() <= 1
    assert main(["sample", str(trained), "--n", "1", "--out", str(tmp_path / "t.gif")]) == 0
    gif = Image.open(tmp_path / "t.gif")
    assert gif.n_frames == 3  # iterations 1, 2, 4


def test_same_seed_same_samples(trained, tmp_path):
    for name in ("a.npy", "b.npy"):
        assert main(["sample", str(trained), "--n", "4", "--out", str(tmp_path / name), "--seed", "9"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_resume_from_the_command_line(trained):
    proc = cli("train", "--resume", trained, "--iterations", 6, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = (trained / "metrics.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5, 6]


def test_two_d_run_exports_points(tmp_path):
    proc = cli("train", "--preset", "ring", "--iterations", 3, "--device", "cpu", "--runs-dir", tmp_path)
    run = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stderr
    assert main(["sample", run, "--n", "100", "--out", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape == (100, 2)
    assert main(["sample", run, "--n", "100", "--out", str(tmp_path / "p.png")]) == 0
    assert Image.open(tmp_path / "p.png").size == (400, 400)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr-g", "-1"], "lr_g -1.0 is out of range: allowed [0, 1]"),
        (["--flip-prob", "1.5"], "flip_prob 1.5 is out of range: allowed [0, 1]"),
        (["--dataset", "nosuch"], "'nosuch'"),
        (["--arch", "nosuch"], "arch 'nosuch' is unknown: allowed mlp, dcgan28, cdcgan, acgan-wgan, dcgan64"),
        (["--batch-size", "5000"], "batch_size 5000 is larger than data set 'digits': allowed [1, 1797]"),
        (["--dataset", "folder:/no/such/folder"], "/no/such/folder"),
        (["--d-iters", "many"], "d-iters 'many' is not a number"),
        (["--iterations", "ten"], "invalid int value: 'ten'"),
        # these two reach the config only if the flags are passed on (--pack once was not)
        (["--pack", "3", "--batch-size", "64"], "batch_size 64 must be a multiple of pack 3"),
        (["--augment", "flips"], "augment 'flips' is unknown: allowed none, translation, translation+cutout"),
        (["--width", "8"], "width 8.0 is out of range: allowed [0.0625, 4]"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, capsys, tmp_path):
    code = main(["train", "--dataset", "digits", "--iterations", "2", "--device", "cpu",
                 "--runs-dir", str(tmp_path), *args])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_missing_mnist_says_where_to_put_it(capsys, tmp_path, monkeypatch):
    import gan_core.data

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    monkeypatch.setattr(gan_core.data, "download_and_extract_archive", offline, raising=False)
    code = main(
        ["train", "--preset", "pytorch-mlp", "--data-dir", str(tmp_path), "--runs-dir", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "MNIST" / "raw") in err and "--dataset digits" in err


def test_sample_refuses_unknown_type_and_missing_run(capsys, tmp_path):
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.bmp")]) == 2
    assert "allowed .png, .zip, .gif, .npy" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["dcgan64", "wgan-gp", "fashion-mnist", "folder:PATH", "keras-wgan", "grid"]:
        assert name in out


def test_gan_core_never_imports_streamlit():
    code = "import sys, gan_core, gan_core.cli, gan_core.run, gan_core.sampling; print('streamlit' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr
    sources = "\n".join(p.read_text() for p in (ROOT / "gan_core").glob("*.py"))
    assert "import streamlit" not in sources and "from streamlit" not in sources


def test_ctrl_c_stops_cleanly_and_still_prints_the_run_folder(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "gan_core", "train", "--preset", "ring", "--iterations", "1000000",
                             "--device", "cpu", "--runs-dir", str(tmp_path), "--name", "interrupted"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    metrics = tmp_path / "interrupted" / "metrics.csv"
    deadline = time.monotonic() + 120
    while (
        not (metrics.exists() and len(metrics.read_text().splitlines()) > 20) and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out.strip().splitlines()[-1] == str(tmp_path / "interrupted") and "stopped" in err
    state = torch.load(tmp_path / "interrupted" / "checkpoints" / "last.pt", weights_only=True)
    rows = metrics.read_text().splitlines()
    assert state["iteration"] == int(rows[-1].split(",")[0]) >= 20  # checkpoint and metrics agree
