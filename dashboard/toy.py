"""The 2-D monitor's extras: which layers the picture shows (G's gradient arrows, G's manifold) and the buttons
that train one player alone (D only, G only) — GAN Lab's ways of showing what each network does."""

from __future__ import annotations

import streamlit as st

from gan_core import ConfigError, Snapshot
from gan_core.folder.snapshot import RunHandle

from .charts import ARROWS, MESH

LAYERS = "toy-layers"  # the layer picker's key
SOLO_UPDATES = 10  # updates a D-only or G-only click trains


def layers_ui() -> list[str]:
    """The layers drawn over the heat-map and the points (both, until someone turns one off)."""
    chosen = st.segmented_control("Layers", [ARROWS, MESH], selection_mode="multi", default=[ARROWS, MESH],
                                  key=LAYERS, label_visibility="collapsed",
                                  help="G's gradients: the way G's next update moves each generated point (the "
                                  "gradient of G's loss, scaled for reading). G's manifold: a regular grid of "
                                  "latents through G (z_dim 2: the whole plane; more: the slice through z's first "
                                  "two coordinates).")  # fmt: skip
    return list(chosen or [])


def caption(points: dict, layers: list[str]) -> str:
    """What the picture shows, and at which iterations its parts were drawn."""
    text = f"Real (green) and generated (purple) points, D's output behind them (iteration {points['iteration']})"
    drawn = points.get("views_iteration")
    if layers and drawn is not None:
        text += f"; {' and '.join(layers)}" + (
            "" if drawn == points["iteration"] else f" of iteration {drawn}"
        )
    return text


def draw_player_buttons(run: RunHandle, snap: Snapshot) -> None:
    """D only / G only: the run pauses, one player trains SOLO_UPDATES updates, the other stands still."""
    c1, c2 = st.columns(2)
    for col, player, name in ((c1, "d", "D"), (c2, "g", "G")):
        if col.button(f"Train {name} only ×{SOLO_UPDATES}", key=f"live-solo-{player}", disabled=not snap.active,
                      width="stretch", help=f"Pause, then {SOLO_UPDATES} updates of {name} alone: watch what it "
                      "does while the other network stands still."):  # fmt: skip
            try:
                run.step_player(player, SOLO_UPDATES)
            except ConfigError as exc:  # a watched run that ended meanwhile
                st.error(str(exc).splitlines()[0])
