"""The import contract (pyproject.toml, `lint-imports` in `make lint`) and the one definition of each deployment."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.private_modules import PrivateModulesContract
from importlinter.domain.contract import Contract

from flows.deployments import DEPLOYMENTS, prefect_yaml, rollback_deployment

REPO = Path(__file__).resolve().parents[1]
_CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
ROOTS: list[str] = _CONFIG["root_packages"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """The project's real import graph, built afresh (no cache)."""
    return grimp.build_graph(*ROOTS, cache_dir=None)


def _as_option(value: Any) -> Any:
    """An option as import-linter's own TOML reader hands it over (booleans as text)."""
    return str(value) if isinstance(value, bool) else value


@contextmanager
def _with_import(graph: grimp.ImportGraph, importer: str, imported: str) -> Iterator[grimp.ImportGraph]:
    graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    try:
        yield graph
    finally:
        graph.remove_import(importer=importer, imported=imported)


def _contract(cls: type[Contract], contract_id: str) -> Contract:
    options: dict[str, Any] = next(c for c in _CONFIG["contracts"] if c["id"] == contract_id)
    contract_options = {k: _as_option(v) for k, v in options.items() if k not in {"id", "name", "type"}}
    return cls(name=options["name"], session_options={"root_packages": ROOTS}, contract_options=contract_options)


def test_the_code_keeps_the_layer_contract(graph: grimp.ImportGraph) -> None:
    assert _contract(LayersContract, "layers").check(graph, verbose=False).kept


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("tasks.ssh", "flows.cutover"),
        ("cutover.lifecycle", "rollback._run"),
        ("rollback._plan", "flows.deployments"),
        ("flows.watch", "cli.app"),
    ],
)
def test_a_lower_layer_importing_a_higher_one_breaks_the_contract_naming_both_modules(
    graph: grimp.ImportGraph, importer: str, imported: str
) -> None:
    with _with_import(graph, importer, imported) as upward:
        check = _contract(LayersContract, "layers").check(upward, verbose=False)
    assert not check.kept
    assert importer in str(check.metadata) and imported in str(check.metadata)


def test_a_private_module_imported_from_another_package_breaks_the_contract(graph: grimp.ImportGraph) -> None:
    assert _contract(PrivateModulesContract, "private").check(graph, verbose=False).kept
    with _with_import(graph, "flows.watch", "tasks._ssh_client") as reaching_in:
        assert not _contract(PrivateModulesContract, "private").check(reaching_in, verbose=False).kept


def test_no_two_packages_import_each_other(graph: grimp.ImportGraph) -> None:
    packages = [p for p in ROOTS if p not in {"demo", "loadtests"}]
    both_ways = [
        (a, b)
        for a in packages
        for b in packages
        if a < b and graph.chain_exists(a, b, as_packages=True) and graph.chain_exists(b, a, as_packages=True)
    ]
    assert both_ways == []


def test_prefect_yaml_is_generated_from_the_deployments_table() -> None:
    on_disk = (REPO / "prefect.yaml").read_text(encoding="utf-8")
    assert on_disk == prefect_yaml(), "prefect.yaml is stale: run `cutover deployments --write` (make schema)"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_deployment_entrypoint_is_a_prefect_flow(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    assert deployment.flow().fn.__module__ == deployment.entrypoint.rpartition(".")[0]


def test_the_rollback_deployment_of_a_system_comes_from_the_same_table() -> None:
    deployment = rollback_deployment("hrss.social-insurance")
    assert deployment.flow().name == "rollback"
    assert (deployment.name, deployment.concurrency_limit) == ("rollback-hrss.social-insurance", 1)
    assert deployment.parameters["system_id"] == "hrss.social-insurance"
