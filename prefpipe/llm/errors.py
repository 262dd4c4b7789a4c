"""The LLM layer's user-fixable errors, apart from the modules raising them so that the cache
and the client share them without importing each other. Both are ValueErrors as well as
PrefpipeErrors: the command line prints them as a message, Dagster fails the step with it."""

from __future__ import annotations

from pathlib import Path

from prefpipe.errors import PrefpipeError


class LLMConfigError(PrefpipeError, ValueError):
    """The client cannot be set up (no key for OpenAI, bad settings, an unusable cache file)."""


class LLMCacheError(LLMConfigError):
    """The answer cache file cannot be used: corrupt, locked past the busy timeout, or unreadable.
    The message names the file and what to do; the file itself is never deleted or rewritten."""

    def __init__(self, path: Path, problem: str, advice: str):
        super().__init__(f"the answer cache {path} {problem}. {advice}")
        self.path = path


def corrupt_cache(path: Path, detail: str) -> LLMCacheError:
    return LLMCacheError(
        path,
        f"is corrupt ({detail})",
        f"Move it aside (with its -wal and -shm files, if any), e.g. `mv {path} {path}.corrupt`, and run again: "
        "a new cache is started and the answers it held are bought again. Nothing was deleted.",
    )


def locked_cache(path: Path, waited_s: float) -> LLMCacheError:
    return LLMCacheError(
        path,
        f"is locked by another process (waited {waited_s:g} s, cache_busy_timeout_s)",
        "Let the other run finish, or give this run its own cache_path.",
    )


def unusable_cache(path: Path, detail: str) -> LLMCacheError:
    return LLMCacheError(path, f"cannot be used ({detail})", "Check the file's permissions and the free disk space, or give this run another cache_path.")
