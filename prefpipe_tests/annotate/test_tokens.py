"""Tokens are random and stored only as a hash; task ids are opaque."""

from __future__ import annotations

from prefpipe.annotate.tokens import hash_token, new_task_id, new_token


def test_tokens_are_fresh_and_hashed():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(t.startswith("pp_") for t in tokens)
    token = next(iter(tokens))
    assert hash_token(token) == hash_token(token) != hash_token(token + "x")
    assert token not in hash_token(token)


def test_task_ids_are_uniform_opaque_strings():
    ids = [new_task_id() for _ in range(100)]
    assert len(set(ids)) == 100 and {len(i) for i in ids} == {22}
