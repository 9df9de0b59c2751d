"""Which Python the estate's hosts run (as cutover-ops): the venv's, or a thin stand-in.

The host programs and the sample app run as the unprivileged ``cutover-ops``. When the venv's
interpreter lives somewhere that user cannot reach (e.g. a pyenv build under ``/root``, which is
mode 700), the estate builds ``<root>/runtime/``: a venv-shaped directory whose ``bin/python`` is
the system interpreter of the same minor version and whose ``site-packages`` holds one ``.pth``
file that adds the project and the venv's packages. Nothing outside the estate root is changed.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from demo.errors import EstateError


def host_python(root: Path, repo: Path) -> str:
    """Return an interpreter path cutover-ops can execute that imports the project's packages."""
    venv_python = Path(sys.executable)
    if _blocked_dir(venv_python.resolve()) is None:
        return str(venv_python)
    return str(_build_runtime(root / "runtime", repo))


def _blocked_dir(path: Path) -> Path | None:
    """Return the first directory on the way to ``path`` that others cannot search, if any."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & 0o001:
            return parent
    return None


def _build_runtime(runtime: Path, repo: Path) -> Path:
    """Create (or refresh) ``runtime/`` and return its ``bin/python``."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system_python = Path(f"/usr/bin/python{version}")
    if not system_python.exists():
        blocked = _blocked_dir(Path(sys.executable).resolve())
        raise EstateError(
            f"cutover-ops cannot run {sys.executable} ({blocked} is not searchable by others) "
            f"and there is no {system_python} to stand in; run `chmod o+x {blocked}`"
        )
    site_packages = runtime / "lib" / f"python{version}" / "site-packages"
    site_packages.mkdir(parents=True, exist_ok=True)
    (runtime / "pyvenv.cfg").write_text(
        f"home = {system_python.parent}\ninclude-system-site-packages = false\nversion = {version}\n"
    )
    python = runtime / "bin" / "python"
    python.parent.mkdir(exist_ok=True)
    if not python.is_symlink():
        os.symlink(system_python, python)
    (site_packages / "_cutover_estate.pth").write_text(_pth_lines(repo))
    return python


def _pth_lines(repo: Path) -> str:
    """The ``.pth`` file: the project root, then the venv's site dirs with their own .pth files."""
    dirs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    adds = "; ".join(f"site.addsitedir({d!r})" for d in dirs)
    return f"{repo}\nimport site; {adds}\n"
