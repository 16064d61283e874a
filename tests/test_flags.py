"""The command line built from RunConfig and Knobs: every field that was a flag is one, with its name, type and
help; the allowlists of resume and branch name fields."""

import argparse
import dataclasses

import pytest

from gan_core.config import BRANCH_SETTINGS, DEVICES, RESUME_SETTINGS, Knobs, RunConfig, flag_names
from gan_core.flags import build_parser
from gan_core.training.plan import RESUME_GIVES

# what `train` had before its flags came from the fields: flag -> (type, help)
TRAIN = {
    "--arch": (str, None), "--loss": (str, None), "--dataset": (str, None), "--iterations": (int, None),
    "--batch-size": (int, None), "--lr-g": (float, None), "--lr-d": (float, None), "--flip-prob": (float, None),
    "--z-dim": (int, None), "--sample-every": (int, None), "--seed": (int, None), "--threads": (int, None),
    "--optimizer": (str, None), "--beta1": (float, None), "--beta2": (float, None), "--clip-value": (float, None),
    "--checkpoint-every": (int, None), "--keep-checkpoints": (int, None), "--pack": (int, None),
    "--augment": (str, None), "--eval-every": (int, None), "--width": (float, None), "--data-dir": (str, None),
    "--precision": (str, None), "--compile": (str, None),
    "--nproc": (int, "processes that train the run together, under torchrun (one GPU each on CUDA); default 1"),
    "--ema": (float, "show, measure and export samples of a moving average of G's weights, with this decay per G "
                     "update (0: G's own weights)"),
}  # fmt: skip
SWITCHES = {
    "--channels-last": "image networks' weights and batches in channels-last (NHWC) layout",
    "--fused": "Adam's and SGD's fused one-kernel step (on by default; --no-fused for the per-tensor step)",
}


def actions(command: str) -> dict[str, argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[
        command
    ]
    return {a.option_strings[0]: a for a in sub._actions if a.option_strings}


@pytest.mark.parametrize("flag", sorted(TRAIN))
def test_every_setting_flag_keeps_its_name_type_and_help(flag):
    action = actions("train")[flag]
    assert (action.type, action.help, action.default) == (*TRAIN[flag], None)


def test_switches_device_and_tensorboard_keep_their_form():
    train = actions("train")
    for flag, text in SWITCHES.items():
        assert isinstance(train[flag], argparse.BooleanOptionalAction) and train[flag].help == text
        assert train[flag].default is None
    assert tuple(train["--device"].choices) == DEVICES and train["--device"].type is None
    assert (
        isinstance(train["--tensorboard"], argparse._StoreTrueAction)
        and train["--tensorboard"].default is None
    )
    parsed = build_parser().parse_args(["train", "--no-fused", "--width", "0.5", "--eval-every", "7"])
    assert (parsed.fused, parsed.width, parsed.eval_every, parsed.arch) == (False, 0.5, 7, None)


def test_control_takes_the_knobs_as_train_spells_them():
    control, train = actions("control"), actions("train")
    knobs = {"--lr-g", "--lr-d", "--flip-prob"}
    assert knobs <= set(control) and all(control[f].type is train[f].type is float for f in knobs)
    assert flag_names(Knobs) == ["lr_g", "lr_d", "flip_prob"]


def test_the_flags_are_the_fields_that_say_so():
    names = {f.name for f in dataclasses.fields(RunConfig)} | {f.name for f in dataclasses.fields(Knobs)}
    assert set(flag_names()) <= names
    assert {"--" + name.replace("_", "-") for name in flag_names()} == set(TRAIN) | set(SWITCHES) | {
        "--device",
        "--tensorboard",
    }
    assert "--g-steps" not in actions("train") and "--parent" not in actions("train")


def test_the_allowlists_name_fields():
    config = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(RESUME_SETTINGS) <= config and set(BRANCH_SETTINGS) <= config
    assert RESUME_GIVES == ("iterations", "device", "threads", "nproc", "max_restarts")
