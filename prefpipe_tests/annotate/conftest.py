"""Fixtures for the annotation app: a fresh store in a temporary data folder (or a fresh
PostgreSQL database, for the modules that run on both backends), small batches, and a live server
on 127.0.0.1 at an ephemeral port."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from prefpipe.annotate.app import create_app
from prefpipe.annotate.gold import GoldPolicy
from prefpipe.annotate.server import ServerThread
from prefpipe.annotate.store import AnnotationStore

RUBRIC = [
    {"name": "helpfulness", "weight": 0.6, "description": "Does what the prompt asks."},
    {"name": "correctness", "weight": 0.4, "description": "Facts and code are right."},
]
VERSION = "v1-test"


def pairs(n: int, prefix: str = "p", route: str = "human", priority: float = 0.0) -> pd.DataFrame:
    """n distinct pairs whose responses say which pair and side they are."""
    return pd.DataFrame(
        {
            "pair_id": [f"{prefix}{i}" for i in range(n)],
            "prompt": [f"Prompt {prefix}{i}" for i in range(n)],
            "response_a": [f"Response {prefix}{i} side a" for i in range(n)],
            "response_b": [f"Response {prefix}{i} side b" for i in range(n)],
            "route": route,
            "priority": priority,
        }
    )


def gold_pairs(n: int, prefix: str = "g", label: str = "A>B") -> pd.DataFrame:
    df = pairs(n, prefix).drop(columns=["route", "priority"])
    df["label"] = label
    return df


def enqueue(store: AnnotationStore, batch: str, tasks: pd.DataFrame, *, per_item: int = 3,
            gold: pd.DataFrame | None = None, version: str = VERSION, gold_scope: str = "batch") -> dict[str, int]:
    return store.enqueue(batch, tasks, per_item=per_item, guideline_version=version, rubric=RUBRIC, gold=gold,
                         gold_scope=gold_scope)


class FakeClock:
    """A clock the test moves by hand, so time on task is exact without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.team)]
"""`backend` params for a module that runs on both stores: override the `backend` fixture with
`@pytest.fixture(params=BACKENDS)`."""


@pytest.fixture
def backend() -> str:
    """The store backend of the test: SQLite, unless the module overrides this fixture."""
    return "sqlite"


@pytest.fixture
def store_at(backend, data_dir, request) -> Callable[..., AnnotationStore]:
    """`store_at(name="annotations", **kwargs)` opens a store on the test's backend: a SQLite file
    under the data folder, or a database of its own on the test PostgreSQL server; the same name
    is the same store."""
    databases: dict[str, str] = {}

    def open_store(name: str = "annotations", **kwargs: Any) -> AnnotationStore:
        if backend == "sqlite":
            return AnnotationStore(data_dir / f"{name}.sqlite3", **kwargs)
        if name not in databases:
            server = request.getfixturevalue("postgres")
            databases[name] = server.url(server.create_database(f"store_{name}_{secrets.token_hex(4)}"))
        return AnnotationStore(databases[name], **kwargs)

    return open_store


@pytest.fixture
def store(store_at, clock) -> Iterator[AnnotationStore]:
    with store_at(gold_policy=GoldPolicy(), clock=clock) as s:
        yield s


def rows(store: AnnotationStore, sql: str, **params: Any) -> list[tuple]:
    """Rows of a query run straight on the store's database (for tests that look inside)."""
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql), params)]


def scalar(store: AnnotationStore, sql: str, **params: Any) -> Any:
    return rows(store, sql, **params)[0][0]


@pytest.fixture
def live(store) -> Iterator[str]:
    """The base URL of a live server over `store`."""
    with ServerThread(create_app(store)) as url:
        yield url


@pytest.fixture
def http(live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live, timeout=10.0) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
