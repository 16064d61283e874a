"""The command line: train, resume, sample exports, list; bad input is exit code 2 with one line, no traceback,
and no file created or changed."""

import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from conftest import cli, write_idx
from PIL import Image

import gan_core.engine.data
from gan_core.cli import main
from gan_core.engine import idx
from gan_core.engine.presets import resolve
from gan_core.folder.run_folder import RunFolder
from gan_core.training import plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    code, out, err = cli("train", "--preset", "tf-cdcgan", "--dataset", "digits", "--iterations", 4,
                         "--sample-every", 2, "--batch-size", 16, "--width", 0.5, "--device", "cpu", "--runs-dir",
                         runs, "--name", "cond", "--eval-every", 0)  # fmt: skip
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    assert run == runs / "cond" and "finished: reached 4 iterations" in err
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


def test_resume_takes_iterations_device_and_threads(trained, tmp_path):
    run = tmp_path / "cond"
    shutil.copytree(trained, run)
    code, out, err = cli("train", "--resume", run, "--iterations", 6, "--device", "cpu", "--threads", 1)
    assert code == 0, err
    lines = (run / "metrics.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5, 6]
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["iterations"] == 6 and config["config"]["threads"] == 1
    assert RunFolder(run).load_checkpoint(path=RunFolder(run).previous_checkpoint)["iteration"] == 4


def test_two_d_run_draws_its_samples_over_the_real_points(tmp_path):
    code, out, err = cli(
        "train", "--preset", "ring", "--iterations", 3, "--device", "cpu", "--runs-dir", tmp_path
    )
    run = out.strip().splitlines()[-1]
    assert code == 0, err
    assert main(["sample", run, "--n", "100", "--out", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape == (100, 2)
    assert main(["sample", run, "--n", "100", "--out", str(tmp_path / "p.png")]) == 0
    picture = np.asarray(Image.open(tmp_path / "p.png"))
    assert picture.shape == (400, 400, 3)
    real_green = (picture == (27, 120, 55)).all(axis=-1).sum()
    assert (
        real_green > 100
    )  # the real points behind the generated ones, as the monitor and the Samples page draw them


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["dcgan64", "wgan-gp", "fashion-mnist", "folder:PATH", "keras-wgan", "grid"]:
        assert name in out


def test_list_says_which_data_sets_are_here_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        idx, "SYSTEM_FOLDERS", {"mnist": tmp_path / "none", "fashion-mnist": tmp_path / "system"}
    )
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)  # no data/ here
    write_idx(tmp_path / "system", np.zeros((1, 28, 28)), np.zeros(1), gz=True)
    (tmp_path / "env" / "flower_photos").mkdir(parents=True)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("data sets:") : out.index("presets:")].splitlines()[
        1:
    ]  # ring and grid are presets too
    lines = {line.split()[0]: line for line in section}
    assert lines["fashion-mnist"].endswith(f"(offline: {tmp_path / 'system'})")
    assert lines["flowers"].endswith(f"(offline: {tmp_path / 'env' / 'flower_photos'})")
    assert lines["digits"].endswith("(offline: built in)") and lines["grid"].endswith("(offline: built in)")
    for name in ("mnist", "cifar10"):
        assert lines[name].endswith("(downloads on first use)")


def test_gan_core_never_imports_streamlit():
    sources = "\n".join(p.read_text() for p in (ROOT / "gan_core").glob("*.py"))
    assert (
        "import streamlit" not in sources and "from streamlit" not in sources
    )  # and the run below imports none


def test_ctrl_c_stops_after_the_iteration_and_still_prints_the_run_folder(tmp_path):
    import signal
    import time

    # -X importtime lists every module the process imports, to its end: a training process never loads streamlit
    command = [sys.executable, "-X", "importtime", "-m", "gan_core", "train", "--preset", "ring", "--iterations",
               "1000000", "--device", "cpu", "--runs-dir", str(tmp_path), "--name", "interrupted"]  # fmt: skip
    with open(tmp_path / "stderr.txt", "w") as stderr:  # a file: the import list would fill a pipe and block
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        metrics = tmp_path / "interrupted" / "metrics.csv"
        deadline = time.monotonic() + 120
        while (
            not (metrics.exists() and len(metrics.read_text().splitlines()) > 20)
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, err[-2000:]
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if line.startswith("import time:")
    ]
    assert "torch" in imported and not any(name.split(".")[0] == "streamlit" for name in imported)
    assert out.strip().splitlines()[-1] == str(tmp_path / "interrupted") and "stopped at iteration" in err
    state = torch.load(tmp_path / "interrupted" / "checkpoints" / "last.pt", weights_only=True)
    rows = metrics.read_text().splitlines()
    assert state["iteration"] == int(rows[-1].split(",")[0]) == len(rows) - 1 >= 20  # they agree


def test_a_second_writer_is_refused_naming_the_live_run(trained, tmp_path):
    run = tmp_path / "cond"
    shutil.copytree(trained, run)
    lock = RunFolder(run).lock()  # as a training process holds it
    try:
        code, _, err = cli("train", "--resume", run, "--iterations", 8)
    finally:
        lock.release()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "run cond is training in process" in err and "cannot be resumed twice" in err


# ---- bad input: a clear line, never a traceback, never a write


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under roots, with its modification time and content hash."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.exists() else []:
            data = b"" if path.is_dir() else path.read_bytes()
            found[str(path)] = (path.stat().st_mtime_ns, hashlib.sha256(data).hexdigest())
    return found


class Code:  # a class a pickle refers to: weights_only loading refuses to import it
    pass


def damage(kind: str):
    def spoil(run: Path) -> None:
        checkpoint = run / "checkpoints" / "last.pt"
        if kind == "truncated":
            checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])
        elif kind == "code":
            torch.save({"trainer": Code(), "iteration": 1, "config": {}, "knobs": {}, "spec": {}}, checkpoint)
        elif kind == "config":
            (run / "config.json").write_text("{not json")

    return spoil


def no_grids(run: Path) -> None:
    shutil.rmtree(run / "samples")


# name -> (arguments after the program, what to do to the copied run first, the message)
BAD = {
    "lr out of range": (["train", "--lr-g", "-1"], None, "lr_g -1.0 is out of range: allowed [0, 1]"),
    "flip out of range": (["train", "--flip-prob", "1.5"], None, "flip_prob 1.5 is out of range: allowed [0, 1]"),
    "unknown data set": (["train", "--dataset", "nosuch"], None, "'nosuch'"),
    "unknown arch": (["train", "--arch", "nosuch"], None, "arch 'nosuch' is unknown: allowed mlp, dcgan28"),
    "batch above the data": (["train", "--batch-size", "5000"], None,
                             "batch_size 5000 is larger than data set 'digits': allowed [1, 1797]"),
    "missing folder": (["train", "--dataset", "folder:/no/such/folder"], None, "/no/such/folder does not exist"),
    "d-iters word": (["train", "--d-iters", "many"], None, "d-iters 'many' is not a number"),
    "iterations word": (["train", "--iterations", "ten"], None, "invalid int value: 'ten'"),
    "pack and batch": (["train", "--pack", "3", "--batch-size", "64"], None, "batch_size 64 must be a multiple of pack 3"),
    "unknown augment": (["train", "--augment", "flips"], None, "augment 'flips' is unknown"),
    "width": (["train", "--width", "8"], None, "width 8.0 is out of range: allowed [0.0625, 4]"),
    "runs dir is a file": (["train", "--runs-dir", "{tmp}/file"], None, "is a file, not a folder"),
    "name of 300 characters": (["train", "--name", "n" * 300], None, "name is 300 characters long: allowed 1 to 100"),
    "unknown preset": (["train", "--preset", "nope"], None, "preset 'nope' is unknown"),
    "resume on a missing device": (["train", "--resume", "{run}", "--device", "{missing}"], None,
                                   "device '{missing}' is not available here"),
    "resume with a knob": (["train", "--resume", "{run}", "--lr-g", "-5"], None, "--lr-g cannot change when a run resumes"),
    "resume with a preset": (["train", "--resume", "{run}", "--preset", "nope"], None, "--preset cannot change"),
    "resume with 0 iterations": (["train", "--resume", "{run}", "--iterations", "0"], None,
                                 "iterations 0 is below the 4 already done: allowed [4, 100000000]"),
    "resume truncated": (["train", "--resume", "{run}"], damage("truncated"), "last.pt is truncated or not a checkpoint"),
    "sample truncated": (["sample", "{run}", "--out", "{tmp}/x.png"], damage("truncated"), "last.pt is truncated"),
    "evaluate truncated": (["evaluate", "{run}"], damage("truncated"), "last.pt is truncated"),
    "resume pickled code": (["train", "--resume", "{run}"], damage("code"), "holds Python objects (test_cli.Code)"),
    "sample pickled code": (["sample", "{run}", "--out", "{tmp}/x.png"], damage("code"), "holds Python objects"),
    "resume invalid config": (["train", "--resume", "{run}"], damage("config"), "config.json is invalid"),
    "sample invalid config": (["sample", "{run}", "--out", "{tmp}/x.png"], damage("config"), "config.json is invalid"),
    "gif without grids": (["sample", "{run}", "--out", "{tmp}/x.gif"], no_grids, "has no sample grids yet"),
    "class of an unconditional run": (["sample", "{run}", "--class", "3", "--out", "{tmp}/x.png"], None,
                                      "only conditional runs draw a chosen class"),
    "sample of no run": (["sample", "{tmp}", "--out", "{tmp}/x.png"], None, "is not a run folder"),
    "sample type": (["sample", "{run}", "--out", "{tmp}/x.bmp"], None, "allowed .png, .zip, .gif, .npy"),
}  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A small finished unconditional run (4 iterations)."""
    root = tmp_path_factory.mktemp("finished")
    code, _, err = cli("train", "--arch", "mlp", "--dataset", "digits", "--batch-size", 16, "--iterations", 4,
                       "--device", "cpu", "--eval-every", 0, "--runs-dir", root, "--name", "run")  # fmt: skip
    assert code == 0, err
    return root / "run"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, finished, tmp_path):
    args, prepare, message = BAD[case]
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    if prepare is not None:
        prepare(run)
    (tmp_path / "file").write_text("a file where a folder should be")
    missing = "cuda" if not torch.cuda.is_available() else "mps"
    fill = lambda text: text.format(run=run, tmp=tmp_path, missing=missing)  # noqa: E731
    args = [fill(a) for a in args]
    if args[0] == "train" and "--resume" not in args:
        defaults = {
            "--iterations": "2",
            "--device": "cpu",
            "--dataset": "digits",
            "--runs-dir": str(tmp_path / "runs"),
        }
        args += [part for flag, value in defaults.items() if flag not in args for part in (flag, value)]
    before = snapshot(tmp_path)
    code, out, err = cli(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert fill(message) in err, err
    assert snapshot(tmp_path) == before  # nothing created, nothing changed


def test_a_refused_resume_leaves_the_run_resumable(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    code, _, _ = cli("train", "--resume", run, "--device", "cuda" if not torch.cuda.is_available() else "mps")
    assert code == 2
    code, _, err = cli("train", "--resume", run, "--iterations", 5)
    assert code == 0 and "finished: reached 5 iterations" in err, err


def test_mnist_offline_is_refused_and_leaves_no_folders(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("offline (test)")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    monkeypatch.setattr(gan_core.engine.data, "download_and_extract_archive", offline, raising=False)
    code, _, err = cli(
        "train", "--preset", "pytorch-mlp", "--data-dir", tmp_path / "data", "--runs-dir", tmp_path / "r"
    )
    assert code == 2 and str(tmp_path / "data" / "MNIST" / "raw") in err and "--dataset digits" in err
    assert list(tmp_path.iterdir()) == []  # neither data/MNIST/raw nor a run folder was left behind


def test_a_damaged_idx_file_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "SYSTEM_FOLDERS", {name: tmp_path / "none" for name in idx.SYSTEM_FOLDERS})
    images, _ = write_idx(tmp_path / "data" / "FashionMNIST" / "raw", np.zeros((4, 28, 28)), np.arange(4))
    images.write_bytes(struct.pack(">I", 0x802) + images.read_bytes()[4:])  # a labels-like magic number
    before = snapshot(tmp_path)
    code, out, err = cli("train", "--arch", "mlp", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "data",
                         "--iterations", 2, "--device", "cpu", "--runs-dir", tmp_path / "runs")  # fmt: skip
    assert code == 2 and out == "" and "Traceback" not in err
    assert err == f"error: {images} is not an IDX images file: magic number 0x00000802, expected 0x00000803\n"
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


def test_a_plan_that_fails_to_build_its_networks_fails_the_run(tmp_path, monkeypatch):
    """An error before the first step (an out-of-memory on the device, say) ends the run as failed, unlocked."""
    import gan_core.training.loop

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(gan_core.training.loop, "Trainer", broken)
    config, knobs = resolve(None, arch="mlp", dataset="digits", batch_size=16, iterations=4, device="cpu")
    run = plan.new_run(config, knobs, runs_dir=tmp_path, name="broken")
    with pytest.raises(RuntimeError, match="simulated"):
        gan_core.training.loop.TrainingLoop(run)
    assert run.folder.owner() is None
    assert run.folder.logged_status()[1] == "RuntimeError: out of memory (simulated)"


def test_resume_over_a_damaged_last_checkpoint_uses_the_previous_one_and_says_so(tmp_path):
    code, _, err = cli("train", "--arch", "mlp", "--dataset", "digits", "--batch-size", 16, "--iterations", 4,
                       "--checkpoint-every", 2, "--device", "cpu", "--eval-every", 0, "--runs-dir", tmp_path,
                       "--name", "run")  # fmt: skip
    folder = RunFolder(tmp_path / "run")
    assert code == 0 and folder.load_checkpoint(path=folder.previous_checkpoint)["iteration"] == 2
    damaged = folder.checkpoint.read_bytes()[:1000]
    folder.checkpoint.write_bytes(damaged)
    code, _, err = cli("train", "--resume", folder.path, "--iterations", 6)
    assert code == 0, err
    assert "note: run/checkpoints/last.pt is truncated" in err and "previous checkpoint (iteration 2)" in err
    assert folder.load_checkpoint()["iteration"] == 6
    assert folder.load_checkpoint(path=folder.previous_checkpoint)["iteration"] == 4  # never the damaged one
    assert (folder.checkpoint.parent / "damaged-last.pt").read_bytes() == damaged  # kept aside for a look
    columns, rows = folder.read_metrics()
    assert rows[:, columns.index("iteration")].tolist() == [1, 2, 3, 4, 5, 6]  # rows 3-4 trained again


def test_a_run_that_fails_before_its_first_step_is_one_line_and_exit_1(tmp_path, monkeypatch):
    import gan_core.training.loop

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(gan_core.training.loop, "Trainer", broken)
    code, out, err = cli(
        "train", "--preset", "ring", "--iterations", 3, "--runs-dir", tmp_path, "--name", "run"
    )
    assert code == 1 and "Traceback" not in err and out.strip() == str(tmp_path / "run")
    assert err.strip().splitlines()[-1] == "failed: RuntimeError: CUDA out of memory (simulated)"
    folder = RunFolder(tmp_path / "run")
    assert folder.owner() is None and any(e["event"] == "traceback" for e in folder.read_events())
