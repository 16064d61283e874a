"""D-only and G-only steps: each changes only its own network's weights; a live run takes them as `step_d` and
`step_g` requests (the app's thread, the control command), pauses for them and logs them."""

import contextlib
import io
import re

import pytest
import torch
from conftest import tiny_points, wait_for

from gan_core.cli import main
from gan_core.config import ConfigError, Knobs
from gan_core.engine.presets import resolve
from gan_core.engine.solo import train_player
from gan_core.engine.trainer import Trainer
from gan_core.folder import control
from gan_core.folder.run_folder import RunFolder, Status
from gan_core.folder.watch import FolderRun


def weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


@pytest.mark.parametrize(("player", "moves", "stays"), [("d", "discriminator", "generator"),
                                                         ("g", "generator", "discriminator")])  # fmt: skip
@pytest.mark.parametrize("loss", ["bce", "wasserstein"])
def test_one_player_changes_only_its_own_weights(player, moves, stays, loss):
    config, knobs = resolve(None, arch="mlp", dataset="ring", batch_size=32, loss=loss, device="cpu")
    trainer = Trainer(config, knobs, tiny_points(256), torch.device("cpu"))
    mover, stayer = getattr(trainer, moves), getattr(trainer, stays)
    before_mover, before_stayer = weights(mover), weights(stayer)
    train_player(trainer, player, 3, knobs.flip_prob)
    assert changed(before_mover, mover) and not changed(before_stayer, stayer)
    # G's update froze D's weights only while it ran
    assert all(p.requires_grad for p in trainer.discriminator.parameters())


def test_an_unknown_player_is_refused():
    config, knobs = resolve(None, arch="mlp", dataset="ring", batch_size=32, device="cpu")
    trainer = Trainer(config, knobs, tiny_points(64), torch.device("cpu"))
    with pytest.raises(ValueError, match="player 'x' is unknown: allowed d, g"):
        train_player(trainer, "x", 1)


@pytest.mark.parametrize("kind", ["step_d", "step_g"])
@pytest.mark.parametrize("value", [0, -1, 2_000_000, 1.5, True, None])
def test_bad_counts_are_refused(kind, value):
    message = f"{kind} {value!r} is out of range: allowed [1, 1000000]"
    with pytest.raises(ConfigError, match=re.escape(message)):
        control.check_request(kind, value)


def solo_events(run) -> list[tuple[str, int]]:
    return [(e["player"], e["updates"]) for e in RunFolder(run.run_dir).read_events() if e["event"] == "solo"]


def test_the_app_thread_pauses_and_trains_one_player(live):
    live.step_player("d", 4)  # running: it pauses first
    assert wait_for(lambda: solo_events(live) == [("d", 4)])
    assert wait_for(lambda: live.status == Status.PAUSED)
    paused_at = live.iteration
    # the picture redrawn after the updates
    assert wait_for(lambda: (live.snapshot().points or {}).get("iteration") == paused_at)
    live.step_player("g", 2)
    assert wait_for(lambda: solo_events(live) == [("d", 4), ("g", 2)])
    assert live.iteration == paused_at and live.status == Status.PAUSED  # no iteration, still paused


def test_control_command_sends_step_d_and_step_g(live):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["control", str(live.run_dir), "--step-g", "3", "--wait", "--timeout", "20"])
    assert code == 0 and err.getvalue() == "", err.getvalue()
    assert re.fullmatch(r"applied step_g 3 at iteration \d+\n", out.getvalue())
    assert solo_events(live) == [("g", 3)] and live.status == Status.PAUSED
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["control", str(live.run_dir), "--step-d", "0"])
    assert code == 2 and err.getvalue() == "error: step_d 0 is out of range: allowed [1, 1000000]\n"


def test_knobs_still_apply_after_solo_steps(live):
    live.step_player("d", 1)
    assert wait_for(lambda: live.status == Status.PAUSED)
    live.update(lr_d=1e-3)
    live.unpause()
    assert wait_for(lambda: live.snapshot().knobs == Knobs(lr_g=live.knobs.lr_g, lr_d=1e-3))


def test_a_watched_run_takes_them_through_its_folder(live):
    FolderRun(live.run_dir).step_player("d", 5)
    assert wait_for(lambda: solo_events(live) == [("d", 5)])
    assert wait_for(lambda: live.status == Status.PAUSED)
