"""Shared test configuration: fixtures that start real servers live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.pg_cluster",
    "tests.fixtures.ledger",
    "tests.fixtures.estate",
    "tests.fixtures.prefect_server",
    "tests.fixtures.httpapp",
    "tests.fixtures.totp",
]
