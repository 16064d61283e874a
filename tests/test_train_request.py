"""TrainRequest: a `train` command line parsed once into its mode, source and changes, and checked by the plan."""

import pytest

from gan_core.commands import train_request
from gan_core.config import UsageError
from gan_core.flags import build_parser
from gan_core.training.plan import TrainRequest


def request(*argv: str) -> TrainRequest:
    return train_request(build_parser().parse_args(["train", *argv]))


def test_the_mode_is_the_source_named_and_changes_are_what_was_given():
    assert request("--preset", "ring", "--lr-d", "1e-3") == TrainRequest(
        "new", None, {"preset": "ring", "lr_d": 1e-3}
    )
    assert request("--resume", "runs/a", "--iterations", "9") == TrainRequest(
        "resume", "runs/a", {"iterations": 9}
    )
    assert request("--branch", "runs/a@40", "--d-iters", "warmup:3").source == ("runs/a", 40)
    assert request("--branch", "runs/a", "--d-iters", "warmup:3").changes == {"d_iters": 3, "d_warmup": True}
    assert request("--replay", "runs/a", "--resume", "runs/b").mode == "replay"  # the first source wins


@pytest.mark.parametrize(("argv", "message"), [
    (["--resume", "r", "--lr-d", "1e-3"], "--lr-d cannot change when a run resumes: with --resume, give only "
     "--iterations, --device, --threads, --nproc, --max-restarts"),
    (["--replay", "r", "--seed", "3"], "--seed cannot change in a replay: with --replay, give only --runs-dir, "
     "--name, --nproc, --max-restarts"),
    (["--branch", "r", "--preset", "ring"], "--preset and --branch cannot be combined: a branch takes its settings "
     "from the checkpoint it continues"),
    (["--replay", "r", "--branch", "s"], "--branch cannot change in a replay"),
])  # fmt: skip
def test_each_mode_refuses_what_it_cannot_take_by_name(argv, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace("+", r"\+")):
        request(*argv).check()


def test_what_each_mode_may_take_passes():
    for argv in (["--resume", "r", "--iterations", "9", "--nproc", "2", "--max-restarts", "1"],
                 ["--replay", "r", "--runs-dir", "x", "--name", "n"], ["--arch", "mlp", "--lr-g", "1e-3"]):  # fmt: skip
        request(*argv).check()


def test_a_branch_splits_its_changes_into_settings_and_knobs():
    settings, knobs = request(
        "--branch", "r@5", "--loss", "hinge", "--lr-d", "1e-3", "--name", "b"
    ).branch_changes()
    assert (settings, knobs) == ({"loss": "hinge"}, {"lr_d": 1e-3})
