"""Build valid cutover specs for the test estate, with unique system ids (tests share servers)."""

from __future__ import annotations

import uuid
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from cutover.spec import Spec


def unique_id(prefix: str = "sys") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def base_spec(system_id: str | None = None) -> dict[str, Any]:
    """The smallest valid 'migrate' spec, with placeholder host and steps."""
    return {
        "system": {
            "id": system_id or unique_id(),
            "name": "测试系统",
            "department": "省测试厅",
            "classification": "non-classified",
            "disposition": "migrate",
            "hosting": {"current": "own-machine-room"},
            "network": {"from": "business-private", "to": "e-gov-extranet"},
            "planned_date": "2027-01-01",
        },
        "parties": {
            "department": {"approvers": [{"id": "wang.li", "name": "王丽"}]},
            "cloud_provider": {"name": "政务云服务商", "approvers": [{"id": "zhao.min", "name": "赵敏"}]},
        },
        "hosts": {},
        "secrets": {},
        "test_platform": {
            "base_url": "http://127.0.0.12:8000",
            "stress": {
                "users": 2,
                "spawn_rate": 2,
                "duration": "2s",
                "thresholds": {"p95_ms": 1000, "failure_ratio": 0.01, "min_rps": 1},
            },
        },
        "cutover": {
            "steps": [{"kind": "http_check", "id": "noop", "name": "noop", "url": "http://127.0.0.1:9/"}],
            "health": [{"kind": "http_check", "id": "health", "name": "health", "url": "http://127.0.0.1:9/"}],
        },
        "rollback": {
            "steps": [{"kind": "http_check", "id": "noop-back", "name": "noop", "url": "http://127.0.0.1:9/"}]
        },
    }


def spec_for(estate: Any, *, system_id: str | None = None, **sections: Any) -> Spec:
    """A spec whose hosts are the estate's (pinned keys, client key file); ``sections`` replace parts."""
    data = base_spec(system_id)
    data["hosts"] = {name: host.spec_entry() for name, host in estate.hosts.items()}
    for key, value in sections.items():
        data[key] = deepcopy(value)
    return Spec.model_validate(data)


def write_spec(spec: Spec, directory: Path) -> Path:
    """Write ``spec`` as YAML into ``directory`` (for flows that read the specs directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{spec.system.id}.yaml"
    path.write_text(
        yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True), allow_unicode=True),
        encoding="utf-8",
    )
    return path
