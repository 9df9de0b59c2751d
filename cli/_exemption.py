"""``cutover exemption``: the expert panel's rulings on systems declared unable to migrate."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from cli._console import ExitCode, console, fail
from cli._ledger import actor
from cutover import exemptions
from cutover.ledger import ExemptionDecision
from cutover.runtime import open_ledger

exemption_app = typer.Typer(
    help="Exemptions: systems declared unable to migrate, ruled by experts.", no_args_is_help=True
)

_SEPARATORS = str.maketrans({"，": ",", "、": ",", ";": ",", "；": ","})


@exemption_app.command("rule")
def rule(
    system_id: Annotated[str, typer.Argument(metavar="SYSTEM", help="The system declared unable to migrate.")],
    accepted: Annotated[
        bool, typer.Option("--accepted", help="The panel accepts: the system stays off the cloud.")
    ] = False,
    refused: Annotated[
        bool, typer.Option("--refused", help="The panel refuses: the system goes back in the plan.")
    ] = False,
    on: Annotated[str, typer.Option("--date", metavar="YYYY-MM-DD", help="The date the panel ruled.")] = "",
    panel: Annotated[str, typer.Option(help="The experts who ruled, comma-separated: 'A,B,C'.")] = "",
    document: Annotated[str, typer.Option(help="The ruling's document number.")] = "",
) -> None:
    """Record the expert panel's ruling on an exemption (audited as exemption.ruled)."""
    if accepted == refused:
        fail("give exactly one of --accepted and --refused", ExitCode.USAGE)
    try:
        ruled_on = date.fromisoformat(on)
    except ValueError:
        fail(f"--date {on!r} is not a date: give the day the panel ruled as YYYY-MM-DD", ExitCode.USAGE)
    decision = ExemptionDecision.ACCEPTED if accepted else ExemptionDecision.REFUSED
    ruling = exemptions.rule(
        open_ledger(),
        system_id,
        decision=decision,
        ruled_on=ruled_on,
        panel=panel.translate(_SEPARATORS).split(","),
        document=document,
        actor=actor(),
    )
    what = (
        "accepted: the system stays off the cloud"
        if accepted
        else "refused: the system is back in the plan, to migrate"
    )
    console.print(
        f"exemption of {system_id} {what} (ruled {ruling.ruled_on.isoformat()}, {ruling.document}, "
        f"panel {', '.join(ruling.panel)})",
        soft_wrap=True,
    )


@exemption_app.command("list")
def list_() -> None:
    """Every system declared unable to migrate: its reason and the panel's ruling (or pending)."""
    found = exemptions.exemptions(open_ledger())
    if not found:
        console.print("no system is declared unable to migrate")
        return
    table = Table(
        "system",
        "name",
        "department",
        "reason 原因",
        "ruling 认定",
        "date",
        "panel",
        "document",
        title="不迁移认定 exemptions",
    )
    for item in found:
        ruling = item.ruling
        table.add_row(
            item.system.id,
            item.system.name,
            item.system.department,
            item.reason,
            ruling.decision.value if ruling else "pending 待认定",
            ruling.ruled_on.isoformat() if ruling else "",
            "、".join(ruling.panel) if ruling else "",
            ruling.document if ruling else "",
        )
    console.print(table)
