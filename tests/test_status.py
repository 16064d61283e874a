"""gan_core.folder.status: one answer to "what state is this run in", from the log, the heartbeat and the lock."""

from gan_core.folder.status import NOTHING_LOGGED, RunState, Status, logged_state, state_of

RUNNING = RunState(Status.RUNNING, "")


def test_the_last_status_event_is_the_logged_state():
    events = [{"event": "status", "status": "running", "reason": ""}, {"event": "knobs", "changes": {}},
              {"event": "status", "status": "paused", "reason": "paused at iteration 3"},
              {"event": "status", "status": "bogus"}]  # fmt: skip
    assert logged_state(events) == RunState(Status.PAUSED, "paused at iteration 3")
    assert logged_state([]) == NOTHING_LOGGED == (None, "")


def test_a_live_run_speaks_through_its_heartbeat():
    beat = {"status": "paused", "reason": "paused at iteration 9"}
    assert state_of(RUNNING, live=True, beat=beat) == RunState(Status.PAUSED, "paused at iteration 9")
    assert state_of(RUNNING, live=True, beat={}) == RUNNING  # no heartbeat yet: the log's word


def test_a_run_that_logged_training_but_has_no_process_was_interrupted():
    state = state_of(RunState(Status.PAUSED, "paused"), live=False, beat={"status": "paused"})
    assert state == RunState(Status.INTERRUPTED, "its process ended while it was paused: killed or crashed")
    finished = RunState(Status.FINISHED, "reached 6 iterations")
    assert state_of(finished, live=False, beat={}) == finished
    assert state_of(NOTHING_LOGGED, live=False, beat={}) == NOTHING_LOGGED


def test_both_kinds_of_run_offer_what_the_monitor_needs():
    from gan_core.folder.snapshot import RunHandle
    from gan_core.folder.watch import FolderRun
    from gan_core.training.run import Run

    needed = {name for name in vars(RunHandle) if not name.startswith("_")} | set(RunHandle.__annotations__)
    assert {"snapshot", "unpause", "pause", "step", "stop", "update", "alive", "run_dir"} <= needed
    for cls in (Run, FolderRun):
        missing = {name for name in needed if not hasattr(cls, name) and name not in ("run_dir", "notes")}
        assert missing == set(), cls
        assert not hasattr(
            cls, "resume"
        )  # resume means going on from a checkpoint: gan_core.training.plan.resume
