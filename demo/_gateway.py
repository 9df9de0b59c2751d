"""The gateway: an nginx run as ``cutover-ops`` that proxies to the app named in an include file.

The traffic switch is a real upstream change: ``route`` rewrites ``upstream.conf`` and runs
``nginx -s reload``. nginx runs in the foreground (``daemon off``) under the estate's supervision
and keeps its pid file, error log and temp files inside the estate directory, so the unprivileged
user can reload it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

NGINX = "/usr/sbin/nginx"
UPSTREAM_NAME = "cutover_app"


@dataclass(frozen=True)
class GatewayFiles:
    """Where the gateway's nginx keeps its config, upstream include, pid file and logs."""

    directory: Path

    @property
    def config(self) -> Path:
        """The main ``nginx.conf``."""
        return self.directory / "nginx.conf"

    @property
    def upstream(self) -> Path:
        """The include file naming the app that receives the traffic."""
        return self.directory / "upstream.conf"

    @property
    def pidfile(self) -> Path:
        """nginx's master pid file."""
        return self.directory / "nginx.pid"

    @property
    def error_log(self) -> Path:
        """nginx's error log."""
        return self.directory / "error.log"

    @property
    def temp(self) -> Path:
        """Parent of nginx's temp directories."""
        return self.directory / "temp"

    def control_argv(self, *extra: str) -> list[str]:
        """The nginx command line for this gateway, plus ``extra`` (e.g. ``-s reload``)."""
        return [NGINX, "-c", str(self.config), "-p", f"{self.directory}/", "-e", str(self.error_log), *extra]


def nginx_config(files: GatewayFiles, *, address: str, port: int) -> str:
    """Return the text of the gateway's ``nginx.conf``."""
    temp = files.temp
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {files.pidfile};
error_log {files.error_log} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {files.upstream};
    server {{
        listen {address}:{port};
        location / {{
            proxy_pass http://{UPSTREAM_NAME};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


def upstream_config(target: str, address: str, port: int) -> str:
    """Return the include file sending all traffic to app ``target`` at ``address:port``."""
    return f"# target: {target}\nupstream {UPSTREAM_NAME} {{ server {address}:{port}; keepalive 16; }}\n"


def current_target(files: GatewayFiles) -> str | None:
    """Return the app the upstream include names, or None if it cannot be read."""
    try:
        first = files.upstream.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return first.removeprefix("# target: ").strip() if first.startswith("# target:") else None


def write_upstream(files: GatewayFiles, target: str, address: str, port: int) -> None:
    """Replace the upstream include atomically (write a temp file, then rename)."""
    temp = files.upstream.with_name(f".upstream.{os.getpid()}.tmp")
    temp.write_text(upstream_config(target, address, port))
    temp.replace(files.upstream)


def start_nginx(files: GatewayFiles, *, uid: int, gid: int) -> subprocess.Popen[bytes]:
    """Start the gateway's nginx master as ``uid:gid`` in its own session."""
    with (files.directory / "nginx.out").open("ab") as out:
        return subprocess.Popen(
            files.control_argv(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=[],
            cwd=files.directory,
        )
