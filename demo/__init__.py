"""The demo estate: real SSH hosts, a sample application and an nginx gateway on loopback.

``from demo import Estate`` — see :mod:`demo.estate`. The names are loaded lazily so that
``python -m demo.estate`` and the host programs start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from demo.estate import AppInstance, Estate, EstateError, EstateHost

__all__ = ["AppInstance", "Estate", "EstateError", "EstateHost"]


def __getattr__(name: str) -> Any:
    """Load the public names from :mod:`demo.estate` on first use."""
    if name in __all__:
        from demo import estate

        return getattr(estate, name)
    raise AttributeError(f"module 'demo' has no attribute {name!r}")
