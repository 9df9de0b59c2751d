"""Serve one instance of the sample application with uvicorn.

    python -m demo.sampleapp --name legacy --host 127.0.0.11 --port 8000 \\
        --db sqlite:////path/app.db [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from demo.sampleapp.app import create_app


def _loopback(address: str) -> str:
    """Accept only loopback addresses: the demo never listens anywhere else."""
    if not ipaddress.ip_address(address).is_loopback:
        raise argparse.ArgumentTypeError(f"{address} is not a loopback address")
    return address


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m demo.sampleapp", description=__doc__)
    parser.add_argument("--name", required=True, help="instance name, e.g. legacy or cloud")
    parser.add_argument("--host", type=_loopback, default="127.0.0.1", help="loopback address")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", required=True, help="SQLAlchemy database URL")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="directory of the freeze flag file (default: freeze in memory)"
    )
    args = parser.parse_args(argv)
    app = create_app(args.name, args.db, state_dir=args.state_dir)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        backlog=2048,
        timeout_keep_alive=30,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
