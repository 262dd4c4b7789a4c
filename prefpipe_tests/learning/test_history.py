import pandas as pd

from prefpipe.learning.history import reward_model_from_history, training_frames


def frames(n: int, batch: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"p{i}:0" for i in range(n)]
    pairs = pd.DataFrame({
        "batch_id": batch, "pair_id": ids, "prompt": [f"question {i}" for i in range(n)],
        "response_a": [f"a thorough, correct and helpful answer number {i}" for i in range(n)],
        "response_b": [f"no idea {i}" for i in range(n)],
    })
    labels = pd.DataFrame({"batch_id": batch, "pair_id": ids, "label": ["A>B" if i % 10 else "A=B" for i in range(n)]})
    return pairs, labels


def test_training_frames_skip_the_batch_itself_and_ties_and_keep_ids_apart():
    p1, l1 = frames(30, "b1")
    p2, l2 = frames(30, "b2")
    pairs, labels = training_frames(pd.concat([p1, p2]), pd.concat([l1, l2]), exclude_batch="b2")
    assert len(labels) == 27 and labels["pair_id"].str.startswith("b1/").all()  # 3 ties carry no direction
    pairs, labels = training_frames(pd.concat([p1, p2]), pd.concat([l1, l2]), exclude_batch=None)
    assert labels["pair_id"].is_unique and len(labels) == 54


def test_no_model_without_enough_labels_and_a_model_that_ranks_with_them():
    p, l = frames(100, "old")
    assert reward_model_from_history(p, l, exclude_batch="new", min_labels=200) is None
    model = reward_model_from_history(p, l, exclude_batch="new", min_labels=50)
    gap = model.gap(["question 7"], ["a thorough, correct and helpful answer"], ["no idea"])
    assert gap[0] > 0
