"""The one error the demo estate raises on purpose."""

from __future__ import annotations


class EstateError(RuntimeError):
    """A part of the demo estate could not be started, reached or stopped.

    The message names the part, the address and the log file to read.
    """
