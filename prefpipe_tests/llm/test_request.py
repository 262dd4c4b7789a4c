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


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"choices": []}', "'choices' is empty: the server returned no answer"),
        ('{"error": {"message": "overloaded"}}', 'no \'choices\' in the answer (it carries an error: {"message": "overloaded"})'),
        ('{"choices": [{"message": {"content": null}, "finish_reason": "content_filter"}]}', "message.content is null and there is no tool call (finish_reason 'content_filter')"),
        ('{"choices": [{"message": {"content": null, "tool_calls": [{"id": "t"}]}}]}', "message.content is null: the model called a tool instead of answering"),
        ('{"choices": [{"message": {"content": null, "refusal": "I cannot help"}}]}', "message.content is null: the model refused (I cannot help)"),
        ("[1, 2]", "not a chat completion (TypeError: the body is a JSON list, not an object)"),
    ],
)
def test_a_body_without_an_answer_says_why(body: str | bytes, reason: str) -> None:
    with pytest.raises(MalformedResponse) as refused:
        parse_chat_completion(body, ChatRequest.chat("m", [("user", "x")]))
    assert str(refused.value).startswith(reason)
