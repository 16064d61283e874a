"""What a run starts from: settings checked, data loaded, a locked run folder, and on resume its checkpoint.

Every check comes before the first file is written, so a refused start or resume leaves no trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..config import (
    BRANCH_SETTINGS,
    RESUME_SETTINGS,
    ConfigError,
    Knobs,
    RunConfig,
    UsageError,
    from_dict,
    knob_names,
)
from ..engine.data import Data, data_for
from ..engine.devices import resolve_device
from ..engine.models import ModelSpec, build_models
from ..engine.points import npy_bytes, read_points
from ..engine.presets import check_compatible, check_data
from ..folder import milestone, storage
from ..folder.names import Event
from ..folder.run_folder import POINTS_PREFIX, FolderLock, FollowerFolder, RunFolder, RunLocked, new_run_name
from ..folder.storage import runs_root
from .hooks import Hook
from .tensorboard import TensorBoardHook

if TYPE_CHECKING:
    from .distributed import Group


@dataclass
class RunPlan:
    """A run ready to train: its folder (locked by this process), settings, data, and where it resumes from."""

    folder: RunFolder
    config: RunConfig
    knobs: Knobs  # in force at the start (on resume: the checkpoint's)
    data: Data
    lock: FolderLock | None  # None in the processes of a group other than the first: they write nothing
    checkpoint: dict | None = None
    notes: tuple[str, ...] = ()  # what the user should hear: a damaged checkpoint passed over, a stale lock
    group: Group | None = None  # one of N processes training the run together (torchrun)
    schedule: dict[int, dict] | None = None  # a replay: knob changes by the iteration that first uses them

    @property
    def start_iteration(self) -> int:
        return int(self.checkpoint["iteration"]) if self.checkpoint is not None else 0

    def asked_hooks(self) -> tuple[Callable[..., Hook], ...]:
        """The optional hooks this run's settings ask for, each made from the loop: TensorBoard's event files."""
        return (TensorBoardHook,) if self.config.tensorboard else ()

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


# ---- what `train` asks for

MODES = ("replay", "branch", "resume")  # a request names at most one source; the first of these it names wins
LAUNCH = ("runs_dir", "name", "nproc", "max_restarts")  # where and on how many processes, whatever the mode
REPLAY_GIVES = LAUNCH  # a replay repeats its original's settings
RESUME_GIVES = (*RESUME_SETTINGS, "max_restarts")


@dataclass(frozen=True)
class TrainRequest:
    """One `train`: a new run, or one that goes on from `source` (a run folder; a branch's is (folder, iteration or
    None)), with the settings, knobs and launch options given (`changes`: only those given, by field name)."""

    mode: str  # new | replay | branch | resume
    source: object
    changes: dict

    @classmethod
    def of(cls, given: dict) -> TrainRequest:
        """From everything given, by name (None: not given)."""
        changes = {name: value for name, value in given.items() if value is not None}
        mode = next((mode for mode in MODES if mode in changes), "new")
        return cls(mode, changes.pop(mode, None), changes)

    def check(self) -> None:
        """UsageError, naming the first flag this mode cannot take and what it can."""
        allowed = {"replay": REPLAY_GIVES, "resume": RESUME_GIVES}.get(self.mode)
        refused = [name for name in self.changes if allowed is not None and name not in allowed]
        if refused:
            doing = "in a replay" if self.mode == "replay" else "when a run resumes"
            raise UsageError(f"{_flag(refused[0])} cannot change {doing}: with --{self.mode}, give only "
                             f"{', '.join(map(_flag, allowed))}")  # fmt: skip
        for mode in ("resume", "replay", "config", "preset") if self.mode == "branch" else ():
            if mode in self.changes:
                raise UsageError(f"--{mode} and --branch cannot be combined: a branch takes its settings from the "
                                 "checkpoint it continues")  # fmt: skip

    def branch_changes(self) -> tuple[dict, dict]:
        """A branch's (settings, knobs) to change: what was given less the launch options."""
        given = {name: value for name, value in self.changes.items() if name not in LAUNCH}
        knobs = {name: given.pop(name) for name in knob_names() if name in given}
        return given, knobs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def new_run(
    config: RunConfig, knobs: Knobs, runs_dir: str | Path | None = None, name: str | None = None,
    data: Data | None = None,
) -> RunPlan:  # fmt: skip
    """Check the settings, load the data, then create and lock the run folder and write its config.

    Raises ConfigError (bad settings) or DataError (data that cannot be loaded) before anything is written.
    """
    check_compatible(config, knobs)
    device = resolve_device(config.device)
    root = runs_root(runs_dir)
    name = name or new_run_name(config)
    RunFolder.check_new(root, name)
    data = data or data_for(config)
    check_data(config, data.facts)
    folder = RunFolder.create(root, name)
    lock = folder.lock()
    with _released_on_error(lock):
        if config.dataset.startswith(POINTS_PREFIX):  # drawn points live with the run: resume, branch, sample
            folder.save_points(npy_bytes(read_points(config.dataset.removeprefix(POINTS_PREFIX))))
            config = config.replace(dataset=f"{POINTS_PREFIX}{folder.points_path.resolve()}")
        folder.write_config(config, knobs)
        folder.log(
            "start", 0, device=str(device), samples=len(data), skipped=data.skipped, processes=config.nproc
        )
    return RunPlan(folder, config, knobs, data, lock)


@contextlib.contextmanager
def _released_on_error(lock: FolderLock):
    """A write that fails (a full disk) leaves the folder unlocked: a long-lived process (the app) would otherwise
    hold it until it exits, and refuse its own resume."""
    try:
        yield
    except BaseException:
        lock.release()
        raise


def resume(
    run_dir: str | Path, iterations: int | None = None, device: str | None = None, threads: int | None = None,
    nproc: int = 1,
) -> RunPlan:  # fmt: skip
    """Continue a stopped, finished or crashed run from its checkpoint, up to `iterations` in total.

    Only what may change on resume changes: the total iterations, the device, the CPU threads, the number of
    processes. The last checkpoint is used, or the previous one when the last is damaged (a note says so).
    """
    folder = RunFolder.open(run_dir)
    config, start_knobs = folder.read_config()
    owner, beat = folder.owner(), folder.heartbeat()
    if owner is not None:
        raise RunLocked(f"run {folder.name} is training in {owner}: it cannot be resumed twice")
    if folder.live(beat):  # on another host: its lock may not be seen here, its heartbeat is
        raise RunLocked(f"run {folder.name} is training on {beat.get('host')} (heartbeat {beat['age_s']:.0f} s "
                        "ago): it cannot be resumed twice")  # fmt: skip
    checkpoint, note = folder.load_for_resume()
    try:
        knobs = Knobs(**checkpoint["knobs"])
    except TypeError as exc:
        raise ConfigError(f"{folder.checkpoint} has malformed knobs: {exc}") from None
    done = int(checkpoint["iteration"])
    if iterations is not None and iterations < done:
        raise ConfigError(
            f"iterations {iterations} is below the {done} already done: allowed [{done}, 100000000]"
        )
    config = config.replace(
        iterations=iterations if iterations is not None else max(config.iterations, done),
        device=device or config.device, threads=threads or config.threads, nproc=nproc,
    )  # fmt: skip
    device = resolve_device(config.device)
    data = data_for(config)
    check_data(config, data.facts)
    _check_fits(checkpoint, data, folder)
    lock, notes = _take_over(folder, config, start_knobs, done, device, note)
    return RunPlan(folder, config, knobs, data, lock, checkpoint, notes)


def _take_over(folder: RunFolder, config: RunConfig, start_knobs: Knobs, done: int, device, note: str | None):
    """Lock a resumed run's folder and write what the resume changes; returns the lock and the notes to show."""
    lock = folder.lock()
    with _released_on_error(lock):
        if note:  # resuming from previous.pt: the damaged last.pt must not become the next previous.pt
            folder.set_aside_damaged()
        folder.drop_checkpoints_after(done)
        notes = (note,) if note else ()
        if lock.stale is not None:
            notes += (f"took over the folder's lock from {lock.stale}, which ended without releasing it",)
        folder.write_config(config, start_knobs)
        folder.log(Event.RESUME, done, from_iteration=done, device=str(device), notes=list(notes))
    return lock, notes


def replay(
    run_dir: str | Path, runs_dir: str | Path | None = None, name: str | None = None, data: Data | None = None
) -> RunPlan:
    """A new run that repeats another: its config, seed and starting knobs, and every knob change it logged at
    the iteration that first used it. Changes undone by a resume (logged past the checkpoint it resumed from)
    are left out, as the original's own history left them out."""
    original = RunFolder.open(run_dir)
    config, knobs = original.read_config()
    schedule = knob_schedule(original.read_events())
    if config.parent is not None:
        return _replay_branch(original, config, schedule, runs_dir, name, data)
    early = [schedule.pop(it) for it in sorted(schedule) if it <= 1]
    for changes in early:  # in force from the first iteration: the replay starts with them
        knobs = knobs.replace(**changes)
    plan = new_run(
        config, knobs, runs_dir or original.path.parent, name or new_run_name(replay_of=original.name), data
    )
    plan.schedule = schedule
    plan.folder.log(Event.REPLAY, 0, of=str(original.path.resolve()), changes=len(schedule))
    return plan


def branch(
    run_dir: str | Path, iteration: int | None = None, settings: dict | None = None, knobs: dict | None = None,
    runs_dir: str | Path | None = None, name: str | None = None, data: Data | None = None,
) -> RunPlan:  # fmt: skip
    """A new run that continues `run_dir` from its checkpoint of `iteration` (None: its latest) with some
    settings (BRANCH_SETTINGS) and knobs changed. Its folder starts with the parent's metrics and grids up to that
    point; its config names the parent and the iteration. With nothing changed it repeats the parent's run."""
    parent = RunFolder.open(run_dir)
    settings, knob_changes = dict(settings or {}), dict(knobs or {})
    refused = sorted(set(settings) - set(BRANCH_SETTINGS))
    if refused:
        raise ConfigError(f"{refused[0]} cannot change in a branch (the checkpoint's networks fix it): allowed "
                          f"{', '.join(BRANCH_SETTINGS)} and the knobs")  # fmt: skip
    checkpoint = parent.branch_point(iteration)
    at = int(checkpoint["iteration"])
    config, start = from_dict({"config": checkpoint["config"], "knobs": checkpoint["knobs"]})
    target = settings.pop("iterations", None) or branch_target(config.iterations, at)
    if target <= at:
        raise ConfigError(f"iterations {target} does not go past the branch point {at}: allowed "
                          f"[{at + 1}, 100000000]")  # fmt: skip
    base = config
    config = config.replace(**settings, iterations=target, parent=str(parent.path.resolve()), branched_at=at)
    settings = {k: getattr(config, k) for k in BRANCH_SETTINGS if getattr(config, k) != getattr(base, k)}
    knobs = start.replace(**knob_changes)
    data = data or data_for(config)
    _check_fits(checkpoint, data, parent)
    name = name or new_run_name(branch_of=parent.name, at=at)
    plan = new_run(config, knobs, runs_dir or parent.path.parent, name, data)
    plan.checkpoint = checkpoint
    with _released_on_error(plan.lock):
        # its knobs' history is the parent's, then changed
        plan.folder.write_config(plan.config, knobs_at(parent, 1))  # a drawn data set: the branch's own copy
        _inherit(plan.folder, parent, at)
        changed = {k: v for k, v in asdict(knobs).items() if getattr(start, k) != v}
        plan.folder.log(Event.BRANCH, at, of=str(parent.path.resolve()), settings=settings, knobs=changed)
        if changed:  # marked on the curves, and repeated by a replay, as a change made by hand at that point
            plan.folder.log(Event.KNOBS, at + 1, changes=changed)
    return plan


def branch_target(iterations: int, at: int) -> int:
    """A branch's default length: its parent's target, or (branched at or past it) that many more."""
    return iterations if iterations > at else at + iterations


def _inherit(folder: RunFolder, parent: RunFolder, iteration: int) -> None:
    """A branch's history up to its branch point is its parent's: metrics rows, knob changes, grids and the
    recognisable mark."""
    columns, rows = parent.read_metrics()
    if "iteration" in columns:
        folder.write_metrics(columns, rows[rows[:, columns.index("iteration")] <= iteration], append=False)
    for it, changes in sorted(knob_schedule(parent.read_events()).items()):
        if 1 < it <= iteration:  # (changes at iteration 1 are in the parent's starting knobs)
            folder.log(Event.KNOBS, it, changes=changes)
    mark = milestone.find(parent.read_events())
    if mark is not None and mark.iteration <= iteration:
        milestone.log(folder, mark.iteration, mark.elapsed_s, mark.detail)
    for it, path in parent.grids():
        if it <= iteration:
            storage.atomic_copy(path, folder.grid_path(it))


def _replay_branch(original: RunFolder, config: RunConfig, schedule: dict[int, dict], runs_dir, name, data):
    """A branch, replayed: branched again from the same checkpoint, changed as it was, then tuned as it was."""
    parent, at = original.parent(config), config.branched_at
    if parent is None:
        raise ConfigError(
            f"{original.name} branched from {config.parent}, which is gone: it cannot be replayed"
        )
    settings, knobs = {k: getattr(config, k) for k in BRANCH_SETTINGS}, asdict(knobs_at(original, at + 1))
    plan = branch(parent.path, at, settings, knobs, runs_dir or original.path.parent,
                  name or new_run_name(replay_of=original.name), data)  # fmt: skip
    plan.schedule = {it: changes for it, changes in schedule.items() if it > at + 1}
    plan.folder.log(Event.REPLAY, at, of=str(original.path.resolve()), changes=len(plan.schedule))
    return plan


def knob_schedule(events: list[dict]) -> dict[int, dict]:
    """{iteration: changes} of a run's knob events, as its final history has them."""
    schedule: dict[int, dict] = {}
    for event in events:
        if event.get("event") == Event.RESUME:  # what came after the checkpoint was lost, and redone
            start = int(event.get("from_iteration", event.get("iteration", 0)))
            schedule = {it: changes for it, changes in schedule.items() if it <= start}
        elif event.get("event") == Event.KNOBS and isinstance(event.get("changes"), dict):
            schedule.setdefault(int(event["iteration"]), {}).update(event["changes"])
    return schedule


def knobs_at(folder: RunFolder, iteration: int) -> Knobs:
    """The knobs in force at `iteration` of a run: its starting knobs with the changes logged up to it."""
    _, knobs = folder.read_config()
    for it, changes in sorted(knob_schedule(folder.read_events()).items()):
        if it <= iteration:
            knobs = knobs.replace(**changes)
    return knobs


class Planned(NamedTuple):
    """What a group's first process planned, for the others (plain data: it travels pickled to them)."""

    path: str
    config: dict
    knobs: dict
    checkpoint: dict | None
    schedule: dict[int, dict] | None

    @classmethod
    def of(cls, run: RunPlan) -> Planned:
        return cls(str(run.folder.path), asdict(run.config), asdict(run.knobs), run.checkpoint, run.schedule)


def follow(shared: Planned, group: Group) -> RunPlan:
    """The run the group's first process planned, for another process of the group: it loads the same data and
    writes nothing."""
    config, knobs = RunConfig(**shared.config), Knobs(**shared.knobs)
    schedule = {int(it): changes for it, changes in (shared.schedule or {}).items()} or None
    return RunPlan(FollowerFolder(shared.path), config, knobs, data_for(config), None, shared.checkpoint,
                   group=group, schedule=schedule)  # fmt: skip


def _check_fits(checkpoint: dict, data: Data, folder: RunFolder) -> None:
    """The networks in the checkpoint were built for data of one shape and class count: the data must match."""
    spec = checkpoint["spec"]
    if tuple(spec["data_shape"]) != data.data_shape or spec["num_classes"] != data.num_classes:
        raise ConfigError(
            f"{folder.name}'s networks were built for data of shape {tuple(spec['data_shape'])} in "
            f"{spec['num_classes']} classes; {data.name} now has shape {data.data_shape} in {data.num_classes}"
        )
    arch, pack = checkpoint["config"]["arch"], checkpoint["config"].get("pack", 1)
    networks = build_models(arch, ModelSpec.saved(spec), pack)
    for name, network in zip(("generator", "discriminator"), networks, strict=True):
        try:
            network.load_state_dict(checkpoint["trainer"][name])
        except RuntimeError:  # the design changed since (dcgan28's D lost its first batch norm on 2026-12-07)
            still = "; its samples, evaluation and exports still work" if name == "discriminator" else ""
            raise ConfigError(
                f"{folder.name}'s {name} was built by an earlier design of {arch} than this version's: it cannot "
                f"train on here{still}"
            ) from None
