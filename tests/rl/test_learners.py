"""Algorithms behind one registry, the shared PPO core, and the learner protocol on a tiny model."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.rl.algorithms import ALGORITHMS, get_algorithm, register_algorithm
from spgg_jax.rl.learners import GenParamsConfig, TokenConfig, make_learner
from spgg_jax.rl.losses import LOSSES
from spgg_jax.rl.ppo import make_optimizer, ppo_update
from spgg_jax.rollout.episode import run_episodes
from spgg_jax.rollout.team import default_team
from spgg_jax.rollout.testing import tiny_bundle
from spgg_jax.tasks import Problem


def test_choosing_an_algorithm_chooses_loss_and_advantage():
    grpo, ppo = get_algorithm("grpo"), get_algorithm("ppo")
    assert grpo.loss == "ppo" and grpo.advantage == "group" and not grpo.needs_critic
    assert ppo.advantage == "critic" and ppo.needs_critic and ppo.epochs(4) == 4
    assert get_algorithm("reinforce").epochs(4) == 1 and get_algorithm("reinforce_group").advantage == "group"
    assert "grpo" not in LOSSES  # GRPO is an algorithm (a loss + an advantage), not a second copy of a loss
    r = jnp.array([1.0, 0.0, 3.0, 1.0])
    np.testing.assert_allclose(grpo.advantages(r, group_size=2), [1, -1, 1, -1], atol=1e-4)
    adv = ppo.advantages(r, values=jnp.array([1.0, 0.0, 1.0, 1.0]))
    np.testing.assert_allclose(adv, (np.array([0, 0, 2, 0]) - 0.5) / np.std([0, 0, 2, 0]), rtol=1e-5)
    with pytest.raises(ValueError, match="needs the value head"):
        ppo.advantages(r)
    with pytest.raises(KeyError, match="unknown advantage estimator 'nope'"):
        register_algorithm("x", "ppo", "nope")
    with pytest.raises(KeyError, match="unknown algorithm 'grp'"):
        get_algorithm("grp")
    assert {"ppo", "reinforce", "grpo", "reinforce_group"} <= set(ALGORITHMS.names())


def test_ppo_core_equals_a_hand_written_loop():
    """Two agents, 2 epochs of 2 shuffled minibatches: the core equals an explicit Python loop."""
    key = jax.random.key(0)
    n, b, f = 2, 8, 3
    x = jax.random.normal(key, (n, b, f))
    y = jnp.sum(x, -1)
    params = {"w": jnp.zeros((n, f))}

    def loss(p, d):
        err = d["x"] @ p["w"] - d["y"]
        return jnp.mean(err ** 2), {"approx_kl": jnp.mean(err ** 2)}

    tx = make_optimizer(0.1, 10.0)
    opt = jax.vmap(tx.init)(params)
    got, _, out = ppo_update(loss, tx, params, opt, {"x": x, "y": y}, key, epochs=2, minibatch=4, shuffle=True)
    chex.assert_shape(out["grad"]["approx_kl"], (2, 2, n))
    want, o = params, opt
    for ekey in jax.random.split(key, 2):
        perm = np.asarray(jax.random.permutation(ekey, b)).reshape(2, 4)
        for rows in perm:
            g, _ = jax.vmap(jax.grad(loss, has_aux=True))(want, {"x": x[:, rows], "y": y[:, rows]})
            u, o = jax.vmap(tx.update)(g, o, want)
            want = jax.tree_util.tree_map(lambda a, d: a + d, want, u)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-5, atol=1e-6)
    # target KL: an epoch ending above 1.5 * target stops all later updates
    stopped, _, out = ppo_update(loss, tx, params, opt, {"x": x, "y": y}, key, epochs=3, target_kl=1e-9)
    assert int(out["epochs_run"]) == 1


@pytest.fixture(scope="module")
def tiny():
    bundle = tiny_bundle("tiny", seed=0)
    team = default_team("tiny", n=2, max_new_tokens=6)
    problems = [Problem(id=f"p{i}", task="basic_arithmetic", prompt=f"What is {i} + 1?", answer=str(i + 1))
                for i in range(4)]
    return bundle, team, problems


@pytest.mark.parametrize("method, cfg", [
    ("gen_params", GenParamsConfig(minibatch=2, hidden=(8,))),
    ("gen_params", GenParamsConfig(algorithm="grpo", group_size=2, minibatch=2, hidden=(8,))),
    ("token", TokenConfig(group_size=2, epochs=1, lora_rank=2)),
])
def test_learner_protocol(tiny, method, cfg):
    """init is pure; everything update needs comes back inside the episode batch; update moves the
    policy and keeps the state's structure."""
    bundle, team, problems = tiny
    if method == "token":
        team = team.with_agent_overrides(**cfg.sampling())
    learner = make_learner(method, cfg, team, {"tiny": bundle})
    key = jax.random.key(1)
    s0, s1 = learner.init(key), learner.init(key)
    chex.assert_trees_all_equal(s0, s1)
    policy = learner.rollout_policy(s0)
    batch = run_episodes(team, {"tiny": bundle}, problems, jax.random.key(2), **policy.episode_kwargs())
    if method == "gen_params":
        for t in batch.agent_turns:
            assert {"u", "logp", "value", "policy_features"} <= set(t.aux)
            chex.assert_shape(t.aux["u"], (len(problems), len(cfg.controls)))
    rewards = np.random.default_rng(0).normal(size=(len(problems), team.n)).astype(np.float32)
    s2, metrics = learner.update(s0, batch, rewards, jax.random.key(3))
    chex.assert_trees_all_equal_structs(s0, s2)
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                zip(jax.tree_util.tree_leaves(s0["policy"]), jax.tree_util.tree_leaves(s2["policy"])))
    assert moved > 0
    assert all(np.isfinite(v) for v in metrics.values())
    if method == "gen_params":  # a batch rolled out without the policy carries nothing to learn from
        plain = run_episodes(team, {"tiny": bundle}, problems, jax.random.key(2))
        with pytest.raises(ValueError, match="carry no policy choices"):
            learner.update(s0, plain, rewards, jax.random.key(3))
    else:
        assert metrics["logprob_mismatch"] < 1e-4


def test_token_learner_rejects_mixed_models(tiny):
    bundle, team, _ = tiny
    mixed = team.replace(agents=(team.agents[0], team.agents[1].__class__(**{**team.agents[1].__dict__, "model": "other"})))
    with pytest.raises(ValueError, match="sharing one base model"):
        make_learner("token", TokenConfig(), mixed, {"tiny": bundle, "other": bundle})


def test_gen_params_group_baseline_compares_episodes_of_one_problem(tiny):
    """With a group baseline, rewards that differ only between problems carry no signal (the policy
    does not move; the critic baseline does learn from them); rows 2k, 2k+1 are one problem's group."""
    bundle, team, problems = tiny
    group_problems = [p for p in problems[:2] for _ in range(2)]
    rewards = np.repeat(np.array([[1.0, -1.0], [-2.0, 3.0]], np.float32), 2, axis=0)  # equal inside each group
    moved = {}
    for algo, k in (("grpo", 2), ("ppo", 1)):
        cfg = GenParamsConfig(algorithm=algo, group_size=k, minibatch=2, hidden=(8,), value_coef=0.0, entropy_coef=0.0)
        learner = make_learner("gen_params", cfg, team, {"tiny": bundle})
        assert learner.samples_per_problem == k
        s0 = learner.init(jax.random.key(1))
        batch = run_episodes(team, {"tiny": bundle}, group_problems, jax.random.key(2),
                             **learner.rollout_policy(s0).episode_kwargs())
        s1, _ = learner.update(s0, batch, rewards, jax.random.key(3))
        moved[algo] = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                          zip(jax.tree_util.tree_leaves(s0["policy"]), jax.tree_util.tree_leaves(s1["policy"])))
    assert moved["grpo"] == 0.0 and moved["ppo"] > 0


def test_learner_configs_validate():
    assert any("set gen_params.group_size >= 2" in e for e in GenParamsConfig(algorithm="grpo").errors())
    assert GenParamsConfig(algorithm="reinforce_group", group_size=4).errors() == []
    assert any("unknown algorithm" in e for e in GenParamsConfig(algorithm="nope").errors())
    assert any("needs a value head" in e for e in TokenConfig(algorithm="ppo").errors())
    assert any("token.lora_targets" in e for e in TokenConfig(lora_targets=("nope",)).errors())
    assert GenParamsConfig().errors() == [] and TokenConfig().errors() == []
