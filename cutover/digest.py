"""Digests for the audit chain, reports and specs: SM3 by default, SHA-256 selectable.

A digest is written ``"<algorithm>:<hex>"`` so a stored value says how it was made. If SM3 is
asked for and this Python's hashlib lacks it, :func:`require_algorithm` refuses: there is no
silent fallback.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from cutover.errors import ConfigurationError

Algorithm = Literal["sm3", "sha256"]


def require_algorithm(algorithm: Algorithm) -> None:
    """Refuse to start when the configured digest is unavailable."""
    try:
        hashlib.new(algorithm)
    except ValueError as exc:
        raise ConfigurationError(
            f"digest algorithm {algorithm!r} is configured but this Python's hashlib does not "
            "provide it (OpenSSL without SM3?). Install an OpenSSL with SM3, or set "
            "CUTOVER_DIGEST=sha256 deliberately; the tool never falls back on its own."
        ) from exc


def digest_bytes(data: bytes, algorithm: Algorithm = "sm3") -> str:
    """``"<algorithm>:<hex>"`` of ``data``."""
    require_algorithm(algorithm)
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8 (Chinese kept as is)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest_json(value: Any, algorithm: Algorithm = "sm3") -> str:
    """Digest of the canonical JSON form of ``value``."""
    return digest_bytes(canonical_json(value), algorithm)
