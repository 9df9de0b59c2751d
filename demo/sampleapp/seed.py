"""Create and fill the sample application's tables, deterministically.

The same ``--rows`` and ``--seed`` always give byte-for-byte the same rows, so two databases
seeded alike verify as equal. Run::

    python -m demo.sampleapp.seed --db sqlite:////tmp/app.db --rows 1000
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from demo.sampleapp.db import (
    TABLES,
    insured,
    make_engine,
    metadata,
    payments,
    reset_sequences,
    row_counts,
)

DEFAULT_SEED = 20240601
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌宇浩"
_CITIES = ("济南", "青岛", "淄博", "枣庄", "东营", "烟台", "潍坊", "济宁", "泰安", "威海", "日照", "临沂")
_EPOCH = datetime(2024, 1, 1)


def insured_rows(rng: random.Random, rows: int) -> list[dict[str, Any]]:
    """Return ``rows`` insured persons with Chinese names, a city and a balance in fen."""
    return [
        {
            "id": i,
            "name": rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2))),
            "city": rng.choice(_CITIES),
            "balance": rng.randint(0, 5_000_000),
        }
        for i in range(1, rows + 1)
    ]


def payment_rows(rng: random.Random, rows: int) -> list[dict[str, Any]]:
    """Return ``rows`` payments spread over the insured and over the first half of 2024."""
    return [
        {
            "id": i,
            "insured_id": rng.randint(1, rows),
            "amount": rng.randint(100, 200_000),
            "paid_at": _EPOCH + timedelta(seconds=rng.randint(0, 180 * 86_400)),
        }
        for i in range(1, rows + 1)
    ]


def seed(db_url: str, rows: int, *, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Drop and recreate the tables at ``db_url``, fill them, and return the row counts."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    rng = random.Random(seed)
    engine = make_engine(db_url)
    try:
        metadata.drop_all(engine, tables=list(TABLES))
        metadata.create_all(engine, tables=list(TABLES))
        with engine.begin() as conn:
            conn.execute(insured.insert(), insured_rows(rng, rows))
            conn.execute(payments.insert(), payment_rows(rng, rows))
            reset_sequences(conn)
        return row_counts(engine)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--db URL --rows N [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m demo.sampleapp.seed", description=__doc__)
    parser.add_argument("--db", required=True, help="SQLAlchemy database URL")
    parser.add_argument("--rows", type=int, default=1000, help="insured persons (and payments)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    counts = seed(args.db, args.rows, seed=args.seed)
    print(" ".join(f"{table}={count}" for table, count in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
