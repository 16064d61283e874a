"""The report's HTML: one page, its styles and its few lines of script inline (report.py gathers what it shows)."""

from __future__ import annotations

import html
import json
import time

from .quality.hint_timeline import HintSpan

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee;
text-align: left; vertical-align: top; } .grid { image-rendering: pixelated; width: 420px; max-width: 100%; }
.lapse input { width: 420px; max-width: 100%; display: block; } .muted { color: #777; } .error { color: #a2142f; }
.warning { color: #b8860b; } .columns { display: flex; flex-wrap: wrap; gap: 2em; }
"""
SCRIPT = """
const slider = document.getElementById("lapse-slider"), image = document.getElementById("lapse-image"),
      label = document.getElementById("lapse-label");
function show(i) { image.src = FRAMES[i][1]; label.textContent = "iteration " + FRAMES[i][0].toLocaleString("en"); }
if (slider) { slider.addEventListener("input", () => show(+slider.value)); show(+slider.value); }
"""


def escape(value) -> str:
    return html.escape(str(value))


def script_json(value) -> str:
    """JSON inside a <script> block: no '</' that could end it."""
    return json.dumps(value).replace("</", "<\\/")


def table(rows: list[tuple], head: tuple | None = None) -> str:
    """An HTML table of already-escaped cells."""
    top = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{top}{body}</table>"


def settings_html(settings: dict) -> str:
    return table([(escape(k), escape(v)) for k, v in settings.items()])


def knob_log_html(knob_events: list[dict]) -> str:
    if not knob_events:
        return '<p class="muted">No knob was changed during the run.</p>'
    rows = [(f"{e['iteration']:,}", escape(", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
             for k, v in e["changes"].items()))) for e in knob_events]  # fmt: skip
    return table(rows, ("From iteration", "Change"))


def events_html(events: list[dict]) -> str:
    """Start, resume, status changes, the mark: one row each, their fields in a few words."""
    rows = []
    for event in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["time"])) if isinstance(
            event.get("time"), (int, float)) else ""  # fmt: skip
        rest = {k: v for k, v in event.items() if k not in ("event", "iteration", "time", "traceback")}
        detail = ", ".join(f"{k}: {v}" for k, v in rest.items())
        rows.append((escape(event.get("iteration", "")), escape(event.get("event", "")), escape(when),
                     escape(detail[:300])))  # fmt: skip
    return table(rows, ("Iteration", "Event", "Time", "Detail"))


def hints_html(hints: list[HintSpan]) -> str:
    if not hints:
        return '<p class="muted">No failure hint fired during the run.</p>'
    rows = [(f'<span class="{escape(s.hint.level)}">{escape(s.hint.title)}</span>', f"{s.first:,}", f"{s.last:,}",
             str(s.times), escape(s.hint.text)) for s in hints]  # fmt: skip
    return table(
        rows, ("Hint", "First at iteration", "Last at iteration", "Times seen", "What it said first")
    )


def timelapse_html(frames: list[tuple[int, str]], grids: int) -> str:
    """The saved grids (at most report.MAX_FRAMES of them) on a slider; a few lines of script swap the image."""
    if not frames:
        return '<p class="muted">The run saved no grid.</p>'
    shown = (
        f"{len(frames)} of the {grids:,} saved grids" if grids > len(frames) else f"all {grids:,} saved grids"
    )
    return (f'<div class="lapse"><img id="lapse-image" class="grid" alt="generated grid" src="{frames[-1][1]}">'
            f'<input id="lapse-slider" type="range" min="0" max="{len(frames) - 1}" value="{len(frames) - 1}" '
            f'aria-label="Saved grid"><span id="lapse-label"></span> <span class="muted">({shown})</span></div>'
            f"<script>const FRAMES = {script_json(frames)};{SCRIPT}</script>")  # fmt: skip


def final_html(final: tuple[int, str] | None) -> str:
    if final is None:
        return '<p class="muted">The run saved no grid.</p>'
    return (f'<figure><img id="final-grid" class="grid" alt="final grid" src="{final[1]}">'
            f"<figcaption>Generated images at iteration {final[0]:,}</figcaption></figure>")  # fmt: skip


def page(name: str, status: str, settings: dict, events: list[dict], knob_events: list[dict], charts: list[str],
         frames: list[tuple[int, str]], final: tuple[int, str] | None, hints: list[HintSpan], rows: int,
         grids: int) -> str:  # fmt: skip
    """The whole report: every picture and script inline, nothing fetched."""
    curves = "".join(charts) or '<p class="muted">The run recorded no metrics.</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(name)} · GAN run report</title>
<style>{STYLE}</style></head><body>
<h1>{escape(name)}</h1>
<p>Status: <b>{escape(status)}</b> · {rows:,} iterations recorded · report written
{time.strftime("%Y-%m-%d %H:%M")}</p>
<h2>Curves</h2><p class="muted">Dotted vertical lines: knob changes. At most 2,000 points a curve.</p>{curves}
<div class="columns"><section><h2>Time-lapse</h2>{timelapse_html(frames, grids)}</section>
<section><h2>Final grid</h2>{final_html(final)}</section></div>
<h2>Failure hints</h2>{hints_html(hints)}
<h2>Knob changes</h2>{knob_log_html(knob_events)}
<h2>Settings</h2>{settings_html(settings)}
<h2>Events</h2>{events_html(events)}
</body></html>
"""
