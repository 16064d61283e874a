"""Command line: `python -m gan_core train | control | status | sample | evaluate | list` — the engine without
the web app. `train --nproc N` trains one run on N processes under torchrun."""

from __future__ import annotations

import json
import sys

from .config import ConfigError, DataError, Knobs, UsageError, check_range, flag_names
from .flags import COMMANDS, build_parser
from .folder.control import STEP_KINDS, check_request
from .folder.names import Kind
from .folder.run_folder import RunFolder, run_info

# ---- control and status: any process, on a run folder


def control(args) -> int:
    folder = RunFolder.open(args.run_dir)
    requests = []
    knobs = {k: getattr(args, k) for k in flag_names(Knobs) if getattr(args, k) is not None}
    if args.d_iters is not None:
        knobs["d_iters"], knobs["d_warmup"] = args.d_iters
    if knobs:
        requests.append((Kind.KNOBS, knobs))
    steps = [(kind, getattr(args, kind)) for kind in STEP_KINDS if getattr(args, kind) is not None]
    if steps:
        requests.append(steps[0])  # one of them at most: they are mutually exclusive flags
    elif args.action:
        requests.append((args.action, None))
    if not requests:
        raise UsageError("nothing to ask: give --lr-g, --lr-d, --flip-prob, --d-iters or one of --pause, "
                         "--continue, --step N, --step-d N, --step-g N, --stop, --save")  # fmt: skip
    for kind, value in requests:  # every value checked before anything is written
        check_request(kind, value)
    if args.wait:
        check_range("timeout", args.timeout, 0, 86_400, low_open=True)
    sent = [(kind, value, folder.send(kind, value, reply=args.wait)) for kind, value in requests]
    code = 0
    for kind, value, request in sent:
        shown = kind if value is None else f"{kind} {value}"
        if not args.wait:
            print(f"requested {shown}")
            continue
        reply = folder.reply(request, timeout=args.timeout)
        if reply is None:
            print(
                f"error: {shown}: no reply within {args.timeout:g} s (the run ended, or is busy)",
                file=sys.stderr,
            )
            code = 1
        elif not reply.applied:
            print(f"error: {shown}: {reply.message}", file=sys.stderr)
            code = 2
        else:
            print(f"applied {shown} at iteration {reply.iteration}")
    return code


def status(args) -> int:
    folder = RunFolder.open(args.run_dir)
    info = run_info(folder)
    beat = info.heartbeat
    report = {"run": str(folder.path), "status": str(info.status or "unknown"), "reason": info.reason,
              "iteration": info.iteration, "target": info.target,
              "pids": beat.get("pids", []), "host": beat.get("host", ""),
              "heartbeat_age_s": round(beat["age_s"], 1) if beat else None}  # fmt: skip
    if args.json:
        print(json.dumps(report))
        return 0
    pids = ", ".join(map(str, report["pids"])) or "?"
    age = f"{report['heartbeat_age_s']:g} s ago" if beat else "none"
    print(f"status      {report['status']}" + (f" ({info.reason})" if info.reason else ""))
    print(f"iteration   {info.iteration:,} / {info.target:,}")
    print(f"process     {pids} on {report['host'] or '?'}")
    print(f"heartbeat   {age}")
    return 0


def main(argv=None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.argv = argv
        if args.command in ("control", "status"):  # without torch: an answer in a fraction of a second
            return {"control": control, "status": status}[args.command](args)
        from . import commands

        return getattr(commands, COMMANDS[args.command])(args)
    except (UsageError, ConfigError, DataError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training began (loading data), or a second Ctrl-C as the loop started
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path that cannot be read or written
        print(
            f"error: {exc.filename or ''}: {exc.strerror or exc}".replace("error: : ", "error: "),
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
