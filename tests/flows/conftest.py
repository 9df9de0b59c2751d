"""Fixtures of the flow tests (watch, decommission): the rollback tests' ledger, secrets and settings."""

from tests.rollback.conftest import demo_secrets, rb_ledger, settings

__all__ = ["demo_secrets", "rb_ledger", "settings"]
