"""Training, validation and test problems disjoint by text (``spgg_jax.tasks.splits``)."""

import json

import pytest

from spgg_jax.tasks import load_problems
from spgg_jax.tasks.splits import format_summary, load_splits

#: one-digit + and - with two terms: a problem space of a few hundred texts, so a 64-draw training
#: pool already covers a good part of it and the held-out splits must drop candidates
SMALL = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "allow_parentheses": False,
         "allow_negation": False, "operators": ["+", "-"]}


def _texts(problems):
    return [p.prompt for p in problems]


def test_generated_splits_are_disjoint_by_text_and_count_what_they_drop():
    s = load_splits("basic_arithmetic", train_size=64, val_size=12, test_size=20, seed=3, options=SMALL)
    train, val, test = set(_texts(s.train)), _texts(s.val), _texts(s.test)
    assert (len(s.train), len(val), len(test)) == (64, 12, 20)
    assert not train & set(val) and not train & set(test) and not set(val) & set(test)
    assert len(set(val)) == len(val) and len(set(test)) == len(test)  # no text twice in a held-out split
    # the training pool is the same draws as before splits existed (training is unchanged)
    assert _texts(s.train) == _texts(load_problems("basic_arithmetic", "train", seed=3, generate=64, **SMALL))
    summ = s.summary
    assert summ["sizes"] == {"train": 64, "val": 12, "test": 20} and summ["generated"] is True
    for split, size in (("val", 12), ("test", 20)):
        # every candidate examined was either kept or dropped for a reason
        assert summ["candidates"][split] == size + sum(summ["dropped"][split].values())
    assert summ["dropped"]["val"]["in_train"] > 0  # this space is small enough that drops happen
    assert set(summ["dropped"]["test"]) == {"in_train", "in_val", "repeat"}
    # the kept candidates are the first unseen ones of the split's own draws, in order
    cands = load_problems("basic_arithmetic", "val", seed=3, generate=summ["candidates"]["val"], **SMALL)
    kept, seen = [], set()
    for p in cands:
        if p.prompt not in train and p.prompt not in seen:
            seen.add(p.prompt)
            kept.append(p.prompt)
    assert kept == val
    line = format_summary(summ)
    assert line.startswith("splits: train 64") and "in train" in line


def test_splits_are_deterministic_and_empty_when_asked():
    a = load_splits("basic_arithmetic", train_size=16, val_size=4, test_size=4, seed=1, options=SMALL)
    b = load_splits("basic_arithmetic", train_size=16, val_size=4, test_size=4, seed=1, options=SMALL)
    assert [_texts(x) for x in (a.train, a.val, a.test)] == [_texts(x) for x in (b.train, b.val, b.test)]
    none = load_splits("basic_arithmetic", train_size=16, val_size=0, test_size=0, seed=1, options=SMALL)
    assert none.val == [] and none.test == [] and none.summary["dropped"] == {}


def test_a_problem_space_too_small_is_an_error_naming_the_task_options():
    tiny = {**SMALL, "operators": ["+"]}  # one-digit sums: about a hundred texts
    with pytest.raises(ValueError, match=r"task 'basic_arithmetic' with task_options .*max_digits=1.*only \d+ of the "
                                         r"32 val problems.*too small for train_size=512, val_size=32, eval_size=64"):
        load_splits("basic_arithmetic", train_size=512, val_size=32, test_size=64, options=tiny)
    with pytest.raises(ValueError, match="val_size must be an integer >= 0"):
        load_splits("basic_arithmetic", train_size=4, val_size=-1, test_size=0)


def _rows(path, questions):
    path.write_text("".join(json.dumps({"question": q, "answer": f"#### {i}"}) + "\n" for i, q in enumerate(questions)))


def test_file_tasks_carve_validation_from_train_and_drop_shared_test_texts(tmp_path):
    d = tmp_path / "gsm8k"
    d.mkdir()
    _rows(d / "train.jsonl", ["q1", "q2", "q3", "q2", "q4", "q5"])
    _rows(d / "test.jsonl", ["t1", "q3", "t2", "t1", "q5", "t3"])
    s = load_splits("gsm8k", train_size=1, val_size=2, test_size=10, seed=0, options={"path": str(d)})
    train, val, test = set(_texts(s.train)), _texts(s.val), _texts(s.test)
    assert len(val) == 2 and not train & set(val)
    assert sorted(test) == ["t1", "t2", "t3"]  # q3 and q5 are in train or val; t1 once
    dropped = s.summary["dropped"]["test"]
    assert dropped["in_train"] + dropped["in_val"] == 2 and dropped["repeat"] == 1
    assert len(s.train) + len(val) + s.summary["dropped"]["train"]["in_val"] == 6
    with pytest.raises(ValueError, match="val_size=6 leaves none for training"):
        load_splits("gsm8k", train_size=1, val_size=6, test_size=0, options={"path": str(d)})
