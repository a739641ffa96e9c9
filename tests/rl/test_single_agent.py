"""A single agent (a one-agent team) trained with the same learners: no game, the task score is its
reward; and the token experiment's cross-run table (experiments/token/compare.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from spgg_jax.eval.stats import paired_comparison
from spgg_jax.train import Trainer, load_config

from tiny_models import load_script
from tiny_models import run_metrics as _metrics
from tiny_models import tiny_train_overrides as _overrides

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ["team.from=default:1", "team.effort=none", "team.final=last"]


@pytest.mark.parametrize("item, match", [
    (["team.from=default:1", "team.final=last"], "set team.effort to 'none'"),
    (["team.from=default:1", "team.effort=none", "team.final=majority"], "set team.final to 'last'"),
])
def test_a_single_agent_must_say_it_plays_no_game(item, match):
    with pytest.raises(ValueError, match=match):
        load_config(None, item)


def test_the_single_agent_config_file_is_one_agent_with_the_teams_first_prompt():
    """experiments/token/single.json: agent 1 of experiments/token/team.json alone (same prompt, model,
    limit and token settings), so its untrained start is the team run's "agent 1 alone" row."""
    single = load_config(str(ROOT / "experiments/token/single.json"))
    team = load_config(str(ROOT / "experiments/token/team.json"))
    assert single.team.single and not team.team.single
    assert single.team.agents[0] == team.team.agents[0]
    assert single.method_cfg == team.method_cfg
    for k in ("task", "task_options", "train_size", "eval_size", "val_size", "steps", "seed"):
        assert getattr(single, k) == getattr(team, k), k  # the same splits: paired test problems


def test_a_single_agents_reward_is_the_task_score():
    """One agent: R = S (partial credit too), no own cost whatever it generated; no game parameters."""
    from spgg_jax.rollout.scoring import episode_reward_terms, make_scores
    from spgg_jax.rollout.team import default_team

    one = default_team("m", n=1).replace(effort="none")
    assert one.single and not default_team("m", n=2).single
    with pytest.raises(ValueError, match="a single agent is rewarded with the task score"):
        one.game_params()
    score = np.array([[0.0], [1.0], [0.5]])
    scores = make_scores(score, score == 1.0, score[:, 0], score[:, 0] == 1.0, np.array([[3], [10], [64]]), 64,
                         0.1, 1.0)
    benefit, cost = episode_reward_terms(scores, one)
    np.testing.assert_allclose(np.asarray(benefit)[:, 0], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(np.asarray(cost), 0.0)


@pytest.mark.parametrize("method, extra", [("token", {"token.group_size": 2, "token.epochs": 1}),
                                           ("gen_params", {})])
def test_single_agent_trains_on_the_task_score(tiny_model_dir, tmp_path, method, extra):
    """A one-agent team (token-level GRPO, and the generation-parameter policy): every episode's reward
    is its final score S (no own cost, no game), the step learns from it, and the evaluation runs
    with the untrained rows beside it."""
    evaluate = method == "token"  # the evaluation is the same code for both learners: run once
    cfg = load_config(None, _overrides(tiny_model_dir, tmp_path / "one", 2, method=method, batch=2,
                                       eval_size=2 if evaluate else 0, **extra) + SINGLE)
    t = Trainer(cfg)
    assert t.setup.game_params is None and t.n == 1
    t.run(evaluate=evaluate)
    rows = _metrics(tmp_path / "one")
    assert len(rows) == 2
    for m in rows:
        assert m["reward/mean"] == pytest.approx(m["final_score"]) == pytest.approx(m["reward/agent1"])
        assert m["own_cost/agent1"] == 0.0 and "threshold_met" not in m
        assert method != "token" or m["logprob_mismatch"] < 1e-4
    if not evaluate:
        return
    ev = json.loads((tmp_path / "one" / "eval.json").read_text())
    trained = next(r for r in ev["rows"] if r["method"] == "team, trained")
    assert trained["mean_reward"] == pytest.approx(trained["accuracy"])  # S of a verifiable task: 0 or 1
    assert trained["llm_calls"] == 2  # one call per problem


def _write_run(d: Path, seed: int, correct: dict[str, list[bool]], ids: list[str], best: str, tokens: float,
               n_agents: int) -> None:
    s = d / f"seed{seed}"
    s.mkdir(parents=True)
    with open(s / "eval_episodes.jsonl", "w") as f:
        for method, col in correct.items():
            for i, c in zip(ids, col):
                f.write(json.dumps({"method": method, "id": i, "correct": c}) + "\n")
    (s / "eval.json").write_text(json.dumps({"headline": {"a": "team, trained", "b": best}}))
    (s / "config.json").write_text(json.dumps({"method": "token", "batch": 3, "token": {"group_size": 2}}))
    (s / "metrics.jsonl").write_text("\n".join(json.dumps({"step": k + 1, **{f"tokens/agent{a + 1}": tokens
                                                                             for a in range(n_agents)}})
                                               for k in range(2)) + "\n")


def test_compare_pairs_the_runs_problem_by_problem(tmp_path):
    compare = load_script(ROOT / "experiments/token/compare.py")
    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(40)]
    cols = {}
    for seed in (0, 1):
        team = {m: rng.random(40) < p for m, p in [("team, trained", 0.6), ("agent 1 alone, greedy", 0.4),
                                                   ("agent 1 self-consistency", 0.3),
                                                   ("team, untrained, greedy", 0.35)]}
        single = {"team, trained": rng.random(40) < 0.5}
        perm = rng.permutation(40)  # the files list problems in another order: pairing is by id
        _write_run(tmp_path / "team", seed, {k: list(map(bool, v[perm])) for k, v in team.items()},
                   [ids[i] for i in perm], "agent 1 alone, greedy", 10.0, 3)
        _write_run(tmp_path / "single", seed, {k: list(map(bool, v)) for k, v in single.items()}, ids,
                   "agent 1 alone, greedy", 10.0, 1)
        cols[seed] = (team, single)
    assert compare.main(["--run", f"team={tmp_path / 'team'}", "--run", f"single={tmp_path / 'single'}",
                         "--out", str(tmp_path / "out")]) == 0
    out = json.loads((tmp_path / "out" / "token_compare.json").read_text())
    assert out["seeds"] == [0, 1]
    assert out["training_tokens"]["0"] == {"team": 2 * 6 * 30, "single": 2 * 6 * 10}
    d = next(x for x in out["differences"] if (x["a"], x["b"]) == ("team, trained", "single, trained"))
    for p, seed in zip(d["per_seed"], (0, 1)):
        want = paired_comparison("team, trained", cols[seed][0]["team, trained"], "single, trained",
                                 cols[seed][1]["team, trained"])
        assert p["mean_diff"] == pytest.approx(want["mean_diff"]) and p["ci95"] == pytest.approx(want["ci95"])
    both_a = np.concatenate([cols[s][0]["team, trained"] for s in (0, 1)])
    both_b = np.concatenate([cols[s][1]["team, trained"] for s in (0, 1)])
    assert d["pooled"]["ci95"] == pytest.approx(paired_comparison("a", both_a, "b", both_b)["ci95"])
    assert "| team, trained - single, trained |" in (tmp_path / "out" / "token_compare.md").read_text()
    assert (tmp_path / "out" / "token_curves.png").stat().st_size > 0
    # an arm with fewer seeds (the centred team, seed 1 only): the table holds the seeds every run has
    _write_run(tmp_path / "centred", 1, {"team, trained": list(map(bool, cols[1][1]["team, trained"]))}, ids,
               "agent 1 alone, greedy", 10.0, 3)
    assert compare.main(["--run", f"team={tmp_path / 'team'}", "--run", f"centred={tmp_path / 'centred'}",
                         "--out", str(tmp_path / "out3")]) == 0
    out = json.loads((tmp_path / "out3" / "token_compare.json").read_text())
    assert out["seeds"] == [1]
    d = next(x for x in out["differences"] if (x["a"], x["b"]) == ("centred, trained", "team, trained"))
    want = paired_comparison("a", cols[1][1]["team, trained"], "b", cols[1][0]["team, trained"])
    assert d["per_seed"][0]["mean_diff"] == pytest.approx(want["mean_diff"])
    # a run evaluated on other problems is refused, naming the seed
    _write_run(tmp_path / "other", 0, {"team, trained": [True] * 40}, [f"q{i}" for i in range(40)], "x", 1.0, 1)
    with pytest.raises(SystemExit, match="seed 0: single, trained was evaluated on other problems"):
        compare.main(["--run", f"team={tmp_path / 'team'}", "--run", f"single={tmp_path / 'other'}",
                      "--out", str(tmp_path / "out2")])


def test_temperature_probe_counts_informative_groups(tiny_model_dir, tmp_path):
    """experiments/token/temperature.py: the share of groups holding a right and a wrong episode, per
    temperature, from the untrained team's rollouts on training batches only."""
    probe = load_script(ROOT / "experiments/token/temperature.py")
    assert probe.informative([1, 0, 1, 1, 0, 0, 0, 0], 4) == 0.5  # group 1 mixed, group 2 all wrong
    assert probe.informative([1, 1, 0, 0], 2) == 0.0
    out = tmp_path / "t.json"
    args = ["--temperatures", "0.5,1.0", "--batches", "1", "--out", str(out),
            "--config", str(ROOT / "experiments/token/team.json"),
            f"team.model={tiny_model_dir}", "team.agents.max_new_tokens=6", "batch=2", "token.group_size=2",
            "train_size=8"]
    assert probe.main(args) == 0
    d = json.loads(out.read_text())
    assert [r["temperature"] for r in d["table"]] == [0.5, 1.0] and d["choice"] in (0.5, 1.0)
    for r in d["table"]:
        assert r["episodes"] == 4 and 0.0 <= r["informative/final"] <= 1.0 and "accuracy/agent3" in r
