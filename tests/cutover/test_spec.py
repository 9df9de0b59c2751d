"""Cutover specs: strict models, every refusal naming file, line and field, all at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from cli.app import schema_text
from cutover.errors import SpecError, SpecProblem
from cutover.spec import DataVerify, DataVerifyStep, SecretRef, Spec
from cutover.spec_loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "cutover_specs" / "hrss-social-insurance.yaml"
WriteSpec = Callable[..., Path]
GATE = "  health_gate: {passes: 3, interval: 1s, within: 2m}\n"  # a cutover line after which to add one


@pytest.fixture
def write_spec(tmp_path: Path) -> WriteSpec:
    """Write the hrss example with textual replacements; returns the new file's path."""

    def write(*replacements: tuple[str, str], name: str = "spec.yaml") -> Path:
        text = EXAMPLE.read_text(encoding="utf-8")
        for old, new in replacements:
            assert old in text, f"test setup: {old!r} not in the example spec"
            text = text.replace(old, new, 1)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def problems_of(path: Path) -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.problems


def the_problem(path: Path, field: str) -> SpecProblem:
    found = [p for p in problems_of(path) if p.field == field]
    assert found, f"no problem on {field}: {problems_of(path)}"
    assert found[0].file == str(path)
    return found[0]


def test_every_example_spec_is_valid() -> None:
    for path in sorted((ROOT / "cutover_specs").glob("*.yaml")):
        assert isinstance(load_spec(path), Spec)


def test_the_schema_file_is_current() -> None:
    written = (ROOT / "cutover_specs" / "schema.json").read_text(encoding="utf-8")
    assert written == schema_text(), "cutover_specs/schema.json is stale: run `make schema`"
    assert json.loads(written)["additionalProperties"] is False


@dataclass(frozen=True)
class Refusal:
    """A spec breaking one rule: the text changed in the example, and what the refusal names."""

    old: str
    new: str
    field: str
    at: str  # text on the line the refusal names
    says: str  # a fragment of what it says
    lines_below: int = 0  # the named line is this many lines below the one with ``at``


DATA = (
    "\ndata:\n  replication: postgresql-logical\n  original: {secret: legacy-db}\n  cloud: {secret: cloud-db}\n"
    "  tables: [public.insured, public.payments]\n"
)


def with_data(old: str = "", new: str = "") -> str:
    """The example's data: section (inserted before retention:), with one text replaced."""
    return DATA.replace(old, new, 1) + "\nretention:\n"


REFUSALS = [
    pytest.param(
        Refusal(
            "\nretention:\n",
            with_data("replication: postgresql-logical", "replication: mysql-binlog"),
            "data.replication",
            at="replication: mysql-binlog",
            says="write postgresql-logical",
        ),
        id="data is replicated only by postgresql logical replication",
    ),
    pytest.param(
        Refusal(
            "\nretention:\n",
            with_data("cloud: {secret: cloud-db}", "cloud: {secret: legacy-db}"),
            "data.cloud.secret",
            at="cloud: {secret: legacy-db}",
            says="cannot replicate into itself",
        ),
        id="the cloud copy is not the original's own database",
    ),
    pytest.param(
        Refusal(
            "\nretention:\n",
            with_data("public.payments", "public.pay.ments"),
            "data.tables[1]",
            at="public.pay.ments",
            says="write schema.table (e.g. public.payments)",
        ),
        id="a replicated table is named schema.table",
    ),
    pytest.param(
        Refusal(
            "\nretention:\n",
            with_data("public.payments", "insured"),
            "data.tables[1]",
            at="tables: [public.insured, insured]",
            says="listed twice (as public.insured)",
        ),
        id="a replicated table is listed once",
    ),
    pytest.param(
        Refusal(
            "\nretention:\n",
            with_data("tables: [public.insured, public.payments]", "tables: []"),
            "data.tables",
            at="tables: []",
            says="at least 1 item",
        ),
        id="replication names its tables",
    ),
    pytest.param(
        Refusal(
            "classification: non-classified",
            "classification: classified",
            "system.classification",
            at="classification: classified",
            says="涉密",
        ),
        id="a classified system may not move",
    ),
    pytest.param(
        Refusal(
            "months: 3",
            "months: 2",
            "retention.months",
            at="months: 2",
            says="retention.months is 2; the notice requires at least 3 (原系统至少保留3个月以上)",
        ),
        id="retention lasts at least three months",
    ),
    pytest.param(
        Refusal(
            "approvers: [{id: zhao.min, name: 赵敏}]",
            "approvers: []",
            "parties.cloud_provider.approvers",
            at="approvers: []",
            says="no approvers",
        ),
        id="each party has an approver",
    ),
    pytest.param(
        Refusal(
            "{id: zhao.min, name: 赵敏}",
            "{id: wang.li, name: 王丽}",
            "parties.cloud_provider.approvers[0].id",
            at="name: 政务云服务商",
            lines_below=1,
            says="both parties",
        ),
        id="no one approves for both parties",
    ),
    pytest.param(
        Refusal(
            ", undo: [/srv/app/bin/appctl, unfreeze]",
            "",
            "cutover.steps[0].undo",
            at="id: freeze",
            says="irreversible: true with covered_by",
        ),
        id="a state-changing step has an undo or a covering rollback step",
    ),
    pytest.param(
        Refusal(
            "covered_by: reverse-sync",
            "covered_by: reverse-synk",
            "cutover.steps[1].covered_by",
            at="reverse-synk",
            says="unknown rollback step 'reverse-synk'",
        ),
        id="an irreversible step is covered by an existing rollback step",
    ),
    pytest.param(
        Refusal(
            ', host_key: "SHA256:Q0f3m0oN7q6b2y8pK8s1kH5vH1rW3dJ2c4x9tZ7uL0a"',
            "",
            "hosts.legacy.host_key",
            at="legacy:     {address",
            says="no pinned host key",
        ),
        id="every host has a pinned key",
    ),
    pytest.param(
        Refusal(
            'url: "http://127.0.0.12:8000/api/stats"',
            'url: "http://ops:hunter2@127.0.0.12:8000/api/stats"',
            "test_platform.internal_tests[1].url",
            at="hunter2",
            says="declare it under secrets: and refer to it as {secret: name}",
        ),
        id="no password is written inline in a URL",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/selftest]",
            "run: [/srv/app/bin/selftest, --password, hunter2]",
            "test_platform.internal_tests[0].run[2]",
            at="hunter2",
            says="declare it under secrets: and refer to it as {secret: name}",
        ),
        id="no password is written inline as an argument",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/selftest]",
            "run: [/srv/app/bin/selftest, --password=hunter2]",
            "test_platform.internal_tests[0].run[1]",
            at="hunter2",
            says="declare it under secrets: and refer to it as {secret: name}",
        ),
        id="no password is written inline in an option",
    ),
    pytest.param(
        Refusal(
            "legacy-db: {source: env,",
            "legacy-db: {password: hunter2, source: env,",
            "secrets.legacy-db.password",
            at="password: hunter2",
            says="secret is written inline",
        ),
        id="no password is written inline in the secrets",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/appctl, freeze]",
            'run: [/srv/app/bin/appctl, "a\\nb"]',
            "cutover.steps[0].run[1]",
            at="id: freeze",
            says="NUL or a newline",
        ),
        id="an argument holds no newline",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/appctl, freeze]",
            'run: [/srv/app/bin/appctl, "a\\0b"]',
            "cutover.steps[0].run[1]",
            at="id: freeze",
            says="NUL or a newline",
        ),
        id="an argument holds no NUL",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/pull-from, legacy]",
            "run: [/srv/app/bin/pull-from, --, --delete-all]",
            "cutover.steps[1].run[2]",
            at="--delete-all",
            says="operand '--delete-all'",
        ),
        id="an operand does not look like an option",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/route, cloud]",
            "run: [-rf, cloud]",
            "cutover.steps[3].run[0]",
            at="run: [-rf, cloud]",
            says="the program '-rf'",
        ),
        id="a program does not look like an option",
    ),
    pytest.param(
        Refusal(
            "host: gateway, run: [/srv/app/bin/route, cloud]",
            "host: gatway, run: [/srv/app/bin/route, cloud]",
            "cutover.steps[3].host",
            at="host: gatway",
            says="unknown host 'gatway'",
        ),
        id="a step runs on a known host",
    ),
    pytest.param(
        Refusal(
            "target: {secret: cloud-db}, tables",
            "target: {secret: cluod-db}, tables",
            "cutover.steps[2].target.secret",
            at="cluod-db",
            says="unknown secret 'cluod-db'",
        ),
        id="a step uses a known secret",
    ),
    pytest.param(
        Refusal(
            "host: legacy, run: [/srv/app/bin/appctl, unfreeze]}",
            "host: legacy, run: [/srv/app/bin/appctl, freeze]}",
            "rollback.steps[1].run",
            at="id: unfreeze-legacy",
            says="step 'unfreeze-legacy' freezes the original again",
        ),
        id="a rollback never freezes the original again (the tool orders the rest itself)",
    ),
    pytest.param(
        Refusal(
            "source: {secret: legacy-db}, target: {secret: cloud-db}, tables",
            "source: 'postgresql://app:hunter2@127.0.0.11/app', target: {secret: cloud-db}, tables",
            "cutover.steps[2].source",
            at="hunter2",
            says="the database URL carries a password, which may not be written in a spec; put the whole URL in an "
            "environment variable or a Prefect Secret block, declare it under secrets: and refer to it as "
            "{secret: name} (source: {secret: name})",
        ),
        id="a database URL with a password is refused with the fix: declare it under secrets and refer to it",
    ),
    pytest.param(
        Refusal(
            "source: {secret: legacy-db}, target: {secret: cloud-db}, tables",
            "source: {secret: legacy-db}, target: 'postgresql://app@127.0.0.11/app?password=hunter2', tables",
            "cutover.steps[2].target",
            at="hunter2",
            says="(target: {secret: name})",
        ),
        id="a database URL with a password in its query is a secret too",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/appctl, freeze]",
            "run: [/srv/app/bin/appctl, freeze], stdin: hunter2",
            "cutover.steps[0].stdin",
            at="stdin: hunter2",
            says="takes a reference to a secret, not its value; put the value in an environment variable or a "
            "Prefect Secret block, declare it under secrets: and refer to it as {secret: name}",
        ),
        id="a secret on standard input is a reference, not its value",
    ),
    pytest.param(
        Refusal(
            "run: [/srv/app/bin/appctl, freeze]",
            "run: [/srv/app/bin/appctl, freeze], stdin: 'postgresql://app:hunter2@127.0.0.11/app'",
            "cutover.steps[0].stdin",
            at="hunter2",
            says="a URL with a password is written inline; put it in an environment variable or a Prefect Secret "
            "block, declare it under secrets: and refer to it as {secret: name}",
        ),
        id="a URL with a password on standard input is a reference too",
    ),
    pytest.param(
        Refusal(
            ', host_key: "SHA256:Q0f3m0oN7q6b2y8pK8s1kH5vH1rW3dJ2c4x9tZ7uL0a"',
            ', host_key: "SHA256:Q0f3m0oN7q6b2y8pK8s1kH5vH1rW3dJ2c4x9tZ7uL0a", key_secret: hunter2',
            "hosts.legacy.key_secret",
            at="key_secret: hunter2",
            says="declare it under secrets: and refer to it as {secret: name}",
        ),
        id="a host's client key in a secret is a reference, not the key",
    ),
    pytest.param(
        Refusal(
            "source: {secret: legacy-db}, target: {secret: cloud-db}, tables",
            "source: {url: 'postgresql://app@127.0.0.11/app'}, target: {secret: cloud-db}, tables",
            "cutover.steps[2].source.secret",
            at="id: verify-rows",
            says="is required",
        ),
        id="a secret reference names its secret",
    ),
    pytest.param(
        Refusal(
            "source: {secret: legacy-db}, target: {secret: cloud-db}, tables",
            "source: 'not a url', target: {secret: cloud-db}, tables",
            "cutover.steps[2].source",
            at="not a url",
            says="is not a database URL",
        ),
        id="a database URL written inline is a URL",
    ),
    pytest.param(
        Refusal(
            "\nretention:\n",
            with_data("original: {secret: legacy-db}", "original: 'postgresql://repl:hunter2@127.0.0.11/app'"),
            "data.original",
            at="original: 'postgresql",
            says="the database URL carries a password",
        ),
        id="the replicated original's URL with a password is a secret",
    ),
    pytest.param(
        Refusal(
            "  internal_tests:\n",
            "  prepare:\n    - {kind: ssh, id: start-app, name: start, host: nowhere, run: [/srv/app/bin/appctl, start]}\n"
            "  internal_tests:\n",
            "test_platform.prepare[0].host",
            at="id: start-app",
            says="unknown host 'nowhere'",
        ),
        id="a preparation step runs on a known host",
    ),
    pytest.param(
        Refusal(
            "host: gateway, run: [/srv/app/bin/route, legacy]}",
            "host: gateway, run: [/srv/app/bin/route, legacy], switches_traffic: true}",
            "rollback.steps[4].switches_traffic",
            at="id: route-back",
            says="only a cutover step can be the traffic switch",
        ),
        id="only a cutover step switches the traffic",
    ),
    pytest.param(
        Refusal(
            "id: route-back",
            "id: reverse-sync",
            "rollback.steps[4].id",
            at="name: 流量回切",
            says="duplicate id 'reverse-sync'",
        ),
        id="step ids are unique",
    ),
    pytest.param(
        Refusal(
            "  months: 3\n",
            "  months: 3\n  months: 4\n",
            "retention.months",
            at="months: 4",
            says="duplicate key",
        ),
        id="a YAML key appears once",
    ),
    pytest.param(
        Refusal(
            "  trial_run: 7d",
            "  trial_runn: 7d",
            "test_platform.trial_runn",
            at="trial_runn",
            says="unknown key",
        ),
        id="an unknown key is a typo",
    ),
    *(
        pytest.param(Refusal(GATE, f"{GATE}  {window}\n", field, at=at, says=says), id=name)
        for window, field, at, says, name in [
            (
                'window: {days: [mon, mom], from: "22:00", until: "06:00"}',
                "cutover.window.days[1]",
                "mom",
                "'mom' is not a day; write one of mon, tue, wed, thu, fri, sat, sun",
                "a window's days are day names",
            ),
            (
                'window: {days: weekday, from: "22:00", until: "06:00"}',
                "cutover.window.days",
                "days: weekday",
                "or one of weekdays, weekends, daily",
                "a window's days are a list or a shorthand",
            ),
            (
                'window: {days: weekdays, from: "25:00", until: "06:00"}',
                "cutover.window.from",
                "25:00",
                'write hours and minutes from "00:00" to "23:59"',
                "a window opens at a time of day",
            ),
            (
                'window: {days: weekdays, from: 22:00, until: "06:00"}',
                "cutover.window.from",
                "from: 22:00",
                'YAML read an unquoted 22:00 as the number 1320; write the time in quotes: "22:00"',
                "a window's time is quoted",
            ),
            (
                'window: {days: weekdays, from: "22:00", until: "22:00"}',
                "cutover.window.until",
                'until: "22:00"',
                "from and until are both 22:00, which leaves no time to start",
                "a window is not empty",
            ),
            (
                "signoff_valid_for: 0d",
                "cutover.signoff_valid_for",
                "signoff_valid_for: 0d",
                "write a positive duration, e.g. 7d",
                "a sign-off stays valid for some time",
            ),
        ]
    ),
]


@pytest.mark.parametrize("case", REFUSALS)
def test_a_spec_breaking_a_rule_is_refused_naming_file_line_and_field(write_spec: WriteSpec, case: Refusal) -> None:
    path = write_spec((case.old, case.new))
    problem = the_problem(path, case.field)
    line = line_of(path, case.at) + case.lines_below
    assert problem.line == line
    assert str(problem).startswith(f"{path}:{line}: {case.field}")
    assert case.says in str(problem)
    assert "hunter2" not in str(problem)  # a secret written inline is never repeated


def test_yaml_that_does_not_parse_is_refused_with_its_line(write_spec: WriteSpec) -> None:
    path = write_spec(("  trial_run: 7d", "  trial_run: [7d"))
    (problem,) = problems_of(path)
    assert problem.line is not None and problem.line >= line_of(path, "trial_run: [7d")
    assert "YAML does not parse" in problem.message


def test_every_problem_of_a_file_is_reported_at_once(write_spec: WriteSpec) -> None:
    path = write_spec(
        ("classification: non-classified", "classification: classified"),
        ("months: 3", "months: 1"),
        ("duration: 60s", "duration: sixty"),
        ("host: gateway, run: [/srv/app/bin/route, cloud]", "host: nowhere, run: [/srv/app/bin/route, cloud]"),
    )
    fields = {p.field for p in problems_of(path)}
    assert {
        "system.classification",
        "retention.months",
        "test_platform.stress.duration",
        "cutover.steps[3].host",
    } <= fields


def test_specs_are_frozen_and_durations_read_as_ops_write_them() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.test_platform is not None
    assert spec.test_platform.trial_run.days == 7
    assert spec.model_dump(mode="json")["test_platform"]["stress"]["duration"] == "1m"
    with pytest.raises(ValueError, match="frozen"):
        spec.system.id = "other"  # type: ignore[misc]


def test_a_cutover_window_reads_as_written_and_a_sign_off_stays_valid_seven_days_by_default(
    write_spec: WriteSpec,
) -> None:
    plan = load_spec(EXAMPLE).cutover
    assert plan is not None and plan.window is None and plan.signoff_valid_for == timedelta(days=7)
    path = write_spec(
        (GATE, f'{GATE}  window: {{days: weekdays, from: "22:00", until: "6:00"}}\n  signoff_valid_for: 3d\n')
    )
    plan = load_spec(path).cutover
    assert plan is not None and plan.window is not None and plan.window.overnight
    assert plan.model_dump(mode="json", by_alias=True)["window"] == {
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "from": "22:00",
        "until": "06:00",
    }
    assert plan.model_dump(mode="json")["signoff_valid_for"] == "3d"


def test_the_spec_digest_changes_when_the_spec_changes(write_spec: WriteSpec) -> None:
    before = load_spec(EXAMPLE).digest()
    after = load_spec(write_spec(("p95_ms: 800", "p95_ms: 900"))).digest()
    assert before.startswith("sm3:") and before != after
    assert load_spec(EXAMPLE).digest("sha256").startswith("sha256:")


def test_the_spec_reference_in_docs_is_current() -> None:
    from cutover.schema_doc import spec_reference

    written = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert written == spec_reference(), "docs/spec-reference.md is stale: run `make schema`"
    assert "## SshStep" in written and "| `covered_by` |" in written


def test_a_data_section_declares_replication_both_ways_and_leaves_the_digest_of_specs_without_it(
    write_spec: WriteSpec,
) -> None:
    plain = load_spec(EXAMPLE)
    assert plain.data is None
    assert "data" not in plain.model_dump(mode="json", exclude_none=True)
    spec = load_spec(write_spec(("\nretention:\n", with_data())))
    assert spec.data is not None and spec.data.replication == "postgresql-logical"
    assert (spec.data.original, spec.data.cloud) == (SecretRef(secret="legacy-db"), SecretRef(secret="cloud-db"))
    assert spec.data.tables == ["public.insured", "public.payments"]
    assert spec.digest() != plain.digest()


#: The example's digest before test_platform.prepare and inline database URLs existed (signatures bind to it).
EXAMPLE_DIGEST = "sm3:33380a73a337d445d1ab81998583b85da24aa101fe570a3b0a667bf38f17800b"


def test_a_database_url_without_a_password_may_be_written_inline(write_spec: WriteSpec) -> None:
    path = write_spec(
        (
            "source: {secret: cloud-db}, target: {secret: legacy-db}",
            "source: 'postgresql+psycopg://app@127.0.0.12/app', target: 'sqlite:////srv/app/app.db'",
        ),
        (
            "\nretention:\n",
            with_data(
                "original: {secret: legacy-db}", "verify: in-window\n  original: 'postgresql://repl@127.0.0.11/app'"
            ),
        ),
    )
    spec = load_spec(path)
    assert spec.rollback is not None and spec.data is not None
    verify = next(s for s in spec.rollback.steps if isinstance(s, DataVerifyStep))
    assert (verify.source, verify.target) == ("postgresql+psycopg://app@127.0.0.12/app", "sqlite:////srv/app/app.db")
    assert spec.data.original == "postgresql://repl@127.0.0.11/app"
    assert "postgresql://repl@127.0.0.11/app" not in spec.secret_names()


def test_test_platform_preparation_runs_ssh_steps_and_a_spec_without_it_digests_as_before(
    write_spec: WriteSpec,
) -> None:
    assert load_spec(EXAMPLE).digest() == EXAMPLE_DIGEST
    prepare = (
        "  prepare:\n"
        "    - {kind: ssh, id: copy-data, name: 复制数据 copy data, host: cloud_test, run: [/srv/app/bin/pull-from, legacy]}\n"
        "    - {kind: ssh, id: start-app, name: 启动应用 start the app, host: cloud_test, run: [/srv/app/bin/appctl, start]}\n"
        "  internal_tests:\n"
    )
    spec = load_spec(write_spec(("  internal_tests:\n", prepare)))
    assert spec.test_platform is not None
    assert [s.id for s in spec.test_platform.prepare] == ["copy-data", "start-app"]
    assert [s.id for s in spec.all_steps()][:2] == ["copy-data", "start-app"]
    assert spec.digest() != EXAMPLE_DIGEST


def test_a_duration_without_a_unit_is_refused_with_the_way_to_write_it(write_spec: WriteSpec) -> None:
    path = write_spec((GATE, "  health_gate: {passes: 3, interval: 5, within: 2m}\n"))

    problem = the_problem(path, "cutover.health_gate.interval")

    assert "write a number with a unit: 5s, 5m" in problem.message


def test_with_replication_a_cutover_without_a_freeze_before_the_final_sync_is_refused_naming_the_step_order(
    write_spec: WriteSpec,
) -> None:
    freeze = (
        "    - {kind: ssh, id: freeze, name: 冻结写入 freeze writes, host: legacy, run: [/srv/app/bin/appctl, freeze], "
        "undo: [/srv/app/bin/appctl, unfreeze]}\n"
    )
    on_snapshots = the_problem(write_spec((freeze, ""), ("\nretention:\n", with_data())), "cutover.steps[2]")
    in_window = the_problem(
        write_spec((freeze, ""), ("\nretention:\n", with_data("tables:", "verify: in-window\n  tables:"))),
        "cutover.steps[1]",
    )

    assert "final sync (the cloud copy catching up) runs right before step 'switch-traffic'" in str(on_snapshots)
    assert "freeze -> catch-up (snapshots taken) -> switch -> verification on the snapshots" in str(on_snapshots)
    assert "final sync (the cloud copy catching up) runs right before step 'verify-rows'" in str(in_window)
    assert "freeze -> catch-up -> verification -> switch -> turn-around" in str(in_window)
    assert "freezes writes on the original" in str(on_snapshots)
    spec = load_spec(write_spec(("\nretention:\n", with_data())))  # with the freeze: accepted
    assert spec.data is not None and spec.data.verify is DataVerify.ON_SNAPSHOTS


def test_verification_on_snapshots_must_compare_the_original_with_the_cloud_copy(write_spec: WriteSpec) -> None:
    swapped = (
        "source: {secret: legacy-db}, target: {secret: cloud-db}",
        "source: {secret: cloud-db}, target: {secret: legacy-db}",
    )
    path = write_spec(swapped, ("\nretention:\n", with_data()))

    problem = the_problem(path, "cutover.steps[2]")

    assert "step 'verify-rows' runs after the switch on the snapshots" in str(problem)
    assert "or write data.verify: in-window" in str(problem)
    in_window = load_spec(write_spec(swapped, ("\nretention:\n", with_data("tables:", "verify: in-window\n  tables:"))))
    assert in_window.data is not None and in_window.data.verify is DataVerify.IN_WINDOW


def test_a_replicated_spec_at_the_default_verification_digests_as_before_the_field_existed(
    write_spec: WriteSpec,
) -> None:
    default = load_spec(write_spec(("\nretention:\n", with_data())))
    spelled = load_spec(write_spec(("\nretention:\n", with_data("tables:", "verify: on-snapshots\n  tables:"))))
    in_window = load_spec(write_spec(("\nretention:\n", with_data("tables:", "verify: in-window\n  tables:"))))

    assert default.digest() == spelled.digest() != in_window.digest()


def test_with_replication_a_rollback_that_does_not_freeze_the_cloud_copy_before_the_catch_up_is_refused(
    write_spec: WriteSpec,
) -> None:
    freeze_cloud = (
        "    - {kind: ssh, id: freeze-cloud, name: 冻结云上写入 freeze the cloud copy, host: cloud, "
        "run: [/srv/app/bin/appctl, freeze]}\n"
    )
    path = write_spec((freeze_cloud, ""), ("\nretention:\n", with_data()))

    problem = the_problem(path, "rollback.steps")

    assert "waits for the original to catch up with the cloud copy before step 'verify-reverse'" in str(problem)
    assert "cutover step 'freeze''s command on the cloud copy's host" in str(problem)
