"""The ``cutover`` application and its spec commands: validate, schema, deployments.

The other commands live in the modules :func:`cli.register_commands` attaches (plan, status and
audit in :mod:`cli._ledger`; rollback and decommission in :mod:`cli._retention`; approver and sign
in :mod:`cli._signoff`). Exit codes are :class:`cli._console.ExitCode`; the README documents them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli._console import ErrorBoundary, ExitCode, console, err_console, fail
from cutover.errors import SpecError
from cutover.spec import Spec
from cutover.spec_loader import load, spec_files

app = typer.Typer(
    name="cutover",
    help="Move information systems onto the provincial e-government cloud in the mandated order "
    "(plan → test → joint sign-off → cutover → ≥3 months retention), with the way back kept open.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ErrorBoundary,
)

SpecPaths = Annotated[
    list[Path] | None,
    typer.Argument(help="Spec files or directories (default: the specs directory from settings)."),
]
SCHEMA_PATH = Path("cutover_specs/schema.json")
REFERENCE_PATH = Path("docs/spec-reference.md")
PREFECT_YAML = Path("prefect.yaml")


def _paths(paths: list[Path] | None) -> list[Path]:
    from cutover.settings import get_settings

    return spec_files(paths or [get_settings().specs_dir])


@app.command()
def validate(paths: SpecPaths = None) -> None:
    """Validate cutover specs; exit 0 only when every file is valid."""
    files = _paths(paths)
    if not files:
        fail("no spec files found; pass files or a directory of *.yaml specs", ExitCode.INVALID)
    invalid = 0
    for path in files:
        try:
            spec = load(path)
        except SpecError as error:
            invalid += 1
            for problem in error.problems:
                err_console.print(f"[red]invalid[/] {problem}", soft_wrap=True)
            continue
        console.print(f"[green]ok[/]      {path}  ({spec.system.id}, {spec.system.name})")
    console.print(f"{len(files) - invalid} valid, {invalid} invalid")
    if invalid:
        raise typer.Exit(int(ExitCode.INVALID))


@app.command()
def schema(
    write: Annotated[
        bool, typer.Option("--write", help=f"Write {SCHEMA_PATH} and {REFERENCE_PATH} instead of printing.")
    ] = False,
) -> None:
    """Print (or write) the JSON Schema of cutover specs, for editors."""
    text = schema_text()
    if write:
        from cutover.schema_doc import spec_reference

        for path in (SCHEMA_PATH, REFERENCE_PATH):
            path.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        REFERENCE_PATH.write_text(spec_reference(), encoding="utf-8")
        console.print(f"wrote {SCHEMA_PATH} and {REFERENCE_PATH}")
    else:
        typer.echo(text, nl=False)


def schema_text() -> str:
    """The JSON Schema of :class:`Spec`, as written to ``cutover_specs/schema.json``."""
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "govcloud-cutover spec"}
    document.update(Spec.model_json_schema(by_alias=True))
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


@app.command()
def deployments(
    write: Annotated[bool, typer.Option("--write", help=f"Write {PREFECT_YAML} instead of printing.")] = False,
    pool: Annotated[str, typer.Option(help="The work pool the deployments go to.")] = "cutover-process",
) -> None:
    """Print (or write) prefect.yaml, generated from the deployments table (flows/deployments.py)."""
    from flows.deployments import prefect_yaml

    text = prefect_yaml(pool)
    if write:
        PREFECT_YAML.write_text(text, encoding="utf-8")
        console.print(f"wrote {PREFECT_YAML}; register the deployments with `cutover setup`")
    else:
        typer.echo(text, nl=False)
