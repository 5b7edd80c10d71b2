"""``shadowfarm farm start|serve|stop|status|wait|workers|scale|drain|config``: run the
farm (``simulate`` and ``forecast``: ``cli/forecast.py``; ``wait``: ``cli/farm_wait.py``).

The farm keeps its state in one directory: ``--home DIR``, else ``$SHADOWFARM_HOME``,
else ``$XDG_STATE_HOME/shadowfarm`` (``~/.local/state/shadowfarm``). Read commands take
``--json`` (status JSON version 1: see ``farm_server/status.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from typing import Any

from pytest_shadowfarm.cli import Context, farm_wait, forecast, whole_number
from pytest_shadowfarm.errors import FarmError

__all__ = ["register"]

HOME_HELP = (
    "the farm's state directory (default: $SHADOWFARM_HOME, else "
    "$XDG_STATE_HOME/shadowfarm or ~/.local/state/shadowfarm)"
)
#: the CLI may wait longer than a test run would
CLI_TIMEOUT_S = 10.0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", metavar="DIR", help=HOME_HELP)
    reads = argparse.ArgumentParser(add_help=False, parents=[common])
    reads.add_argument("--json", action="store_true", help="print JSON instead of text")

    group = subparsers.add_parser(
        "farm",
        help="run the farm of pre-warmed xdist workers",
        description="Start, stop, inspect and tune the farm daemon that keeps warm "
        "pytest-xdist workers for your projects.",
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    binds = argparse.ArgumentParser(add_help=False)
    binds.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    binds.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument(
        "--timeout",
        type=_seconds,
        default=farm_wait.DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"with waiting: give up after S seconds (default {farm_wait.DEFAULT_TIMEOUT_S:g})",
    )
    start = commands.add_parser(
        "start",
        parents=[common, binds, waits],
        help="start the daemon in the background; print its URL",
    )
    start.add_argument(
        "--wait", action="store_true", help="then return once the registered profiles are warm"
    )
    start.set_defaults(run=_start)
    commands.add_parser(
        "serve",
        parents=[common, binds],
        help="run the daemon in the foreground (systemd, containers)",
    ).set_defaults(run=_serve)
    commands.add_parser(
        "wait",
        parents=[common, waits],
        help="return once the registered profiles are warm (exit 1 on timeout)",
    ).set_defaults(run=_wait)
    commands.add_parser(
        "stop", parents=[common], help="stop the daemon and every worker (state is kept)"
    ).set_defaults(run=_stop)
    commands.add_parser(
        "status", parents=[reads], help="profiles, warm/claimed counts, claims and hit rate"
    ).set_defaults(run=_status)
    commands.add_parser(
        "workers", parents=[reads], help="every live worker with its profile and state"
    ).set_defaults(run=_workers)
    scale = commands.add_parser(
        "scale", parents=[common], help="set how many workers a profile keeps warm"
    )
    scale.add_argument("--profile", required=True, help="a profile key (or prefix), or 'all'")
    scale.add_argument(
        "--min", type=whole_number, dest="min_warm", metavar="N", help="warm workers to keep"
    )
    scale.add_argument(
        "--max", type=whole_number, dest="max_warm", metavar="M", help="most unclaimed workers"
    )
    scale.set_defaults(run=_scale)
    drain = commands.add_parser(
        "drain", parents=[common], help="stop keeping workers warm (claimed ones finish)"
    )
    drain.add_argument("--profile", default="all", help="a profile key (or prefix); default all")
    drain.set_defaults(run=_drain)
    config = commands.add_parser("config", help="show or change the farm's settings")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_commands.add_parser("get", parents=[reads], help="print the settings").set_defaults(
        run=_config_get
    )
    config_set = config_commands.add_parser(
        "set", parents=[common], help="change settings: KEY=VALUE ..."
    )
    config_set.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    config_set.set_defaults(run=_config_set)
    forecast.register(commands)  # simulate, forecast


# --- helpers --------------------------------------------------------------------------------


def _home(args: argparse.Namespace, ctx: Context) -> Any:
    from shadowfarm_wire.home import FarmHome

    return FarmHome.resolve(ctx.path(args.home) if args.home else None, ctx.env)


def _client(args: argparse.Namespace, ctx: Context) -> Any:
    from pytest_shadowfarm.farm.client import FarmClient, discover

    home = _home(args, ctx)
    # The same checks as the plugin's: a home others can write to, or an endpoint that
    # cannot prove it holds the token (TrustError, a FarmError), is never used.
    endpoint = discover("auto", home)
    if endpoint is None:
        msg = f"no farm is running from {home.root}; start one with 'shadowfarm farm start'"
        raise FarmError(msg)
    return FarmClient(endpoint, timeout=CLI_TIMEOUT_S)


def _need_farm_extra() -> None:
    missing = [
        m for m in ("fastapi", "uvicorn", "prometheus_client") if not importlib.util.find_spec(m)
    ]
    if missing:
        msg = (
            f"the farm needs {', '.join(missing)}: install the farm extra, "
            "pip install 'pytest-shadowfarm[farm]'"
        )
        raise FarmError(msg)


def _seconds(raw: str) -> float:
    """An argparse ``type``: a timeout, more than 0 seconds."""
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        msg = f"expected a number of seconds > 0, got {raw!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s"


def _print_json(ctx: Context, data: Any) -> None:
    ctx.print(json.dumps(data, indent=2, sort_keys=True))


# --- commands -------------------------------------------------------------------------------


def _start(args: argparse.Namespace, ctx: Context) -> int:
    from farm_server import daemon

    _need_farm_extra()
    home = _home(args, ctx)
    info, started = daemon.start(home, args.host, args.port, env=ctx.env)
    verb = "started" if started else "already running"
    ctx.print(f"farm {verb} at {info.url} (pid {info.pid}, home {home.root})")
    return _wait(args, ctx) if args.wait else 0


def _wait(args: argparse.Namespace, ctx: Context) -> int:
    client = _client(args, ctx)
    started = ctx.clock()
    status = farm_wait.wait_warm(client.status, args.timeout)
    warm = [p for p in status["profiles"] if (p.get("min_warm") or 0) > 0]
    if not status["profiles"]:
        ctx.print("no profiles registered yet: nothing to wait for")
    else:
        ctx.print(
            f"farm warm after {_duration(ctx.clock() - started)}: "
            f"{len(warm)} profile(s) at their warm target"
        )
    return 0


def _serve(args: argparse.Namespace, ctx: Context) -> int:
    from farm_server import daemon

    _need_farm_extra()
    home = _home(args, ctx)
    return daemon.serve(
        home, args.host, args.port, on_ready=lambda url: ctx.print(f"farm ready at {url}")
    )


def _stop(args: argparse.Namespace, ctx: Context) -> int:
    from farm_server import daemon

    home = _home(args, ctx)
    info = daemon.stop(home)
    if info is None:
        ctx.print(f"no farm was running from {home.root}")
    else:
        ctx.print(f"farm stopped (pid {info.pid}); its workers are gone, its state is kept")
    return 0


def _status(args: argparse.Namespace, ctx: Context) -> int:
    data = _client(args, ctx).status()
    if args.json:
        _print_json(ctx, data)
        return 0
    totals = data["totals"]
    rate = totals["hit_rate"]
    up = _duration(data["uptime_s"])
    ctx.print(f"farm at {data['url']} (pid {data['pid']}, up {up}), home {data['home']}")
    for problem in data.get("health", {}).get("problems", []):
        ctx.print(f"UNHEALTHY: {problem}")
    hit_rate = "-" if rate is None else f"{rate:.0%}"
    ctx.print(
        f"claims {totals['claims']}: {totals['granted']} of {totals['requested']} workers warm "
        f"(hit rate {hit_rate}), {totals['live_workers']} live workers"
    )
    if totals.get("warming_deferred"):
        ctx.print(f"warm-ups waiting for spare CPU: {totals['warming_deferred']}")
    if not data["profiles"]:
        ctx.print("no profiles yet: run 'pytest -p shadowfarm -n N' in a project to register one")
    for p in data["profiles"]:
        c = p["counts"]
        ctx.print(
            f"profile {p['key']}  {p['rootdir']}  python {p['python_version']}  {p['health']}"
        )
        ctx.print(
            f"  warming {c['warming']}  warm {c['warm']}  claimed {c['claimed']}  "
            f"(min {p['min_warm']}, max {p['max_warm']}{', drained' if p['drained'] else ''})  "
            f"warm-up median {_duration(p['warmup_s_median'])}, "
            f"last {_duration(p.get('warmup_s_last'))}"
        )
        learned = p.get("learned")
        if learned and (learned["sick"] or learned["max_age_tests"] or learned["max_age_s"]):
            ctx.print(f"  {_learned_line(learned)}")
        for w in p.get("warming", []):
            ctx.print(
                f"  {w['worker']} warming: {farm_wait.describe_step(w)} "
                f"(for {_duration(w['step_s'])}, warming {_duration(w['warming_s'])})"
            )
        if p.get("unfit"):
            ctx.print(f"  runs go cold: {p['unfit']}")
        fc = p.get("forecast")
        if fc:
            hours = "  ".join(
                f"{h['median']:.1f}/{h['p95']:.1f}->{h['target']}" for h in fc["next_hours"]
            )
            ctx.print(
                f"  forecast ({fc['model']}) next hours median/p95->target: {hours}; "
                f"target now {fc['target']}, keep-alive {fc['keep_alive_workers']} for "
                f"{_duration(fc['keep_alive_s'])}"
            )
            rate = "-" if fc["hit_rate"] is None else f"{fc['hit_rate']:.0%}"
            ctx.print(f"  so far: hit rate {rate}, idle {fc['idle_worker_s']:,.0f} worker-s")
    return 0


def _learned_line(learned: dict[str, Any]) -> str:
    """What the farm learned of a profile's workers, as ``farm status`` prints it."""
    tests, seconds = learned["max_age_tests"], learned["max_age_s"]
    limits = [f"{tests} tests" if tests else "", f"{_duration(seconds)}" if seconds else ""]
    age = " or ".join(part for part in limits if part) or "no limit"
    line = (
        f"max age {age}: {learned['sick']} sick workers ({learned['crashes']} crashed), "
        f"{learned['recycled']} recycled at the max age"
    )
    if learned.get("last_reason"):
        line += f"; last: {learned['last_reason']}"
    return line


def _workers(args: argparse.Namespace, ctx: Context) -> int:
    workers = _client(args, ctx).status()["workers"]
    if args.json:
        _print_json(ctx, workers)
        return 0
    if not workers:
        ctx.print("no live workers")
        return 0
    ctx.print(
        f"{'ID':<11} {'PROFILE':<16} {'STATE':<8} {'PID':>7} {'AGE':>7} {'WARM-UP':>8}  READY"
    )
    for w in workers:
        ready = w["ready"]
        summary = "-"
        if w.get("progress"):
            summary = f"warming: {farm_wait.describe_step(w['progress'])}"
        if ready is not None:
            verdict = "ok" if ready["ok"] else f"FAILING ({ready['failed']} failed)"
            summary = f"{verdict}, {ready['tests']} shadow tests, {ready['modules']} modules"
            if ready.get("prepared"):
                summary += f", {ready['prepared']} tests collected for {w.get('expects')}"
        if w.get("collection"):
            summary += f"; its run's collection: {w['collection']}"
        ctx.print(
            f"{w['id']:<11} {w['profile']:<16} {w['state']:<8} {w['pid'] or '-':>7} "
            f"{_duration(w['age_s']):>7} {_duration(w['warmup_s']):>8}  {summary}"
        )
    return 0


def _scale(args: argparse.Namespace, ctx: Context) -> int:
    if args.min_warm is None and args.max_warm is None:
        msg = "farm scale needs --min N, --max M or both"
        raise FarmError(msg)
    body = {"profiles": {args.profile: {"min_warm": args.min_warm, "max_warm": args.max_warm}}}
    result = _client(args, ctx).put_config(body)
    keys = result.get("scaled", {}).get(args.profile, [])
    ctx.print(f"scaled {len(keys)} profile(s): {', '.join(keys)}")
    return 0


def _drain(args: argparse.Namespace, ctx: Context) -> int:
    keys = _client(args, ctx).drain(args.profile)
    ctx.print(f"drained {len(keys)} profile(s){': ' + ', '.join(keys) if keys else ''}")
    return 0


def _config_get(args: argparse.Namespace, ctx: Context) -> int:
    config = _client(args, ctx).get_config()
    if args.json:
        _print_json(ctx, config)
    else:
        for key in sorted(config):
            ctx.print(f"{key} = {config[key]}")
    return 0


def _parse_pairs(pairs: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            msg = f"expected KEY=VALUE, got {pair!r} (see 'shadowfarm farm config get')"
            raise FarmError(msg)
        try:
            changes[key.strip()] = json.loads(raw)
        except ValueError:
            changes[key.strip()] = raw
    return changes


def _config_set(args: argparse.Namespace, ctx: Context) -> int:
    config = _client(args, ctx).put_config(_parse_pairs(args.pairs))
    for key in sorted(_parse_pairs(args.pairs)):
        ctx.print(f"{key} = {config[key]}")
    return 0
