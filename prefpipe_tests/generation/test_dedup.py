"""Identical, near-identical and empty responses are found for all pairs at once."""

from __future__ import annotations

from prefpipe.generation.dedup import drop_reasons, similarity


def test_reasons() -> None:
    paris = "Paris is the capital of France. It sits on the Seine, has about two million inhabitants in the city proper, and is known for its museums."
    a = ["The answer is 42.", paris, "Short", "", "Use a for loop over the list."]
    b = ["the  answer is 42.", paris.replace("two million", "2.1 million"), "Completely different text", "x", "Sort it with sorted() instead."]
    reasons = drop_reasons(a, b, threshold=0.9)
    assert reasons[0] == "identical responses"
    assert reasons[1].startswith("near-identical responses (character 5-gram Jaccard")
    assert reasons[2] is None and reasons[3] == "empty response" and reasons[4] is None


def test_similarity_is_symmetric_and_bounded() -> None:
    a, b = ["abc def ghi jkl", "one two"], ["abc def ghi jkm", "three four"]
    forward, backward = similarity(a, b), similarity(b, a)
    assert (forward == backward).all() and ((forward >= 0) & (forward <= 1)).all()
    assert forward[0] > forward[1]
