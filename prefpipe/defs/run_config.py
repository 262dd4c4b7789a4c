"""Run config twins of the plain pydantic configs.

`dagster_config(Model)` turns a plain pydantic config (JudgeConfig, GenerationConfig) into a
`dg.Config` subclass with the same fields, nested models included, so an asset exposes it as run
config while the pure functions and the CLI keep the plain model (and never pay Dagster's import
time); `from_run_config` turns the twin back into the plain model.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

import dagster as dg
import pydantic


def dagster_config(model: type[pydantic.BaseModel], name: str | None = None, *, base: type = dg.Config) -> type:
    """A subclass of `base` (dg.Config, or dg.ConfigurableResource for a resource) with `model`'s
    fields and descriptions (list/optional nested models converted too)."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        annotation = _convert(info.annotation)
        if info.default_factory is not None:
            factory = info.default_factory
            spec = pydantic.Field(default_factory=lambda factory=factory: _convert_default(factory()), description=info.description)
        else:
            spec = pydantic.Field(default=_convert_default(info.default), description=info.description)
        fields[field_name] = (annotation, spec)
    return pydantic.create_model(name or f"{model.__name__}Run", __base__=base, **fields)  # type: ignore[call-overload]


_CONVERTED: dict[type, type] = {}


def _convert(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) and not issubclass(annotation, dg.Config):
        if annotation not in _CONVERTED:
            _CONVERTED[annotation] = dagster_config(annotation, f"{annotation.__name__}Run")
        return _CONVERTED[annotation]
    origin = get_origin(annotation)
    if origin is list:
        return list[_convert(get_args(annotation)[0])]  # type: ignore[misc]
    return annotation


def _convert_default(default: Any) -> Any:
    if isinstance(default, pydantic.BaseModel):
        return _convert(type(default))(**default.model_dump())
    if isinstance(default, list):
        return [_convert_default(d) for d in default]
    return default


def from_run_config(config: pydantic.BaseModel, model: type[pydantic.BaseModel]) -> Any:
    """The plain config from its dg.Config twin (what the pure functions take)."""
    return model.model_validate(config.model_dump())
