"""Secrets are referenced by name and redacted everywhere they could leak.

``resolve(spec, ref)`` reads a declared secret from the environment or a Prefect Secret block (a
value written inline, such as a database URL without a password, passes through unchanged).
Every resolved value is registered with the process-wide :data:`REDACTOR`, whose logging filter
(installed on the root, ``prefect`` and ``cutover`` loggers by :func:`install_log_redaction`)
replaces it with ``***`` in every log line; callers pass text for artifacts, ledger rows and
exception messages through :func:`redact`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import cast

from pydantic import SecretStr

from cutover.errors import ConfigurationError
from cutover.spec import SecretRef, SecretSource, Spec

MASK = "***"


class Redactor:
    """Knows every secret value seen by this process and masks it in text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Remember ``value`` so it is masked from now on (values under 4 characters are too
        short to mask safely and are refused by :func:`resolve`)."""
        with self._lock:
            self._values.add(value)

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***`` (longest first)."""
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    """Mask every secret this process has resolved."""
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = REDACTOR.redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction(*names: str) -> None:
    """Attach the redacting filter to the named loggers' handlers and the loggers themselves."""
    for name in names or ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "cutover"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def resolve(spec: Spec, ref: SecretRef | str) -> SecretStr:
    """The value of a declared secret; registered for redaction before it is returned.

    A plain string is a value the spec may write inline (a database URL without a password, see
    :data:`cutover.spec.DatabaseUrl`): it is no secret, and is returned as it is."""
    if isinstance(ref, str):
        return SecretStr(ref)
    source = spec.secrets.get(ref.secret)
    if source is None:
        raise ConfigurationError(
            f"secret {ref.secret!r} is not declared in spec {spec.system.id}; add it under secrets:"
        )
    value = _read(ref.secret, source)
    if len(value) < 4:
        raise ConfigurationError(
            f"secret {ref.secret!r} ({_where(source)}) is shorter than 4 characters and cannot be "
            "redacted safely; use a real secret"
        )
    REDACTOR.register(value)
    return SecretStr(value)


def _read(name: str, source: SecretSource) -> str:
    if source.source == "env":
        value = os.environ.get(source.name)
        if value is None:
            raise ConfigurationError(f"secret {name!r}: {_where(source)} is not set; set it where the flow runs")
        return value
    return _read_prefect_block(name, source)


def _read_prefect_block(name: str, source: SecretSource) -> str:
    from prefect.blocks.system import Secret

    try:
        block = cast("Secret[str]", Secret.load(source.name))
    except ValueError as exc:
        raise ConfigurationError(
            f"secret {name!r}: {_where(source)} was not found; create it with "
            f"`prefect block create secret` or in the UI (Blocks → Secret)"
        ) from exc
    return str(block.get())


def _where(source: SecretSource) -> str:
    kind = "environment variable" if source.source == "env" else "Prefect Secret block"
    return f"{kind} {source.name}"
