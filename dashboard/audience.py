"""The room watches, the speaker steers: served on a network address, every visitor gets a read-only view of the
monitor, and changing a run, starting, deleting or choosing server folders needs the presenter's key. On localhost
(no network address) everyone is the presenter, as before."""

from __future__ import annotations

import secrets
import socket

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from gan_core import ConfigError

KEY = "key"  # the URL's query parameter: http://HOST:PORT/?key=...
PRESENTER = "audience-presenter"  # session_state: this session has shown the key
LOOPBACK = ("", "localhost", "::1")
READ_ONLY = "Audience view: read only. The speaker steers the run."


class Refused(ConfigError):
    """A request that needs the presenter's key, from a session without it (the pages show it like a bad value)."""


def networked() -> bool:
    """Served on a network address (`--server.address 0.0.0.0`, a host name): the audience link is on. Unset or a
    loopback address: one user on this machine, nothing changes."""
    address = str(st.get_option("server.address") or "")
    return address not in LOOPBACK and not address.startswith("127.")


@st.cache_resource(show_spinner=False)
def presenter_key() -> str:
    """The presenter's key: made once a server process, printed once in its terminal."""
    key = secrets.token_urlsafe(16)
    print(f"Presenter link (keep it to yourself): {link(key)}", flush=True)
    print(f"Audience link (read only): {link()}", flush=True)
    return key


def link(key: str | None = None) -> str:
    """The app's address as others on the network reach it; with the key, the presenter's link."""
    port = st.get_option("server.port")
    return f"http://{socket.gethostname()}:{port}/" + (f"?{KEY}={key}" if key else "")


def is_presenter() -> bool:
    """This session may steer: no network address, no visitor (the server's own code), or the key shown once in
    the URL (kept in the session from then on, across pages and reruns)."""
    if not networked() or get_script_run_ctx() is None:
        return True
    given = st.query_params.get(KEY)
    if given is not None and secrets.compare_digest(str(given), presenter_key()):
        st.session_state[PRESENTER] = True
    return bool(st.session_state.get(PRESENTER, False))


def require_presenter(what: str) -> None:
    """Refuse `what` (a few words: 'Starting a run') to a session without the presenter's key."""
    if not is_presenter():
        raise Refused(f"{what} needs the presenter's key: this is the audience view (read only)")


def draw_access() -> None:
    """In the sidebar: the presenter sees both links (the key stays in the URL); the audience, that it watches."""
    if not networked():
        return
    key = presenter_key()  # made (and printed in the terminal) at the first visit, whoever it is
    if not is_presenter():
        st.caption(f"{READ_ONLY} Presenting? Your link is in the server's terminal.")
        return
    st.query_params[KEY] = key  # kept in the address bar: a reload or another page stays the presenter's
    st.caption(f"Presenting. Audience link (read only): {link()}")
    with st.expander("Presenter link"):
        st.code(link(key), language=None)
        st.caption("Anyone with it can steer: keep it to yourself.")
