"""What a call cost: the editable price table (USD per 1M tokens) and its lookup.

The packaged prices.json holds list prices; `<data dir>/prices.json`, when present, overrides it
model by model, so a team prices its own contract, its Azure deployment or its local vLLM (zero)
without editing the package. A model with no price is reported as unpriced (NaN), never guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prefpipe.core import settings
from prefpipe.errors import PrefpipeError

PACKAGED_PRICES = Path(__file__).with_name("prices.json")
USER_PRICES_FILE = "prices.json"


class PriceTableError(PrefpipeError, ValueError):
    """The price file is malformed; the message names the file and field."""


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float
    batch_input: float
    batch_output: float


@dataclass(frozen=True)
class PriceTable:
    models: dict[str, ModelPrice]
    batch_discount: float
    sources: tuple[str, ...] = ()

    def price_of(self, model: str) -> ModelPrice | None:
        """Exact entry, else the longest entry that `model` extends with '-' (dated versions)."""
        if model in self.models:
            return self.models[model]
        best = max((name for name in self.models if model.startswith(name + "-")), key=len, default=None)
        return None if best is None else self.models[best]

    def cost(self, model: str, prompt_tokens: float, completion_tokens: float, *, batch: bool = False) -> float:
        price = self.price_of(model)
        if price is None:
            return float("nan")
        if batch:
            return (prompt_tokens * price.batch_input + completion_tokens * price.batch_output) / 1e6
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1e6

    def costs(self, models: np.ndarray, prompt_tokens: np.ndarray, completion_tokens: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """Vectorized `cost` over arrays (one lookup per distinct model, not per row)."""
        models = np.asarray(models, dtype=object)
        out = np.full(len(models), np.nan)
        p = np.asarray(prompt_tokens, dtype="float64")
        c = np.asarray(completion_tokens, dtype="float64")
        b = np.asarray(batch, dtype=bool)
        for model in set(models.tolist()):
            price = self.price_of(str(model))
            if price is None:
                continue
            rows = models == model
            in_rate = np.where(b[rows], price.batch_input, price.input)
            out_rate = np.where(b[rows], price.batch_output, price.output)
            out[rows] = (p[rows] * in_rate + c[rows] * out_rate) / 1e6
        return out


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The packaged table overlaid with `path` (default: <data dir>/prices.json if it exists)."""
    files = [PACKAGED_PRICES]
    user = Path(path) if path is not None else settings.data_dir() / USER_PRICES_FILE
    if path is not None and not user.is_file():
        raise PriceTableError(f"{user}: price file not found")
    if user.is_file():
        files.append(user)
    discount = 0.5
    raw_models: dict[str, dict[str, Any]] = {}
    for file in files:
        data = _read(file)
        if "batch_discount" in data:
            discount = _number(data["batch_discount"], file, "batch_discount")
        models = data.get("models", {})
        if not isinstance(models, dict):
            raise PriceTableError(f"{file}: field 'models' must be an object of model -> prices")
        for name, entry in models.items():
            if not isinstance(entry, dict):
                raise PriceTableError(f"{file}: field 'models.{name}' must be an object with input and output")
            raw_models[name] = {**entry, "_file": str(file)}
    table = {}
    for name, entry in raw_models.items():
        file = Path(entry["_file"])
        inp = _number(entry.get("input"), file, f"models.{name}.input")
        out = _number(entry.get("output"), file, f"models.{name}.output")
        b_in = _number(entry["batch_input"], file, f"models.{name}.batch_input") if "batch_input" in entry else inp * discount
        b_out = _number(entry["batch_output"], file, f"models.{name}.batch_output") if "batch_output" in entry else out * discount
        table[name] = ModelPrice(inp, out, b_in, b_out)
    return PriceTable(models=table, batch_discount=discount, sources=tuple(str(f) for f in files))


def _read(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"{file}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise PriceTableError(f"{file}: must hold a JSON object")
    return data


def _number(value: Any, file: Path, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PriceTableError(f"{file}: field '{field}' must be a non-negative number of USD per 1M tokens, got {value!r}")
    return float(value)
