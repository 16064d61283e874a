"""The audience link under AppTest: served on a network address, a session without the presenter's key sees the
monitor but no controls, and is refused when it calls them anyway; one with the key has them; localhost changes
nothing."""

from pathlib import Path

import pandas  # noqa: F401  (imported whole before the page's threads do: plotly and the registry's warm-up
import pytest  # race to import it lazily, and one may see it half-initialised)
from streamlit import config
from streamlit.testing.v1 import AppTest

from dashboard.audience import presenter_key
from dashboard.registry import registry
from gan_core.engine.presets import resolve

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
CONTROLS = ("start", "live-pause", "live-step", "live-stop", "live-continue")
RUN_ACTIONS = ("watch", "resume", "replay", "branch", "delete")

pytestmark = pytest.mark.usefixtures("fresh_registry")


@pytest.fixture
def served_on_network():
    """The server as `streamlit run app.py --server.address 0.0.0.0` has it."""
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


@pytest.fixture
def live_run(runs_dir):
    """A ring run training in this process's registry (started by no visitor), paused so it stays put."""
    config_, knobs = resolve("ring", device="cpu", threads=1, iterations=100_000)
    run = registry().start(config_, knobs)
    run.pause()
    return run


def button_keys(at: AppTest) -> set[str]:
    return {button.key for button in at.button}


def open_page(page: str, key: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    if key is not None:
        at.query_params["key"] = key
    at.run()
    assert not at.exception, at.exception
    return at


def test_without_the_key_the_monitor_shows_and_no_control_does(served_on_network, live_run):
    at = open_page("app.py")
    assert any(h.value.startswith("Epoch: ") for h in at.subheader)  # the monitor's title line
    assert at.get("plotly_chart")  # the score curves
    assert not button_keys(at) & set(CONTROLS)
    assert not [box.key for box in at.number_input if box.key and box.key.startswith("live-")]
    assert not [box.key for box in at.text_input if box.key and "folder" in box.key]
    assert any("Audience view: read only" in caption.value for caption in at.caption)


def test_with_the_key_the_presenter_has_the_controls_and_keeps_the_key(served_on_network, live_run):
    at = open_page("app.py", key=presenter_key())
    assert {"start", "live-pause", "live-stop"} <= button_keys(at)
    assert {f"live-{live_run.run_dir.name}-{k}" for k in ("lr_g", "lr_d")} <= {b.key for b in at.number_input}
    assert any("Presenting. Audience link (read only)" in caption.value for caption in at.caption)
    assert at.query_params["key"] == presenter_key()  # kept in the URL: a reload stays the presenter's
    del at.query_params["key"]  # the key shown once: the session keeps it on the next rerun
    at.run()
    assert {"start", "live-pause"} <= button_keys(at)


def test_a_wrong_key_is_the_audience(served_on_network, live_run):
    at = open_page("app.py", key="not-the-key")
    assert not button_keys(at) & set(CONTROLS)


def test_on_localhost_everyone_steers_and_no_link_is_shown(live_run):
    assert config.get_option("server.address") in (None, "", "localhost", "127.0.0.1")
    at = open_page("app.py")
    assert {"start", "live-pause", "live-stop"} <= button_keys(at)
    assert not [c.value for c in at.caption if "Audience" in c.value or "Presenting" in c.value]


def test_the_runs_page_offers_actions_only_to_the_presenter(served_on_network, live_run):
    audience = open_page("pages/2_Runs.py")
    assert not button_keys(audience) & set(RUN_ACTIONS)
    assert "Report (HTML)" in [button.proto.label for button in audience.get("download_button")]
    assert not [box.key for box in audience.selectbox if box.key in ("delete_run", "replay_run", "watch_run")]
    presenter = open_page("pages/2_Runs.py", key=presenter_key())
    assert {"watch", "replay", "delete"} <= button_keys(presenter)  # (resume and branch: no checkpoint yet)


def _call_everything() -> None:
    """A script that calls, without the key, what the hidden controls would call: every call must be refused."""
    from pathlib import Path

    import streamlit as st

    from dashboard.monitor import _apply
    from dashboard.registry import registry
    from gan_core.engine.presets import resolve

    run_dir = Path(st.session_state["run_dir"])
    calls = {
        "resume": lambda: registry().resume(run_dir),
        "start": lambda: registry().start(*resolve("ring", device="cpu", threads=1)),
        "replay": lambda: registry().replay(run_dir),
        "branch": lambda: registry().branch(run_dir, 1, {}, {}),
        "forget": lambda: registry().forget(run_dir),
    }
    for name, call in calls.items():
        try:
            call()
            st.write(f"{name}: done")
        except Exception as exc:
            st.error(f"{name}: {exc}")
    st.session_state["lr"] = 0.5
    _apply(registry().view(run_dir), "lr_d", "lr")  # the knob's callback
    st.error(f"knob: {st.session_state.get('live-error')}")


def test_the_audience_is_refused_when_it_calls_the_controls_anyway(served_on_network, live_run):
    before = live_run.snapshot()
    at = AppTest.from_function(_call_everything, default_timeout=TIMEOUT)
    at.session_state["run_dir"] = str(live_run.run_dir)
    at.run()
    assert not at.exception, at.exception
    errors = [error.value for error in at.error]
    assert [e.split(":")[0] for e in errors] == ["resume", "start", "replay", "branch", "forget", "knob"]
    refused = "needs the presenter's key: this is the audience view (read only)"
    assert all(refused in e for e in errors), errors
    assert not [m.value for m in at.markdown if "done" in m.value]
    after = live_run.snapshot()
    assert live_run.alive and after.knobs.lr_d == before.knobs.lr_d  # nothing changed
    assert [p.name for p in live_run.run_dir.parent.iterdir()] == [live_run.run_dir.name]  # none started


def test_the_samples_page_asks_the_run_for_a_checkpoint_only_for_the_presenter(served_on_network, live_run):
    latest = "Use the latest weights"
    assert latest not in [button.label for button in open_page("pages/1_Samples.py").button]
    assert latest in [button.label for button in open_page("pages/1_Samples.py", key=presenter_key()).button]
