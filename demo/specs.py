"""The demo system's cutover spec, rendered for a running estate (its ports and pinned host keys).

The steps call the estate's host programs by name (each host puts its ``bin/`` first on PATH):
freeze the legacy app, pull the data to the cloud copy, verify the rows, switch the gateway.
Rollback makes legacy writable, pulls the data written on the cloud back to it, verifies it, and routes back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from demo.estate import Estate

DEMO_SYSTEM = "hrss-social-insurance"
LEGACY_DB_ENV = "HRSS_LEGACY_DB_URL"
CLOUD_DB_ENV = "HRSS_CLOUD_DB_URL"
TABLES = ["insured", "payments"]


def demo_spec(estate: Estate, *, system_id: str = DEMO_SYSTEM, stress_seconds: int = 5) -> dict[str, Any]:
    """The spec (as plain data) of the demo system on ``estate``."""
    test_url = estate.app_url("cloud_test")
    gateway = estate.gateway_url
    return {
        "system": {
            "id": system_id,
            "name": "社会保险信息系统",
            "department": "省人力资源和社会保障厅",
            "classification": "non-classified",
            "disposition": "migrate",
            "hosting": {"current": "telecom-operator", "operator": "中国电信"},
            "network": {"from": "business-private", "to": "e-gov-extranet"},
            "adaptation": ["database-update", "os-upgrade"],
            "planned_date": "2027-03-15",
        },
        "parties": {
            "department": {"approvers": [{"id": "wang.li", "name": "王丽"}]},
            "cloud_provider": {"name": "政务云服务商", "approvers": [{"id": "zhao.min", "name": "赵敏"}]},
        },
        "hosts": estate.spec_hosts(),
        "secrets": {
            "legacy-db": {"source": "env", "name": LEGACY_DB_ENV, "description": "原系统数据库连接串"},
            "cloud-db": {"source": "env", "name": CLOUD_DB_ENV, "description": "政务云数据库连接串"},
        },
        "test_platform": {
            "base_url": test_url,
            "stress": {
                "users": 20,
                "spawn_rate": 20,
                "duration": f"{stress_seconds}s",
                "endpoints": [
                    {"name": "参保人查询 lookup", "path": "/api/insured/42", "weight": 8},
                    {"name": "健康检查 health", "path": "/healthz", "weight": 1},
                ],
                "thresholds": {"p95_ms": 800, "failure_ratio": 0.01, "min_rps": 40},
            },
            "internal_tests": [
                {
                    "kind": "ssh",
                    "id": "selftest",
                    "name": "自检 selftest",
                    "host": "cloud_test",
                    "run": ["selftest"],
                    "changes_state": False,
                },
                {"kind": "http_check", "id": "stats", "name": "统计接口 stats", "url": f"{test_url}/api/stats"},
            ],
            "health": [
                {"kind": "http_check", "id": "trial-health", "name": "试运行健康检查", "url": f"{test_url}/healthz"}
            ],
            "trial_run": "0s",
            "signoff_deadline": "14d",
        },
        "cutover": {
            "steps": [
                {
                    "kind": "ssh",
                    "id": "freeze",
                    "name": "冻结写入 freeze writes",
                    "host": "legacy",
                    "run": ["appctl", "freeze"],
                    "undo": ["appctl", "unfreeze"],
                },
                {
                    "kind": "ssh",
                    "id": "final-sync",
                    "name": "最终数据同步 final sync",
                    "host": "cloud",
                    "run": ["pull-from", "legacy"],
                    "irreversible": True,
                    "covered_by": "reverse-sync",
                },
                {
                    "kind": "data_verify",
                    "id": "verify-rows",
                    "name": "数据校验 verify rows",
                    "source": {"secret": "legacy-db"},
                    "target": {"secret": "cloud-db"},
                    "tables": TABLES,
                },
                {
                    "kind": "ssh",
                    "id": "switch-traffic",
                    "name": "流量切换 switch traffic",
                    "host": "gateway",
                    "run": ["route", "cloud"],
                    "undo": ["route", "legacy"],
                },
            ],
            "health": [
                {
                    "kind": "http_check",
                    "id": "gateway-health",
                    "name": "网关健康检查",
                    "url": f"{gateway}/healthz",
                    "timeout": "2s",
                }
            ],
            "health_gate": {"passes": 3, "interval": "0.5s", "within": "30s"},
        },
        "retention": {
            "months": 3,
            "watch": {
                "interval": "2s",
                "failures_to_rollback": 3,
                "readiness": [
                    {
                        "kind": "ssh",
                        "id": "legacy-ready",
                        "name": "原系统可接管 original ready",
                        "host": "legacy",
                        "run": ["appctl", "status"],
                        "changes_state": False,
                    },
                ],
            },
        },
        "rollback": {
            "steps": [
                {
                    "kind": "ssh",
                    "id": "unfreeze-legacy",
                    "name": "恢复写入 unfreeze",
                    "host": "legacy",
                    "run": ["appctl", "unfreeze"],
                },
                {
                    "kind": "ssh",
                    "id": "reverse-sync",
                    "name": "反向数据同步 reverse sync",
                    "host": "legacy",
                    "run": ["pull-from", "cloud"],
                },
                {
                    "kind": "data_verify",
                    "id": "verify-reverse",
                    "name": "反向数据校验 verify",
                    "source": {"secret": "cloud-db"},
                    "target": {"secret": "legacy-db"},
                    "tables": TABLES,
                },
                {
                    "kind": "ssh",
                    "id": "route-back",
                    "name": "流量回切 traffic back",
                    "host": "gateway",
                    "run": ["route", "legacy"],
                },
            ],
            "health": [
                {"kind": "http_check", "id": "original-health", "name": "原系统健康检查", "url": f"{gateway}/healthz"}
            ],
        },
    }


def secret_env(estate: Estate) -> dict[str, str]:
    """The environment the flows need to resolve the demo spec's secrets."""
    return {LEGACY_DB_ENV: estate.db_url("legacy"), CLOUD_DB_ENV: estate.db_url("cloud")}


def write_demo_spec(estate: Estate, directory: Path, **options: Any) -> Path:
    """Write the demo spec as YAML into ``directory``; returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    data = demo_spec(estate, **options)
    path = directory / f"{data['system']['id']}.yaml"
    header = "# 社会保险信息系统 — the demo system, rendered for the running demo estate.\n"
    path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
