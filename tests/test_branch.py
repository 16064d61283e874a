"""Checkpoints kept along a run, and branches from them: a new run folder that continues a run from one of its
kept checkpoints with some knobs or settings changed (gan_core.training.plan.branch, `train --branch RUN[@IT]`)."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import tiny_images
from test_cli import cli
from torch import nn

from gan_core.config import ConfigError
from gan_core.engine.presets import resolve
from gan_core.folder.run_folder import CheckpointError, RunFolder
from gan_core.folder.status import Status
from gan_core.training import plan
from gan_core.training.loop import TrainingLoop

TIMING = ("elapsed_s", "images_per_s")  # the clock's, not the training's


def trained(tmp_path, name="parent", **overrides) -> RunFolder:
    """A finished 30-iteration run checkpointed every 10 (kept: 10, 20, 30)."""
    settings = dict(arch="mlp", dataset="digits", batch_size=16, device="cpu", iterations=30, sample_every=5,
                    checkpoint_every=10, keep_checkpoints=3, eval_every=0, threads=1)  # fmt: skip
    settings.update(overrides)
    run = plan.new_run(*resolve(None, **settings), runs_dir=tmp_path, name=name, data=tiny_images())
    return finish(run)


def finish(run: plan.RunPlan) -> RunFolder:
    loop = TrainingLoop(run)
    while not loop.done:
        loop.step()
    assert loop.close() is Status.FINISHED
    return loop.folder


def metrics(folder: RunFolder, after: int = 0) -> tuple[list[str], np.ndarray]:
    """Metrics rows past `after`, the clock's columns left out."""
    columns, rows = folder.read_metrics()
    keep = [i for i, c in enumerate(columns) if c not in TIMING]
    rows = rows[rows[:, columns.index("iteration")] > after]
    return [columns[i] for i in keep], rows[:, keep]


# ---- kept checkpoints


def test_the_newest_checkpoints_are_kept_as_links_of_the_one_written(tmp_path):
    folder = trained(tmp_path, keep_checkpoints=2)
    kept = folder.kept_checkpoints()
    assert [it for it, _ in kept] == [20, 30]  # 10 was pruned: only the 2 newest stay
    assert os.path.samefile(kept[-1][1], folder.checkpoint)  # a hard link: no second copy on disk
    assert folder.load_checkpoint(path=kept[0][1])["iteration"] == 20


def test_a_resume_drops_the_kept_checkpoints_it_trains_again(tmp_path):
    folder = trained(tmp_path)
    folder.kept_checkpoint_path(40).write_bytes(folder.checkpoint.read_bytes())  # as left by a crash past 30
    plan.resume(folder.path).release()
    assert [it for it, _ in folder.kept_checkpoints()] == [10, 20, 30]


# ---- branches


def test_a_branch_with_nothing_changed_repeats_its_parent_exactly_on_the_cpu(tmp_path):
    parent = trained(tmp_path)
    branch = finish(plan.branch(parent.path, 10, name="again", data=tiny_images()))
    columns, ours = metrics(branch)
    _, theirs = metrics(parent)
    assert ours.shape == theirs.shape == (30, len(columns))
    np.testing.assert_array_equal(ours, theirs)  # 1..10 inherited, 11..30 trained again from the checkpoint


def test_a_branch_continues_with_its_changes_and_names_its_parent(tmp_path):
    parent = trained(tmp_path)
    run = plan.branch(parent.path, 20, settings={"iterations": 40, "loss": "hinge"}, knobs={"lr_d": 1e-3},
                      data=tiny_images())  # fmt: skip
    assert run.folder.name == "parent-at-20" and run.start_iteration == 20
    branch = finish(run)
    config = json.loads((branch.path / "config.json").read_text())["config"]
    assert (config["parent"], config["branched_at"]) == (str(parent.path.resolve()), 20)
    assert (config["loss"], config["iterations"]) == ("hinge", 40)
    assert branch.parent().path == parent.path
    columns, ours = metrics(branch)
    _, theirs = metrics(parent)
    np.testing.assert_array_equal(ours[:20], theirs[:20])  # up to the branch point: the parent's history
    lr_d = ours[:, columns.index("lr_d")]
    assert (lr_d[20:] == np.float32(1e-3)).all() and (lr_d[:20] == np.float32(2e-4)).all()
    events = branch.read_events()
    assert [(e["iteration"], e["changes"]) for e in events if e["event"] == "knobs"] == [(21, {"lr_d": 1e-3})]
    assert [e for e in events if e["event"] == "branch"][0]["settings"] == {"iterations": 40, "loss": "hinge"}
    assert plan.knobs_at(branch, 20).lr_d == 2e-4 and plan.knobs_at(branch, 21).lr_d == 1e-3
    assert [it for it, _ in branch.grids()] == [1, 5, 10, 15, 20, 25, 30, 35, 40]


def test_a_branch_from_an_iteration_not_kept_says_which_are(tmp_path):
    parent = trained(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint of iteration 15: kept are 10, 20, 30"):
        plan.branch(parent.path, 15, data=tiny_images())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent"]  # nothing written


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 32}, "batch_size cannot change in a branch"),
        ({"iterations": 20}, r"iterations 20 does not go past the branch point 20: allowed \[21, "),
        ({"loss": "wgan-gp"}, "needs a critic without batch norm"),
    ],
)
def test_a_branch_refuses_what_cannot_change(tmp_path, settings, message):
    parent = trained(tmp_path, arch="dcgan28", iterations=20, checkpoint_every=20, width=0.25)
    with pytest.raises(ConfigError, match=message):
        plan.branch(parent.path, 20, settings=settings, data=tiny_images())


def test_a_replay_of_a_branch_branches_again_and_repeats_it(tmp_path):
    parent = trained(tmp_path)
    branch = finish(plan.branch(parent.path, 10, knobs={"flip_prob": 0.2}, data=tiny_images()))
    replayed = finish(plan.replay(branch.path, data=tiny_images()))
    assert replayed.name == "parent-at-10-replay" and replayed.read_config()[0].branched_at == 10
    np.testing.assert_array_equal(metrics(replayed)[1], metrics(branch)[1])


def test_the_cli_branches_from_a_kept_checkpoint(tmp_path):
    parent = trained(tmp_path)
    code, out, err = cli("train", "--branch", f"{parent.path}@20", "--lr-g", "0.001", "--iterations", "25")
    assert code == 0, err
    branch = RunFolder(out.strip().splitlines()[-1])
    assert branch.path == tmp_path / "parent-at-20" and plan.knobs_at(branch, 21).lr_g == 0.001
    assert branch.logged_status()[0] is Status.FINISHED


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--branch", "{parent}@15"], "error: parent has no checkpoint of iteration 15: kept are 10, 20, 30"),
        (["--branch", "{parent}", "--arch", "dcgan28"], "error: arch cannot change in a branch"),
        (["--branch", "{parent}", "--resume", "{parent}"], "error: --resume and --branch cannot be combined"),
        (["--branch", "{parent}", "--lr-d", "7"], "error: lr_d 7.0 is out of range: allowed [0, 1]"),
    ],
)
def test_the_cli_refuses_a_bad_branch_in_one_line(tmp_path, flags, message):
    parent = trained(tmp_path)
    code, out, err = cli("train", *(f.format(parent=parent.path) for f in flags))
    assert code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent"]


def test_a_branch_from_the_end_of_a_finished_run_goes_as_far_again_by_default(tmp_path):
    parent = trained(tmp_path)
    run = plan.branch(parent.path, data=tiny_images())  # no iteration: the latest checkpoint, 30
    run.release()
    assert (run.start_iteration, run.config.iterations) == (30, 60)
    early = plan.branch(parent.path, 10, data=tiny_images())
    early.release()
    assert (early.start_iteration, early.config.iterations) == (10, 30)  # before the end: the parent's target


def test_a_checkpoint_of_an_earlier_design_is_refused_by_name(tmp_path):
    """dcgan28's D had a batch norm after its first convolution until 2026-12-07: a run saved then cannot train
    on (its D does not fit), and says so in one line instead of torch's list of unexpected keys."""
    parent = trained(tmp_path, arch="dcgan28", iterations=20, checkpoint_every=20, width=0.25)
    for path in (parent.path / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        channels = state["trainer"]["discriminator"]["features.0.weight"].shape[0]
        old_norm = nn.BatchNorm2d(channels).state_dict()
        state["trainer"]["discriminator"] |= {f"features.1.{k}": v for k, v in old_norm.items()}
        torch.save(state, path)
    with pytest.raises(ConfigError, match="parent's discriminator was built by an earlier design of dcgan28"):
        plan.branch(parent.path, 20, data=tiny_images())
    with pytest.raises(
        ConfigError, match="earlier design of dcgan28 .* samples, evaluation and exports still work"
    ):
        plan.resume(parent.path, iterations=40)
