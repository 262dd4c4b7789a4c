"""The price table: packaged prices, a user file overriding them, dated model names, batch rates."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from prefpipe.llm.prices import PriceTableError, load_prices


def test_packaged_prices_and_dated_model_names(data_dir: Path) -> None:
    prices = load_prices()
    assert prices.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.15 + 0.60)
    # a dated snapshot is priced as its family; the longest matching entry wins
    assert prices.cost("gpt-4o-mini-2024-07-18", 2_000_000, 0) == pytest.approx(0.30)
    assert prices.cost("gpt-4o-2024-08-06", 0, 1_000_000) == pytest.approx(10.0)
    assert prices.cost("gpt-4o-mini", 1_000_000, 1_000_000, batch=True) == pytest.approx((0.15 + 0.60) / 2)
    assert math.isnan(prices.cost("llama3.1:8b", 10, 10))


def test_a_user_file_in_the_data_dir_overrides_entries(data_dir: Path) -> None:
    (data_dir / "prices.json").write_text(json.dumps({"batch_discount": 0.4, "models": {"llama3.1:8b": {"input": 0, "output": 0}, "gpt-4o-mini": {"input": 1.0, "output": 2.0, "batch_output": 0.5}}}))
    prices = load_prices()
    assert prices.cost("llama3.1:8b", 5000, 5000) == 0.0
    assert prices.cost("gpt-4o-mini", 1e6, 1e6) == pytest.approx(3.0)
    assert prices.cost("gpt-4o-mini", 1e6, 1e6, batch=True) == pytest.approx(0.4 + 0.5)
    assert prices.cost("gpt-4o", 1e6, 0) == pytest.approx(2.5)  # untouched entries stay
    costs = prices.costs(np.array(["gpt-4o-mini", "unknown", "llama3.1:8b"], dtype=object), np.array([1e6, 1e6, 1e6]), np.array([0, 0, 0]), np.array([False, False, False]))
    assert costs[0] == pytest.approx(1.0) and math.isnan(costs[1]) and costs[2] == 0.0


def test_malformed_price_files_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text('{"models": {"m": {"input": "cheap", "output": 1}}}')
    with pytest.raises(PriceTableError, match=r"prices.json: field 'models.m.input'"):
        load_prices(bad)
    bad.write_text('{"models": ')
    with pytest.raises(PriceTableError, match="line 1: not valid JSON"):
        load_prices(bad)
    with pytest.raises(PriceTableError, match="not found"):
        load_prices(tmp_path / "missing.json")
