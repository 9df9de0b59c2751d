"""``python -m demo.estate start|stop|status``: run the demo estate from a shell.

``start`` leaves the estate running and writes ``<root>/estate.json`` (used by ``stop`` and
``status`` from any later process) and ``<root>/spec_hosts.json`` (the spec's ``hosts:``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from demo.errors import EstateError
from demo.estate import DEFAULT_HOSTS, Estate


def _parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(
        prog="python -m demo.estate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the estate and leave it running")
    stop = sub.add_parser("stop", help="stop what a start left running")
    status = sub.add_parser("status", help="show what runs; exit 1 if anything is down")
    for command in (start, stop, status):
        command.add_argument("--root", type=Path, default=Path(".demo"), help="estate directory")
    start.add_argument("--hosts", default=",".join(DEFAULT_HOSTS), help="comma-separated hosts")
    start.add_argument("--port", type=int, default=2222, help="sshd port on every host")
    start.add_argument("--app-port", type=int, default=8000)
    start.add_argument("--gateway-port", type=int, default=8080)
    start.add_argument("--seed-rows", type=int, default=1000)
    start.add_argument("--extra-hosts", type=int, default=0, help="SSH-only hosts 127.0.1.x")
    start.add_argument(
        "--db", action="append", default=[], metavar="NAME=URL", help="database URL of an app instance (repeatable)"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    return parser


def _db_urls(pairs: Sequence[str]) -> dict[str, str]:
    """Turn ``NAME=URL`` arguments into a mapping."""
    urls: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not url:
            raise EstateError(f"--db wants NAME=URL, not {pair!r}")
        urls[name] = url
    return urls


def _start(args: argparse.Namespace) -> int:
    """Start and print where everything runs."""
    estate = Estate.start(
        args.root,
        hosts=[h for h in args.hosts.split(",") if h],
        app_db_urls=_db_urls(args.db),
        seed_rows=args.seed_rows,
        port=args.port,
        app_port=args.app_port,
        gateway_port=args.gateway_port,
    )
    if args.extra_hosts:
        estate.extra_hosts(args.extra_hosts)
    spec_file = estate.root / "spec_hosts.json"
    spec_file.write_text(json.dumps(estate.spec_hosts(), indent=2) + "\n")
    for name, host in estate.hosts.items():
        print(f"host {name:<10} ssh {host.user}@{host.address}:{host.port}  {host.host_key_fingerprint}")
    for name, app in estate.apps.items():
        print(f"app  {name:<10} {app.url}  db {app.db_url}")
    if "gateway" in estate.hosts:
        print(f"gateway         {estate.gateway_url} -> {estate.route_target}")
    print(f"spec hosts: {spec_file}\nstop with: python -m demo.estate stop --root {estate.root}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    """Stop the estate at ``--root``."""
    Estate.load(args.root).stop()
    print(f"estate at {args.root.resolve()} stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    """Print what runs; exit 0 when everything is up."""
    status = Estate.load(args.root).status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for name, listening in status["hosts"].items():
            print(f"host {name:<10} sshd {'listening' if listening else 'DOWN'}")
        for name, app in status["apps"].items():
            state = f"pid {app['pid']}" if app["pid"] else "DOWN"
            print(f"app  {name:<10} {app['url']} {state}{' frozen' if app['frozen'] else ''}")
        if gateway := status["gateway"]:
            state = "listening" if gateway["listening"] else "DOWN"
            print(f"gateway         {gateway['url']} {state} -> {gateway['target']}")
    return 0 if status["up"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m demo.estate``."""
    args = _parser().parse_args(argv)
    commands = {"start": _start, "stop": _stop, "status": _status}
    try:
        return commands[args.command](args)
    except EstateError as exc:
        print(f"demo.estate {args.command}: {exc}", file=sys.stderr)
        return 1
