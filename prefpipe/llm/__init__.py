"""The LLM layer: one OpenAI-compatible client for every stage that calls a model.

`client.LLMClient` (async core, sync facade) adds bounded concurrency, rate limits, retries, a
persistent answer cache and priced usage records to the `openai` client; prefpipe.defs.resources.LLMResource
is the same thing as a Dagster resource. Nothing here is imported at package import time, so the
command line starts fast.
"""
