"""Fixtures for the annotation app: a fresh store in a temporary data folder, small batches, and a
live server on 127.0.0.1 at an ephemeral port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

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


@pytest.fixture
def store(data_dir, clock) -> Iterator[AnnotationStore]:
    with AnnotationStore(gold_policy=GoldPolicy(), clock=clock) as s:
        yield s


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
