"""Decommission (flows/decommission.py): refused before the window's end, a report to sign after it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from cutover import audit
from cutover.errors import RetentionError
from cutover.ledger import HealthProbe, Ledger, RetentionWindow
from cutover.runtime import register
from demo.estate import Estate
from flows.decommission import check_decommission_allowed, render_report
from tests.rollback._retained import estate_spec, retained_on_paper


def _window(ledger: Ledger, system_id: str) -> RetentionWindow:
    window = ledger.current_retention_window(system_id)
    assert window is not None
    return window


def _at(ledger: Ledger, moment: datetime) -> Ledger:
    """The same ledger database, read through a clock stopped at ``moment``."""
    return Ledger(ledger.engine.url.render_as_string(hide_password=False), digest="sm3", clock=lambda: moment)


def test_decommission_is_refused_one_day_before_the_window_ends(rb_ledger: Ledger, estate: Estate) -> None:
    retained = retained_on_paper(rb_ledger, estate_spec(estate))
    ends = _window(rb_ledger, retained.system_id).ends_at
    day_before = _at(rb_ledger, ends - timedelta(days=1))

    with pytest.raises(RetentionError, match=f"runs until {ends:%Y-%m-%d %H:%M} UTC \\(1 day from now\\)"):
        check_decommission_allowed(day_before, retained.system_id, actor="test")
    events = audit.events(rb_ledger, object=f"system:{retained.system_id}")
    assert events[0].action == "decommission.refused"


def test_decommission_is_allowed_once_the_window_has_ended(rb_ledger: Ledger, estate: Estate) -> None:
    retained = retained_on_paper(rb_ledger, estate_spec(estate))
    ends = _window(rb_ledger, retained.system_id).ends_at

    window = check_decommission_allowed(_at(rb_ledger, ends), retained.system_id, actor="test")

    assert window.cutover_run_id == retained.cutover_run_id


def test_decommission_of_a_system_not_in_retention_is_refused(rb_ledger: Ledger, estate: Estate) -> None:
    spec = estate_spec(estate)
    register(rb_ledger, spec, actor="test")

    with pytest.raises(RetentionError, match="it is planned, not in retention"):
        check_decommission_allowed(rb_ledger, spec.system.id, actor="test")


def test_the_decommission_report_names_the_system_cutover_window_and_health(rb_ledger: Ledger, estate: Estate) -> None:
    retained = retained_on_paper(rb_ledger, estate_spec(estate))
    rb_ledger.record_health(
        [HealthProbe(retained.system_id, "gateway-health", ok, 10.0) for ok in (True, False, True, True)]
    )
    window = _window(rb_ledger, retained.system_id)

    text = render_report(rb_ledger, retained.spec, window)

    assert retained.system_id in text and "社会保险信息系统" in text
    assert f"{window.opened_at:%Y-%m-%d} – {window.ends_at:%Y-%m-%d} (3 months)" in text
    assert "4 probes, 1 failed (25.00 %), mean 10 ms" in text
