"""Cache keys and strict reading of chat-completion bodies."""

from __future__ import annotations

import pytest

from prefpipe.llm.request import ChatRequest, MalformedResponse, parse_chat_completion


def test_key_covers_model_messages_and_sampling_but_not_tags() -> None:
    base = ChatRequest.chat("m", [("user", "hi")], temperature=0.7)
    assert base.key == ChatRequest.chat("m", [("user", "hi")], temperature=0.7, stage="judge", item_id="x").key
    assert base.key != ChatRequest.chat("m2", [("user", "hi")], temperature=0.7).key
    assert base.key != ChatRequest.chat("m", [("user", "hi!")], temperature=0.7).key
    assert base.key != ChatRequest.chat("m", [("user", "hi")], temperature=0.7, max_tokens=5).key
    assert base.key != ChatRequest.chat("m", [("user", "hi")], temperature=0.7, sample_index=1).key
    greedy = ChatRequest.chat("m", [("user", "hi")])
    assert greedy.key == ChatRequest.chat("m", [("user", "hi")], sample_index=3).key


def test_follow_up_keeps_the_conversation() -> None:
    first = ChatRequest.chat("m", [("system", "s"), ("user", "u")], logprobs=True, stage="judge")
    retry = first.with_reply("answer", "again please", stage="judge_retry")
    assert retry.messages[-2:] == (("assistant", "answer"), ("user", "again please"))
    assert retry.logprobs and retry.stage == "judge_retry" and retry.key != first.key


@pytest.mark.parametrize("body", ['{"choices": []}', '{"choices": [{"message": {"content": null}}]}', "not json", '{"id": 1}'])
def test_malformed_bodies_are_refused(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_chat_completion(body, ChatRequest.chat("m", [("user", "x")]))
