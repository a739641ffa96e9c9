"""MBPP training rewards cannot be gamed by a lookup table (issue 25): training prompts show one
example assert and grade on the others; the published setting (every graded assert in the prompt)
stays for comparisons with published figures, where a policy that memorises the prompt's asserts
passes everything."""

import ast
import shutil
from pathlib import Path

import pytest

from spgg_jax.tasks import load_task, score
from spgg_jax.train import load_config
from spgg_jax.train.setup import task_problems

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "tasks"


def lookup_table_policy(prompt: str) -> str:
    """A completion that memorises every ``assert f(args) == value`` the prompt shows: a table from
    the arguments to the value, nothing else (for a prompt without asserts, an empty table)."""
    table, name = {}, None
    for line in prompt.splitlines():
        if not line.startswith("assert "):
            continue
        test = ast.parse(line).body[0].test
        name = test.left.func.id
        args = tuple(ast.literal_eval(a) for a in test.left.args)
        table[repr(args)] = ast.literal_eval(test.comparators[0])
    if name is None:
        name = prompt.rsplit("should be named ", 1)[-1].rstrip(".")
    return f"```python\nTABLE = {table!r}\ndef {name}(*args):\n    return TABLE[repr(args)]\n```"


@pytest.fixture
def mbpp_dir(tmp_path):
    d = tmp_path / "mbpp"
    d.mkdir()
    shutil.copy(FIX / "mbpp" / "test.jsonl", d / "train.jsonl")
    shutil.copy(FIX / "mbpp" / "test.jsonl", d / "test.jsonl")
    return d


def test_training_loads_mbpp_with_hidden_asserts(mbpp_dir):
    cfg = load_config(None, ["task=mbpp", f"task_options.path={mbpp_dir}", "eval_size=3"])
    assert cfg.task_options["prompt_tests"] == "one"  # in the effective config (config.json)
    for split in ("train", "test"):  # the training pool and the run's held-out problems
        probs = task_problems(cfg, split)
        assert len(probs) == 3
        for p in probs:
            md = p.metadata
            assert len(md["shown_tests"]) == 1 and md["shown_tests"][0] in p.prompt
            assert md["test_list"] == md["all_tests"][1:]  # graded: the asserts not shown
            assert not any(t in p.prompt for t in md["test_list"]), p.prompt
    # the published setting is asked for explicitly, and the loader's default outside training
    published = load_config(None, ["task=mbpp", f"task_options.path={mbpp_dir}", "task_options.prompt_tests=all"])
    assert all(p.metadata["test_list"] == p.metadata["all_tests"] for p in task_problems(published, "train"))
    assert all(p.metadata["prompt_tests"] == "all" for p in load_task("mbpp", path=FIX / "mbpp"))


def test_a_lookup_table_policy_scores_nothing_on_the_training_setting(mbpp_dir):
    published = load_task("mbpp", path=FIX / "mbpp")
    training = task_problems(load_config(None, ["task=mbpp", f"task_options.path={mbpp_dir}"]), "train")
    assert [p.id for p in training] and sorted(p.id for p in training) == sorted(p.id for p in published)
    for p in published:  # the gaming the issue found: every shown = graded assert passes
        r = score(p, lookup_table_policy(p.prompt))
        assert r.correct and r.score == 1.0, (p.id, r)
    for p in training:
        r = score(p, lookup_table_policy(p.prompt))
        assert r.score == 0.0 and not r.correct, (p.id, r)
        # an honest solution still passes the hidden asserts: the grading is not vacuous
        assert score(p, "```python\n" + p.metadata["code"] + "\n```").correct, p.id


def test_prompt_tests_options(mbpp_dir):
    none = load_task("mbpp", path=FIX / "mbpp", prompt_tests="none")
    assert none[0].prompt.endswith("The function should be named sum_squares.")
    assert none[0].metadata["test_list"] == none[0].metadata["all_tests"] and not none[0].metadata["shown_tests"]
    assert [p.prompt for p in load_task("mbpp", path=FIX / "mbpp", show_tests=False)] == [p.prompt for p in none]
    (mbpp_dir / "one.jsonl").write_text(
        '{"task_id": 1, "text": "Double it.", "code": "def dbl(x):\\n    return 2 * x", '
        '"test_list": ["assert dbl(2) == 4"], "test_setup_code": "", "challenge_test_list": []}\n')
    single = load_task("mbpp", path=mbpp_dir / "one.jsonl", split=None, prompt_tests="one")[0]
    # nothing left to hide: the name is shown, the one assert grades
    assert single.prompt.endswith("The function should be named dbl.") and "assert" not in single.prompt
    assert single.metadata["test_list"] == ("assert dbl(2) == 4",)
    with pytest.raises(ValueError, match="prompt_tests must be one of"):
        load_task("mbpp", path=FIX / "mbpp", prompt_tests="some")
