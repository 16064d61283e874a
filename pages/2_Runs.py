"""Runs: every run in the runs folder as a table, overlaid curves, grids side by side, resume, branch, replay and
delete."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard.compare import draw_overlays, side_by_side_ui
from dashboard.pages_common import NO_RUNS, all_runs, checkpoint_path, live_run
from dashboard.registry import registry
from dashboard.sidebar import STATUS_ICONS, page_setup
from gan_core import ConfigError
from gan_core.engine.losses import LOSSES
from gan_core.folder.run_folder import RunFolder, RunInfo
from gan_core.folder.status import Status
from gan_core.training.plan import branch_target, knob_schedule, knobs_at
from gan_core.training.run import format_elapsed

REFRESH_SECONDS = 2.0


# ---- data for the table and the charts


def status_of(info: RunInfo) -> str:
    """The status a run's log records, or the live one for a run training in this server."""
    run = live_run(info.path)
    status = run.status if run is not None else info.status
    return f"{STATUS_ICONS.get(status, '')} {status or 'unknown'}".strip()


def runs_frame(infos: list[RunInfo]) -> pd.DataFrame:
    def score(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 3)

    return pd.DataFrame(
        {
            "Run": [i.name for i in infos],
            "Preset": [i.preset or "—" for i in infos],
            "Architecture": [i.arch for i in infos],
            "Data set": [i.dataset for i in infos],
            "Status": [status_of(i) for i in infos],
            "Iterations": [f"{i.iteration:,} / {i.target:,}" for i in infos],
            "Score G": [score(i.score_g) for i in infos],
            "Score D": [score(i.score_d) for i in infos],
            "Duration": [format_elapsed(i.elapsed_s) for i in infos],
            "Where": [where(i) for i in infos],
        }
    )


def where(info: RunInfo) -> str:
    """Where a live run trains: this server, or the processes and host its heartbeat names."""
    if live_run(info.path) is not None:
        return "this server"
    beat = info.heartbeat
    if not beat or info.status is None or not info.status.active:
        return ""
    pids = beat.get("pids") or [beat.get("pid")]
    return f"{len(pids)} process{'es' if len(pids) > 1 else ''} on {beat.get('host', '?')} ({', '.join(map(str, pids))})"


# ---- actions (button callbacks: they run before the page redraws, so the table is fresh)


def _resume(by_name: dict[str, RunInfo]) -> None:
    info = by_name[st.session_state["resume_run"]]  # read at click time: the latest choices
    iterations = int(st.session_state[f"resume_iterations_{info.name}"])
    try:
        run = registry().resume(info.path, iterations)
    except Exception as exc:  # a bad setting, missing data or an unreadable checkpoint: say why, no traceback
        st.session_state["runs_message"] = ("error", f"Cannot resume {info.name}: {str(exc).splitlines()[0]}")
        return
    st.session_state["runs_message"] = ("success", f"Resumed {info.name} up to {iterations:,} iterations.")
    st.session_state["runs_notes"] = run.notes  # e.g. a damaged last checkpoint passed over for the previous
    st.session_state["runs_hint"] = True


def _replay(by_name: dict[str, RunInfo]) -> None:
    info = by_name[st.session_state["replay_run"]]
    try:
        run = registry().replay(info.path)
    except Exception as exc:  # data that cannot be loaded, a damaged config: say why, no traceback
        st.session_state["runs_message"] = ("error", f"Cannot replay {info.name}: {str(exc).splitlines()[0]}")
        return
    st.session_state["runs_message"] = ("success", f"Replaying {info.name} as {run.run_dir.name}.")
    st.session_state["runs_hint"] = True


def _branch(by_name: dict[str, RunInfo]) -> None:
    info = by_name[st.session_state["branch_run"]]
    at = int(st.session_state[f"branch-at-{info.name}"])
    folder = RunFolder(info.path)
    config, _ = folder.read_config()
    before = knobs_at(folder, at)
    chosen = {name: st.session_state[f"branch-{name}-{info.name}-{at}"] for name in BRANCH_FIELDS}
    knobs = {
        k: chosen[k] for k in ("lr_g", "lr_d", "flip_prob", "d_iters") if chosen[k] != getattr(before, k)
    }
    if "d_iters" in knobs:
        knobs["d_warmup"] = before.d_warmup
    settings = {k: chosen[k] for k in ("loss", "iterations") if chosen[k] != getattr(config, k)}
    try:
        run = registry().branch(info.path, at, settings, knobs)
    except Exception as exc:  # a value out of range, an incompatible loss, a damaged checkpoint: say why
        st.session_state["runs_message"] = ("error", f"Cannot branch {info.name}: {str(exc).splitlines()[0]}")
        return
    changed = ", ".join(f"{k} {v}" for k, v in {**knobs, **settings}.items() if k != "d_warmup") or "nothing"
    st.session_state["runs_message"] = (
        "success", f"Branched {info.name} at iteration {at:,} as {run.run_dir.name} (changed: {changed}).")  # fmt: skip
    st.session_state["overlay"] = [run.run_dir.name, info.name]  # the Compare charts show both
    st.session_state["runs_hint"] = True


def _delete(by_name: dict[str, RunInfo]) -> None:
    info = by_name[st.session_state["delete_run"]]
    registry().forget(info.path)  # a live run stops (and saves) first
    try:
        RunFolder(info.path).delete()
    except (ConfigError, OSError) as exc:
        st.session_state["runs_message"] = ("error", f"Cannot delete {info.name}: {exc}")
        return
    st.session_state["runs_message"] = ("success", f"Deleted {info.name}.")
    st.session_state["confirm_delete"] = False


# ---- widgets


def draw_message() -> None:
    message = st.session_state.pop("runs_message", None)
    if message is None:
        return
    kind, text = message
    if kind == "error":
        st.error(text)
        return
    st.toast(text, icon="✅")
    st.success(text)
    for note in st.session_state.pop("runs_notes", ()):
        st.warning(note)
    if st.session_state.pop("runs_hint", False):
        st.info("Open the **Train** page to watch it train and tune its knobs.")


def draw_table() -> None:
    """The runs table; while a run trains in this server it refreshes itself (only this part reruns)."""

    infos = all_runs() or []
    live = registry().running() or any(info.status is not None and info.status.active for info in infos)

    @st.fragment(run_every=REFRESH_SECONDS if live else None)
    def table() -> None:
        infos = all_runs()
        if infos is not None:
            st.dataframe(runs_frame(infos), hide_index=True)

    table()


def watch_ui(infos: list[RunInfo]) -> None:
    """Any run on the Train page's monitor: live ones (from this server, a terminal, torchrun) to watch and steer."""
    st.subheader("Watch")
    live = [i for i in infos if i.status is not None and i.status.active]
    st.caption(
        f"{len(live)} training now." if live else "None training now; a finished run shows its last state."
    )
    by_name = {info.name: info for info in live + [i for i in infos if i not in live]}
    name = st.selectbox("Run to watch", list(by_name), key="watch_run",
                        format_func=lambda n: f"{n} · {by_name[n].status or 'unknown'}")  # fmt: skip
    if st.button("Watch on the Train page", key="watch", type="primary"):
        registry().watch(by_name[name].path)
        st.switch_page("pages/0_Train.py")


def resume_ui(infos: list[RunInfo]) -> None:
    st.subheader("Resume")
    training = [i for i in infos if i.status is not None and i.status.active]  # live, here or on another host
    if training:
        st.caption(
            "Training now, so not resumable: "
            + "; ".join(f"{i.name} ({where(i) or i.owner})" for i in training)
        )
    stopped = [i for i in infos if i not in training and checkpoint_path(i.path).is_file()]
    if not stopped:
        st.caption("No stopped or finished run with a checkpoint.")
        return
    by_name = {info.name: info for info in stopped}
    info = by_name[st.selectbox("Run to resume", list(by_name), key="resume_run")]
    if info.status is Status.INTERRUPTED:
        st.info(f"{info.name} was interrupted ({info.reason}): it resumes from its last checkpoint.")
    done = max(info.iteration, 1)
    default = max(info.target, done) + (info.target if info.status is Status.FINISHED else 0)
    key = f"resume_iterations_{info.name}"  # one a run: choosing another run shows its own default
    st.number_input("New total iterations", done, 100_000_000, default, step=100, key=key)
    st.button("Resume", key="resume", on_click=_resume, args=(by_name,), type="primary")


BRANCH_FIELDS = ("lr_g", "lr_d", "flip_prob", "d_iters", "loss", "iterations")


def branch_ui(infos: list[RunInfo]) -> None:
    """Go back to a kept checkpoint (before a collapse, say) and continue from there with other knobs."""
    st.subheader("Branch")
    kept = {info.name: [it for it, _ in RunFolder(info.path).kept_checkpoints()] for info in infos}
    by_name = {info.name: info for info in infos if kept[info.name]}
    if not by_name:
        st.caption(
            "No run has kept checkpoints yet (every --checkpoint-every iterations, the last 5 by default)."
        )
        return
    info = by_name[st.selectbox("Run to branch", list(by_name), key="branch_run")]
    its = kept[info.name]
    at = (st.select_slider("From its checkpoint of iteration", its, value=its[-1], key=f"branch-at-{info.name}")
          if len(its) > 1 else st.session_state.setdefault(f"branch-at-{info.name}", its[0]))  # fmt: skip
    folder = RunFolder(info.path)
    config, knobs = folder.read_config()[0], knobs_at(folder, at)
    k = f"-{info.name}-{at}"  # one set of fields a run and branch point: each shows its own values
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("lr G", value=float(knobs.lr_g), step=1e-5, format="%.2e", key="branch-lr_g" + k)
    c2.number_input("lr D", value=float(knobs.lr_d), step=1e-5, format="%.2e", key="branch-lr_d" + k)
    c3.slider("Label flip", 0.0, 1.0, float(knobs.flip_prob), 0.05, key="branch-flip_prob" + k)
    c4.number_input("D iterations", value=int(knobs.d_iters), step=1, key="branch-d_iters" + k)
    c1, c2 = st.columns(2)
    c1.selectbox("Loss", list(LOSSES), index=list(LOSSES).index(config.loss), key="branch-loss" + k)
    c2.number_input(
        "Total iterations", value=branch_target(config.iterations, at), step=100, key="branch-iterations" + k
    )
    st.caption(f"A new run that continues {info.name} from iteration {at:,} with what you change here; "
               f"{info.name} itself is left as it is. Kept checkpoints: {', '.join(map(str, its))}.")  # fmt: skip
    st.button("Branch", key="branch", on_click=_branch, args=(by_name,))


def replay_ui(infos: list[RunInfo]) -> None:
    """A run tuned by hand during a demo, again: the same settings and seed, each knob change at its iteration."""
    st.subheader("Replay")
    by_name = {info.name: info for info in infos}
    info = by_name[st.selectbox("Run to replay", list(by_name), key="replay_run")]
    changes = knob_schedule(RunFolder(info.path).read_events())
    st.caption(f"A new run with {info.name}'s settings and seed, and its {len(changes)} knob change"
               f"{'' if len(changes) == 1 else 's'} at the iterations they took effect"
               f"{': ' + ', '.join(map(str, sorted(changes))) if changes else ''}.")  # fmt: skip
    st.button("Replay", key="replay", on_click=_replay, args=(by_name,))


def delete_ui(infos: list[RunInfo]) -> None:
    st.subheader("Delete")
    by_name = {info.name: info for info in infos}
    info = by_name[st.selectbox("Run to delete", list(by_name), key="delete_run")]
    if live_run(info.path) is not None:
        st.warning("This run is training: it will be stopped first.")
    confirmed = st.checkbox(
        f"I understand that this deletes {info.name} and all its files", key="confirm_delete"
    )
    st.button("Delete", key="delete", on_click=_delete, args=(by_name,), disabled=not confirmed)


# ---- the page


def main() -> None:
    page_setup("Runs")
    st.title("Runs")
    draw_message()
    infos = all_runs()
    if infos is None:
        return
    if not infos:
        st.info(NO_RUNS)
        return
    draw_table()
    watch_ui(infos)
    draw_overlays(infos)
    side_by_side_ui(infos)
    left, right = st.columns(2)
    with left:
        resume_ui(infos)
        replay_ui(infos)
    with right:
        branch_ui(infos)
        delete_ui(infos)


main()
