"""The generation-parameter policy's action space: the smallest max_new_tokens it can choose
(``gen_params.min_new_tokens``) and where its modes start (``gen_params.start``)."""

import jax
import numpy as np
import pytest

from spgg_jax.rl.learners.gen_params import GenParamsConfig, GenParamsLearner, gen_param_ranges
from spgg_jax.rollout.team import load_team
from spgg_jax.train import load_config

TEAM = load_team("default:3").with_agent_overrides(max_new_tokens=32, temperature=0.7)


def test_min_new_tokens_sets_the_floor_of_max_new_tokens():
    assert gen_param_ranges(TEAM).max_new_tokens == (8.0, 32.0)  # the default: unchanged behaviour
    assert gen_param_ranges(TEAM, 1).max_new_tokens == (1.0, 32.0)  # 1 token: a real non-contribution
    assert gen_param_ranges(TEAM.with_agent_overrides(max_new_tokens=10), 8).max_new_tokens == (5.0, 10.0)  # cap M/2
    cfg = load_config(None, ["gen_params.min_new_tokens=1", "team.agents.max_new_tokens=32"])
    learner = GenParamsLearner(cfg.method_cfg, cfg.team, feature_dim=4)
    assert learner.ranges.max_new_tokens == (1.0, 32.0)
    # the policy's lowest draw maps to 1 token
    sp = learner.ranges.bounds()
    assert float(sp[0][3]) == 1.0


@pytest.mark.parametrize("item, match", [
    ("gen_params.min_new_tokens=0", "gen_params.min_new_tokens must be a positive integer"),
    ("gen_params.min_new_tokens=2.5", "gen_params.min_new_tokens must be an integer"),
    ("gen_params.start.top_k=5", r"gen_params.start.top_k: only a parameter the policy controls"),
    ("gen_params.start.temperature=hot", "gen_params.start.temperature must be a finite number"),
    ("gen_params.start=3", "gen_params.start must be a JSON object"),
])
def test_config_errors(item, match):
    with pytest.raises(ValueError, match=match):
        load_config(None, [item])


def test_start_moves_the_policy_not_the_team():
    """``gen_params.start`` puts the policy's initial modes elsewhere while the team (what the evaluation's
    configured baselines run) keeps its own parameters."""
    cfg = load_config(None, ["gen_params.start.temperature=1.2", "team.agents.max_new_tokens=32",
                             "team.agents.temperature=0.7"])
    assert {a.temperature for a in cfg.team.agents} == {0.7}
    learner = GenParamsLearner(cfg.method_cfg, cfg.team, feature_dim=4)
    plain = GenParamsLearner(GenParamsConfig(), cfg.team, feature_dim=4)
    feats = np.zeros((2, 4), np.float32)
    for lrn, want in ((learner, 1.2), (plain, 0.7)):
        state = lrn.init(jax.random.key(0))
        sp, record = lrn.rollout_policy(state, deterministic=True).sampling_fn(0, feats, None)
        assert record is None  # the policy's modes: no draws, nothing for an update
        np.testing.assert_allclose(np.asarray(sp.temperature), want, rtol=1e-3)
    with pytest.raises(ValueError, match=r"gen_params.start.temperature=9 lies outside the policy's range \[0.05, 1.5\]"):
        GenParamsLearner(GenParamsConfig(start={"temperature": 9}), cfg.team, feature_dim=4)


def test_training_metrics_count_turns_that_contribute_nothing(tiny_model_dir, tmp_path):
    """With the floor at 1 token and the policy starting there, turns that state no answer appear, and
    the step's metrics carry their share per agent."""
    from spgg_jax.train import Trainer
    from tiny_models import run_metrics, tiny_train_overrides

    run = tmp_path / "r"
    Trainer(load_config(None, tiny_train_overrides(tiny_model_dir, run, 1, **{
        "gen_params.min_new_tokens": 1, "gen_params.controls": "max_new_tokens",
        "gen_params.start.max_new_tokens": 1}))).run(evaluate=False)
    m = run_metrics(run)[0]
    shares = [m[f"nothing/agent{a}"] for a in (1, 2, 3)]
    assert all(0 <= s <= 1 for s in shares) and m["nothing"] == pytest.approx(np.mean(shares))
    assert min(m[f"tokens/agent{a}"] for a in (1, 2, 3)) < 3  # the policy really chose about 1 token
    assert max(shares) > 0
