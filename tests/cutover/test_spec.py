"""Cutover specs: strict models, every refusal naming file, line and field, all at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cutover.cli import schema_text
from cutover.errors import SpecError, SpecProblem
from cutover.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "cutover_specs" / "hrss-social-insurance.yaml"
WriteSpec = Callable[..., Path]


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


def test_a_classified_system_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("classification: non-classified", "classification: classified"))
    problem = the_problem(path, "system.classification")
    assert problem.line == line_of(path, "classification: classified")
    assert "涉密" in problem.message


def test_retention_under_three_months_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("months: 3", "months: 2"))
    problem = the_problem(path, "retention.months")
    assert problem.line == line_of(path, "months: 2")
    assert (
        str(problem)
        == f"{path}:{problem.line}: retention.months is 2; the notice requires at least 3 (原系统至少保留3个月以上)"
    )


def test_a_party_without_approvers_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("approvers: [{id: zhao.min, name: 赵敏}]", "approvers: []"))
    problem = the_problem(path, "parties.cloud_provider.approvers")
    assert problem.line == line_of(path, "approvers: []")
    assert "no approvers" in problem.message


def test_one_person_cannot_approve_for_both_parties(write_spec: WriteSpec) -> None:
    path = write_spec(("{id: zhao.min, name: 赵敏}", "{id: wang.li, name: 王丽}"))
    problem = the_problem(path, "parties.cloud_provider.approvers[0].id")
    assert problem.line == line_of(path, "name: 政务云服务商") + 1
    assert "both parties" in problem.message


def test_a_state_changing_step_needs_an_undo_or_a_covering_rollback_step(write_spec: WriteSpec) -> None:
    path = write_spec((", undo: [/srv/app/bin/appctl, unfreeze]", ""))
    problem = the_problem(path, "cutover.steps[0].undo")
    assert problem.line == line_of(path, "id: freeze")
    assert "irreversible: true with covered_by" in problem.message


def test_an_irreversible_step_must_name_an_existing_rollback_step(write_spec: WriteSpec) -> None:
    path = write_spec(("covered_by: reverse-sync", "covered_by: reverse-synk"))
    problem = the_problem(path, "cutover.steps[1].covered_by")
    assert problem.line == line_of(path, "reverse-synk")
    assert "unknown rollback step 'reverse-synk'" in problem.message


def test_a_host_without_a_pinned_key_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec((', host_key: "SHA256:Q0f3m0oN7q6b2y8pK8s1kH5vH1rW3dJ2c4x9tZ7uL0a"', ""))
    problem = the_problem(path, "hosts.legacy.host_key")
    assert problem.line == line_of(path, "legacy:     {address")
    assert "no pinned host key" in problem.message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            'url: "http://127.0.0.12:8000/api/stats"',
            'url: "http://ops:hunter2@127.0.0.12:8000/api/stats"',
            "test_platform.internal_tests[1].url",
        ),
        (
            "run: [/srv/app/bin/selftest]",
            "run: [/srv/app/bin/selftest, --password, hunter2]",
            "test_platform.internal_tests[0].run[2]",
        ),
        (
            "run: [/srv/app/bin/selftest]",
            "run: [/srv/app/bin/selftest, --password=hunter2]",
            "test_platform.internal_tests[0].run[1]",
        ),
    ],
)
def test_a_secret_written_inline_is_refused(write_spec: WriteSpec, old: str, new: str, field: str) -> None:
    path = write_spec((old, new))
    problem = the_problem(path, field)
    assert problem.line == line_of(path, "hunter2")
    assert "{secret: <id>}" in problem.message
    assert "hunter2" not in str(problem)


def test_an_inline_password_key_is_refused_as_a_secret(write_spec: WriteSpec) -> None:
    path = write_spec(("legacy-db: {source: env,", "legacy-db: {password: hunter2, source: env,"))
    problem = the_problem(path, "secrets.legacy-db.password")
    assert "secret is written inline" in problem.message


@pytest.mark.parametrize("bad", ['"a\\nb"', '"a\\0b"'])
def test_an_argument_with_a_newline_or_nul_is_refused(write_spec: WriteSpec, bad: str) -> None:
    path = write_spec(("run: [/srv/app/bin/appctl, freeze]", f"run: [/srv/app/bin/appctl, {bad}]"))
    problem = the_problem(path, "cutover.steps[0].run[1]")
    assert problem.line == line_of(path, "id: freeze")
    assert "NUL or a newline" in problem.message


def test_an_operand_that_looks_like_an_option_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("run: [/srv/app/bin/pull-from, legacy]", "run: [/srv/app/bin/pull-from, --, --delete-all]"))
    problem = the_problem(path, "cutover.steps[1].run[2]")
    assert problem.line == line_of(path, "--delete-all")
    assert "operand '--delete-all'" in problem.message


def test_a_program_that_looks_like_an_option_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("run: [/srv/app/bin/route, cloud]", "run: [-rf, cloud]"))
    assert "the program '-rf'" in the_problem(path, "cutover.steps[3].run[0]").message


def test_a_reference_to_an_unknown_host_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec(
        ("host: gateway, run: [/srv/app/bin/route, cloud]", "host: gatway, run: [/srv/app/bin/route, cloud]")
    )
    problem = the_problem(path, "cutover.steps[3].host")
    assert problem.line == line_of(path, "host: gatway")
    assert "unknown host 'gatway'" in problem.message


def test_a_reference_to_an_unknown_secret_is_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("target: {secret: cloud-db}, tables", "target: {secret: cluod-db}, tables"))
    problem = the_problem(path, "cutover.steps[2].target.secret")
    assert problem.line == line_of(path, "cluod-db")
    assert "unknown secret 'cluod-db'" in problem.message


def test_duplicate_step_ids_are_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("id: route-back", "id: reverse-sync"))
    problem = the_problem(path, "rollback.steps[2].id")
    assert problem.line == line_of(path, "name: 流量回切")
    assert "duplicate id 'reverse-sync'" in problem.message


def test_duplicate_yaml_keys_are_refused(write_spec: WriteSpec) -> None:
    path = write_spec(("  months: 3\n", "  months: 3\n  months: 4\n"))
    problem = the_problem(path, "retention.months")
    assert problem.line == line_of(path, "months: 4")
    assert "duplicate key" in problem.message


def test_an_unknown_key_is_refused_as_a_typo(write_spec: WriteSpec) -> None:
    path = write_spec(("  trial_run: 7d", "  trial_runn: 7d"))
    problem = the_problem(path, "test_platform.trial_runn")
    assert problem.line == line_of(path, "trial_runn")
    assert "unknown key" in problem.message


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


def test_the_spec_digest_changes_when_the_spec_changes(write_spec: WriteSpec) -> None:
    before = load_spec(EXAMPLE).digest()
    after = load_spec(write_spec(("p95_ms: 800", "p95_ms: 900"))).digest()
    assert before.startswith("sm3:") and before != after
    assert load_spec(EXAMPLE).digest("sha256").startswith("sha256:")


def test_the_spec_reference_in_docs_is_current() -> None:
    from cutover._schema_doc import spec_reference

    written = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert written == spec_reference(), "docs/spec-reference.md is stale: run `make schema`"
    assert "## SshStep" in written and "| `covered_by` |" in written
