"""govcloud-cutover core: specs, lifecycle, ledger, audit, settings, errors."""

__version__ = "0.1.0"
