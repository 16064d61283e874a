"""The Train page's set-up form: a preset or every choice by hand, checked before Start."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from gan_core import ARCHS, DATASETS, LOSSES, PRESETS, ConfigError, DataError, Knobs, RunConfig, resolve
from gan_core.config import AUGMENTS, LR_SCHEDULES, OPTIMIZERS
from gan_core.engine.data import DataFacts, data_facts, offline_source
from gan_core.engine.devices import available_devices, device_label, resolve_device
from gan_core.engine.presets import DEMO_SUFFIX, check_data, demo_variant, preset_settings
from gan_core.folder.storage import runs_root

from .drawing import DRAW, drawing_ui
from .registry import CPU_THREADS
from .uploads import UploadError, extract_images

CUSTOM = "custom"
DEFAULT_PRESET = "pytorch-mlp"
DEFAULT_DATASET = "digits"  # offline: scikit-learn ships it
FOLDER, UPLOAD = "folder of images…", "upload a ZIP of images…"
DOWNLOADS = "downloads on first use"


@dataclass
class FormResult:
    config: RunConfig | None = None
    knobs: Knobs | None = None
    errors: dict[str, str] = field(default_factory=dict)  # widget group -> message

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors


def form_settings(preset: str, dataset: str = DEFAULT_DATASET) -> dict:
    """Every setting's starting value for the form: RunConfig/Knobs defaults, then the preset's on the data set."""
    base = {**RunConfig().__dict__, **Knobs().__dict__}
    return base | (preset_settings(preset, dataset) if preset != CUSTOM else {})


def device_options() -> dict[str, str]:
    """The devices that work here (config.DEVICES less those absent), labelled."""
    return {
        name: f"auto — {device_label(resolve_device('auto'))}"
        if name == "auto"
        else device_label(torch.device(name))
        for name in available_devices()
    }


def config_ui() -> FormResult:
    """Draw the form; return the checked config and knobs, or the errors to show beside the widgets."""
    preset = preset_ui()
    s = form_settings(preset)
    k = f"form-{preset}-"  # widget keys per preset: choosing a preset resets the widgets to its values
    values: dict = {"preset": None if preset == CUSTOM else preset}
    errors: dict[str, str] = {}
    c1, c2, c3 = st.columns(3)
    values["arch"] = c1.selectbox("Architecture", list(ARCHS), index=list(ARCHS).index(s["arch"]), key=k + "arch",
                                  format_func=lambda a: f"{a} — {ARCHS[a].description}")  # fmt: skip
    values["loss"] = c2.selectbox("Loss", list(LOSSES), index=list(LOSSES).index(s["loss"]), key=k + "loss",
                                  help="; ".join(f"{n}: {v.description}" for n, v in LOSSES.items()))  # fmt: skip
    with c3:
        values["dataset"] = dataset_ui(s["dataset"], s["data_dir"], k, errors)
    if values["dataset"] == DRAW:  # the canvas takes the page's width
        values["dataset"] = drawing_ui(k, errors)
    choice_errors = st.empty()
    if values["dataset"] != DEFAULT_DATASET and values["dataset"] in PRESETS.get(preset, {}).get("on", {}):
        # the preset's values on that data set, in widgets of their own
        s, k = form_settings(preset, values["dataset"]), f"{k}{values['dataset']}-"

    c1, c2, c3, c4, c5 = st.columns(5)
    values["lr_g"] = c1.number_input(
        "Learning rate G", value=float(s["lr_g"]), step=1e-5, format="%.6f", key=k + "lr_g"
    )
    values["lr_d"] = c2.number_input(
        "Learning rate D", value=float(s["lr_d"]), step=1e-5, format="%.6f", key=k + "lr_d"
    )
    values["flip_prob"] = c3.slider("Label-flip probability", 0.0, 1.0, float(s["flip_prob"]), 0.05, key=k + "flip",
                                    help="Each real image's D target is flipped with this probability (MATLAB).")  # fmt: skip
    values["d_iters"] = int(
        c4.number_input("D iterations per G step", value=int(s["d_iters"]), step=1, key=k + "d_iters")
    )
    values["d_warmup"] = c4.checkbox(
        "Keras warm-up (100 when it % 1000 < 25)", value=bool(s["d_warmup"]), key=k + "warm"
    )
    values["batch_size"] = int(
        c5.number_input("Batch size", value=int(s["batch_size"]), step=1, key=k + "batch")
    )
    knob_errors = st.empty()

    with st.expander("More settings"):
        more_ui(values, s, k)
    more_errors = st.empty()

    result = check(values, errors)
    for slot, group in ((choice_errors, "choices"), (knob_errors, "knobs"), (more_errors, "more")):
        if group in result.errors:
            slot.error(result.errors[group])
    return result


def preset_ui() -> str:
    """The preset chosen, or its demo setting when the toggle beside it is on (demo settings are not listed)."""
    names = [CUSTOM, *(p for p in PRESETS if not p.endswith(DEMO_SUFFIX))]
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    preset = c1.selectbox("Preset", names, index=names.index(DEFAULT_PRESET), key="form-preset",
                          format_func=lambda p: p if p == CUSTOM else f"{p} — {PRESETS[p]['description']}")  # fmt: skip
    demo = demo_variant(preset) if preset != CUSTOM else None
    on = c2.toggle("Demo setting", key="form-demo", disabled=demo is None,
                   help="Recognisable samples within a minute of Start on a laptop's CPU: "
                   + (PRESETS[demo]["description"].split(": ", 1)[1] if demo else "this preset has none."))  # fmt: skip
    return demo if on and demo else preset


def more_ui(values: dict, s: dict, k: str) -> None:
    c1, c2, c3, c4 = st.columns(4)
    values["optimizer"] = c1.selectbox(
        "Optimiser", OPTIMIZERS, index=OPTIMIZERS.index(s["optimizer"]), key=k + "opt"
    )
    values["beta1"] = c1.number_input("Adam beta1", value=float(s["beta1"]), step=0.05, key=k + "b1")
    values["beta2"] = c1.number_input(
        "Adam beta2", value=float(s["beta2"]), step=0.001, format="%.3f", key=k + "b2"
    )
    values["lr_schedule"] = c2.selectbox("Learning-rate schedule", LR_SCHEDULES, key=k + "sched",
                                         index=LR_SCHEDULES.index(s["lr_schedule"]),
                                         help="staircase: x0.95 every 500 iterations (TensorFlow cDCGAN); "
                                         "cosine: from the set rate down to 0 at the last iteration")  # fmt: skip
    values["g_steps"] = int(
        c2.number_input("G updates per iteration", value=int(s["g_steps"]), step=1, key=k + "gs")
    )
    values["pack"] = int(c2.number_input("Pack (PacGAN)", value=int(s["pack"]), step=1, key=k + "pack",
                                         help="D judges this many samples at once: a collapsed G is easier to "
                                         "spot. Unconditional models; batch size a multiple of it."))  # fmt: skip
    values["augment"] = c2.selectbox("Augment D's inputs (DiffAugment)", AUGMENTS, key=k + "augment",
                                     index=AUGMENTS.index(s["augment"]),
                                     help="Shift (and cut a square out of) real and generated images alike before "
                                     "D sees them: with little data, D cannot memorise it. Images only.")  # fmt: skip
    values["ema"] = c2.number_input("Average of G's weights (EMA decay)", value=float(s["ema"]), step=0.001,
                                    format="%.4f", key=k + "ema",
                                    help="The grid, the metrics and the exports show a moving average of G's "
                                    "weights, with this decay per G update: steadier samples while G still swings. "
                                    "0: G's own weights.")  # fmt: skip
    # Clipping belongs to the wasserstein loss: for any other, greyed out and unused.
    wasserstein = values["loss"] == "wasserstein"
    clip = c2.number_input("Weight clipping (wasserstein)", value=float(s["clip_value"] or 0.0), step=0.005,
                           format="%.3f", key=k + "clip", disabled=not wasserstein,
                           help="Clip every critic weight to [-c, c] before each critic update; 0: no clipping. "
                           "Loss 'wasserstein' only.")  # fmt: skip
    values["clip_value"] = (clip or None) if wasserstein else None
    values["z_dim"] = int(c3.number_input("Latent size z", value=int(s["z_dim"]), step=1, key=k + "z"))
    values["width"] = c3.number_input("Width (x the reference's filters)", value=float(s["width"]), step=0.25,
                                      key=k + "width", help="Every hidden layer's filters or units, as a multiple "
                                      "of the reference design's: at 0.25 an iteration took 6-11x less time on a 2-core CPU.")  # fmt: skip
    values["iterations"] = int(
        c3.number_input("Iterations", value=int(s["iterations"]), step=100, key=k + "its")
    )
    values["sample_every"] = int(c3.number_input("Grid every N iterations", value=int(s["sample_every"]), step=10,
                                                 key=k + "every"))  # fmt: skip
    values["checkpoint_every"] = int(c3.number_input("Checkpoint every N iterations", step=100, key=k + "ckpt",
                                                     value=int(s["checkpoint_every"])))  # fmt: skip
    values["keep_checkpoints"] = int(c3.number_input("Checkpoints kept (branch points)", step=1, key=k + "keep",
                                                     value=int(s["keep_checkpoints"]),
                                                     help="The newest checkpoints stay in the run folder: the "
                                                     "Runs page branches from any of them."))  # fmt: skip
    values["seed"] = int(c4.number_input("Seed", value=int(s["seed"]), step=1, key=k + "seed"))
    devices = device_options()
    values["device"] = c4.selectbox("Device", list(devices), format_func=devices.get, key=k + "device")
    threads = c4.number_input("CPU threads (0: automatic)", value=int(s["threads"] or 0), step=1, key=k + "threads",
                              help=f"Torch's intra-op threads for a run on the CPU; automatic: {CPU_THREADS} here.")  # fmt: skip
    values["threads"] = int(threads) or None
    values["nproc"] = int(c4.number_input("Processes", value=1, step=1, key=k + "nproc",
                                          help="1: the run trains in this server. N (2 or more): N processes under "
                                          "torchrun train it together (one GPU each on CUDA; each its own batch), "
                                          "apart from this server: stopping the server does not stop them."))  # fmt: skip
    values["hflip"] = c4.checkbox("Random horizontal flip", value=bool(s["hflip"]), key=k + "hflip")
    values["tensorboard"] = c4.checkbox("TensorBoard event files", value=False, key=k + "tensorboard",
                                        help="Also write the run's curves and grids for `tensorboard --logdir runs` "
                                        "(needs the tensorboard package).")  # fmt: skip


def dataset_options(data_dir: str) -> dict[str, str]:
    """Registry data sets -> their label: those present offline first, then those that download on first use."""
    offline = {name: offline_source(name, data_dir) is not None for name in DATASETS}
    present = [name for name in DATASETS if offline[name]]
    absent = [name for name in DATASETS if not offline[name]]
    return {name: name for name in present} | {name: f"{name} — {DOWNLOADS}" for name in absent}


def dataset_ui(preset_dataset: str, data_dir: str, k: str, errors: dict) -> str:
    options = dataset_options(data_dir) | {FOLDER: FOLDER, UPLOAD: UPLOAD, DRAW: DRAW}
    names = list(options)
    default = DEFAULT_DATASET if preset_dataset not in ("ring", "grid") else preset_dataset
    choice = st.selectbox("Data set", names, index=names.index(default), key=k + "dataset", format_func=options.get,
                          help=f"The preset's own data set is {preset_dataset!r}. Those found on this machine come "
                          f"first; the others {DOWNLOADS} (into {data_dir}).")  # fmt: skip
    if choice == FOLDER:
        path = st.text_input("Folder path (class sub-folders become labels)", key=k + "folder")
        if not path:
            errors["choices"] = "Type the path of a folder of images."
            return "folder:"
        try:
            dataset_facts(f"folder:{path}")  # refused here, beside the path, not after Start
        except DataError as exc:
            errors["choices"] = str(exc)
        return f"folder:{path}"
    if choice == UPLOAD:
        upload = st.file_uploader("ZIP of images", type=["zip"], key=k + "zip")
        if upload is None:
            errors["choices"] = "Upload a ZIP of images (class sub-folders become labels)."
            return "folder:"
        try:
            return f"folder:{unpack_upload(upload.getvalue())}"
        except UploadError as exc:
            errors["choices"] = str(exc)
            return "folder:"
    return choice


@st.cache_resource(show_spinner="Unpacking the ZIP …", max_entries=8)
def _unpack(digest: str, data: bytes) -> str:
    dest = runs_root() / "uploads" / digest
    if dest.is_dir() and any(dest.iterdir()):  # the same ZIP was unpacked before
        return str(dest)
    return str(extract_images(data, dest).folder)


def unpack_upload(data: bytes) -> str:
    return _unpack(hashlib.sha256(data).hexdigest()[:16], data)


# ---- the data set's size and labels, known before Start


def _folder_stamp(path: str) -> tuple[int, ...]:
    """Modification times of a folder and its class sub-folders: they change when an image comes or goes."""
    try:
        with os.scandir(path) as entries:
            subfolders = [entry.stat().st_mtime_ns for entry in entries if entry.is_dir()]
        return (Path(path).stat().st_mtime_ns, *sorted(subfolders))
    except OSError:  # missing or unreadable: data_facts says which
        return ()


@st.cache_data(max_entries=16, show_spinner=False)
def _folder_facts(name: str, stamp: tuple[int, ...]) -> DataFacts:
    return data_facts(name)  # stamp is part of the key: the folder is listed again only when it changed


def dataset_facts(name: str, data_dir: str | Path = "data") -> DataFacts:
    """A data set's size and labels without loading it; a folder is listed once per change. DataError says why not."""
    if not name.startswith("folder:"):
        return data_facts(name, data_dir)
    try:
        return _folder_facts(name, _folder_stamp(name.removeprefix("folder:")))
    except OSError as exc:
        raise DataError(
            f"image folder {name.removeprefix('folder:')} cannot be read: {exc.strerror or exc}"
        ) from None


# ---- the check


def error_group(message: str) -> str:
    """The widget group a refusal concerns: knobs (the top row), choices (arch, loss, data set) or more."""
    field_name = message.split(" ", 1)[0]
    if field_name in Knobs.__dataclass_fields__ or field_name == "batch_size":  # before the test for
        return "knobs"  # "arch" below: a data set's path may hold those letters
    if field_name in ("arch", "loss", "dataset", "preset") or message.startswith("data set"):
        return "choices"
    return "choices" if "arch" in message or "loss" in message else "more"


def check(values: dict, errors: dict) -> FormResult:
    """Resolve the settings and check them against the data set's size and labels; map a refusal to the
    widget group it concerns (Start stays disabled)."""
    if errors:
        return FormResult(errors=errors)
    try:
        config, knobs = resolve(**values)
        check_data(config, dataset_facts(config.dataset, config.data_dir))
    except DataError as exc:  # a data set that cannot be had: beside the data set's choice
        return FormResult(errors={"choices": str(exc)})
    except ConfigError as exc:
        return FormResult(errors={error_group(str(exc)): str(exc)})
    return FormResult(config, knobs)
