"""The LLM client as a Dagster resource, and Dagster run-config twins of the plain configs.

`LLMResource` has the fields of `LLMSettings`; unset base_url / api_key fall back to
OPENAI_BASE_URL / OPENAI_API_KEY exactly like the openai client. Put secrets in with dg.EnvVar:

    resources={"llm": LLMResource(api_key=dg.EnvVar("OPENAI_API_KEY"), concurrency=32)}

and in an asset: `client = llm.get_client()` then `judge_pairs(..., client)`. Outside Dagster,
`LLMResource(...).get_client()` works the same (or use `LLMClient` directly).

`dagster_config(Model)` turns a plain pydantic config (JudgeConfig, GenerationConfig) into a
`dg.Config` subclass with the same fields, nested models included, so an asset exposes it as run
config without the CLI paying Dagster's import time: `JudgeRunConfig`, `GenerationRunConfig`.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

import dagster as dg
import pydantic

from prefpipe.generation.config import GenerationConfig
from prefpipe.judge.judge import JudgeConfig
from prefpipe.llm.client import LLMClient, LLMSettings


def dagster_config(model: type[pydantic.BaseModel], name: str | None = None) -> type[dg.Config]:
    """A dg.Config subclass with `model`'s fields (list/optional nested models converted too)."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        annotation = _convert(info.annotation)
        if info.default_factory is not None:
            factory = info.default_factory
            spec = pydantic.Field(default_factory=lambda factory=factory: _convert_default(factory()), description=info.description)
        else:
            spec = pydantic.Field(default=_convert_default(info.default), description=info.description)
        fields[field_name] = (annotation, spec)
    return pydantic.create_model(name or f"{model.__name__}Run", __base__=dg.Config, **fields)  # type: ignore[call-overload]


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


class JudgeSetRunConfig(pydantic.BaseModel):
    """Run config of the ai_labels asset: the judges side by side, and Batch API mode."""

    judges: list[JudgeConfig] = pydantic.Field(default_factory=lambda: [JudgeConfig()], description="Judges whose verdicts are kept side by side.")
    batch_api: bool = pydantic.Field(False, description="Submit to the OpenAI Batch API (half price, up to 24 h) instead of calling now.")


JudgeRunConfig = dagster_config(JudgeSetRunConfig, "JudgeRunConfig")
GenerationRunConfig = dagster_config(GenerationConfig, "GenerationRunConfig")


class LLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp) with cache, retries,
    rate limits and a price table. Unset base_url / api_key: $OPENAI_BASE_URL / $OPENAI_API_KEY."""

    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 60.0
    max_attempts: int = 6
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 120.0
    concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_tokens_field: str = "max_tokens"
    cache_path: str | None = None
    use_cache: bool = True
    prices_path: str | None = None

    def settings(self) -> LLMSettings:
        return LLMSettings(**{name: getattr(self, name) for name in LLMSettings.model_fields})

    def get_client(self) -> LLMClient:
        return LLMClient(self.settings())
