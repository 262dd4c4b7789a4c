"""How pairs are made: the strategy and its parameters (asset run config; stored with each pair)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["existing", "two_models", "two_temperatures", "best_of_n", "rejection_sampling"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)

_PARAMS: dict[str, tuple[str, ...]] = {
    "existing": ("similarity_threshold",),
    "two_models": ("model", "model_b", "temperature", "max_tokens", "system_prompt", "similarity_threshold", "seed"),
    "two_temperatures": ("model", "low_temperature", "high_temperature", "max_tokens", "system_prompt", "similarity_threshold", "seed"),
    "best_of_n": ("model", "n", "sample_temperature", "max_tokens", "system_prompt", "scorer", "similarity_threshold", "seed"),
    "rejection_sampling": ("model", "n", "sample_temperature", "threshold", "max_tokens", "system_prompt", "scorer", "similarity_threshold", "seed"),
}


class GenerationConfig(BaseModel):
    """Plain fields, so an asset can expose it as run config (see llm.resource.GenerationRunConfig)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field("existing", description="existing | two_models | two_temperatures | best_of_n | rejection_sampling")
    model: str = Field("gpt-4o-mini", description="The sampling model (model A of two_models).")
    model_b: str | None = Field(None, description="The second model of two_models.")
    temperature: float = Field(0.7, description="two_models: sampling temperature of both models.")
    low_temperature: float = Field(0.3, description="two_temperatures: the careful sample.")
    high_temperature: float = Field(1.0, description="two_temperatures: the adventurous sample.")
    n: int = Field(8, description="best_of_n / rejection_sampling: samples per prompt.")
    sample_temperature: float = Field(0.8, description="best_of_n / rejection_sampling: sampling temperature.")
    threshold: float = Field(0.5, description="rejection_sampling: a sample passes when its score >= threshold (the judge scorer scores in [0, 1]).")
    max_tokens: int = Field(1024, description="Longest response.")
    system_prompt: str | None = Field(None, description="Optional system message for the responding model.")
    scorer: str = Field("judge", description="best_of_n / rejection_sampling: 'judge' (the pointwise LLM judge) or the name of the scorer passed in.")
    scorer_model: str | None = Field(None, description="Model of the judge scorer (default: model).")
    scorer_template: str = Field("score_v1", description="Template of the judge scorer.")
    similarity_threshold: float = Field(0.9, description="Pairs whose responses' character 5-gram Jaccard similarity reaches this are dropped as near-identical.")
    seed: int = Field(0, description="Seed of the A/B randomization (not used by existing, which keeps the file's order).")
    drop_degenerate: bool | None = Field(
        None,
        description="Drop pairs with an empty or near-identical response. Default: drop pairs a strategy generated, keep (and flag) "
        "pairs of existing completions, whose labels may already exist: an empty answer beside a good one is a real preference.",
    )

    def drops_degenerate(self) -> bool:
        return self.drop_degenerate if self.drop_degenerate is not None else self.strategy != "existing"

    @model_validator(mode="after")
    def _check(self) -> "GenerationConfig":
        if self.strategy == "two_models" and not self.model_b:
            raise ValueError("strategy two_models needs model_b (the second model)")
        if self.strategy in ("best_of_n", "rejection_sampling") and self.n < 2:
            raise ValueError(f"strategy {self.strategy} needs n >= 2 samples, got {self.n}")
        if not 0 < self.similarity_threshold <= 1:
            raise ValueError(f"similarity_threshold must be in (0, 1], got {self.similarity_threshold}")
        return self

    def params(self) -> dict[str, Any]:
        """The parameters that matter for this strategy: stored with every pair."""
        out = {name: getattr(self, name) for name in _PARAMS[self.strategy]}
        if out.get("scorer") == "judge":
            out["scorer_model"] = self.scorer_model or self.model
            out["scorer_template"] = self.scorer_template
        return {k: v for k, v in out.items() if v is not None}
