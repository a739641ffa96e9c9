"""Algorithms behind one registry, the shared PPO core, and the learner protocol on a tiny model."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.rl.algorithms import ALGORITHMS, get_algorithm, register_algorithm
from spgg_jax.rl.learners import GenParamsConfig, GenParamsRecord, TokenConfig, make_learner
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
    assert {"ppo", "reinforce", "grpo", "grpo_centred", "reinforce_group"} <= set(ALGORITHMS.names())


def test_grpo_centred_keeps_a_token_cost_at_its_size():
    """Two groups of MAC-SPGG-like rewards: in the first every episode is right (1.0) and only the token
    cost differs (0.01); in the second one episode is wrong. GRPO's std division makes the cost
    difference a unit advantage, as large as being right; the centred baseline keeps it 100x smaller."""
    r = jnp.array([1.00, 0.99, 1.00, 0.99, 1.00, 0.00, 1.00, 0.00])
    grpo, centred = get_algorithm("grpo"), get_algorithm("grpo_centred")
    assert centred.loss == "ppo" and centred.advantage == "group_centred" and not centred.needs_critic
    assert centred.default_kl_coef == grpo.default_kl_coef
    g = np.asarray(grpo.advantages(r, group_size=4))
    c = np.asarray(centred.advantages(r, group_size=4))
    np.testing.assert_allclose(np.abs(g), 1.0, atol=1e-3)  # the cost alone and correctness alike: +-1
    np.testing.assert_allclose(c, [0.005, -0.005, 0.005, -0.005, 0.5, -0.5, 0.5, -0.5], atol=1e-6)
    np.testing.assert_allclose(c.reshape(2, 4).sum(1), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="needs group_size"):
        centred.advantages(r)


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
    if learner.record_type is None:  # nothing of the policy's own travels with the turns
        assert all(t.policy is None for t in batch.turns)
    else:  # each agent turn carries the record type the learner declares; the integrator's none
        assert learner.record_type is GenParamsRecord
        b, f = len(problems), learner.feature_dim
        for t in batch.agent_turns:
            assert isinstance(t.policy, GenParamsRecord)
            chex.assert_shape([t.policy.features, t.policy.u, t.policy.logp, t.policy.value],
                              [(b, f), (b, len(cfg.controls)), (b,), (b,)])
    rewards = np.random.default_rng(0).normal(size=(len(problems), team.n)).astype(np.float32)
    s2, metrics = learner.update(s0, batch, rewards, jax.random.key(3))
    chex.assert_trees_all_equal_structs(s0, s2)
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                zip(jax.tree_util.tree_leaves(s0["policy"]), jax.tree_util.tree_leaves(s2["policy"])))
    assert moved > 0
    assert all(np.isfinite(v) for v in metrics.values())
    if method == "gen_params":  # a batch rolled out without the policy carries nothing to learn from
        plain = run_episodes(team, {"tiny": bundle}, problems, jax.random.key(2))
        with pytest.raises(ValueError, match=r"agent turns \[0, 1\] carry no policy choices \(GenParamsRecord"):
            learner.update(s0, plain, rewards, jax.random.key(3))
        # the error names exactly the agents whose records are missing
        mixed = dataclasses.replace(batch, turns=[batch.turns[0], dataclasses.replace(batch.turns[1], policy=None)])
        with pytest.raises(ValueError, match=r"agent turns \[1\] carry no policy choices"):
            learner.update(s0, mixed, rewards, jax.random.key(3))
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
    choices = "|".join(sorted(ALGORITHMS.names()))  # every registered algorithm, named in the error
    assert any(f"gen_params.algorithm must be one of {choices}, got 'nope'" in e
               for e in GenParamsConfig(algorithm="nope").errors())
    assert any("needs a value head" in e for e in TokenConfig(algorithm="ppo").errors())
    assert any("token.lora_targets" in e for e in TokenConfig(lora_targets=("nope",)).errors())
    assert GenParamsConfig().errors() == [] and TokenConfig().errors() == []
    assert any("token.train_layers must be an integer >= 0" in e for e in TokenConfig(train_layers=-1).errors())
    assert TokenConfig(train_layers=0).first_trained_layer(30) == 0 and TokenConfig().first_trained_layer(30) == 28
    with pytest.raises(ValueError, match="token.train_layers=4 exceeds the model's 3 layers"):
        TokenConfig(train_layers=4).first_trained_layer(3)
    with pytest.raises(ValueError, match="set token.train_layers=0"):
        TokenConfig(full_finetune=True).first_trained_layer(30)
    assert TokenConfig(full_finetune=True, train_layers=3).first_trained_layer(3) == 0  # every layer


def _token_loss(cfg, start, **kw):
    import functools

    from spgg_jax.rl.learners.token import token_loss

    return functools.partial(token_loss, model_cfg=cfg, lora_spec=(4.0, 2), loss_fn=get_algorithm("grpo").loss_fn,
                             clip=0.2, kl_coef=0.04, temperature=1.0, start=start, **kw)


@pytest.mark.parametrize("k", [0, 2])
def test_top_layer_lora_gradient_equals_the_full_forward_restricted_to_the_top_layers(k):
    """Adapters on the top k of 3 layers, trained from the trunk's residual stream (captured or
    recomputed), give the loss and gradient of the full forward with adapters on every layer whose
    lower layers are zero (the old step): the split drops only the lower layers' gradients.
    ``train_layers=0`` is the old step itself."""
    from spgg_jax.rl.lora import init_lora
    from spgg_jax.rollout.testing import tiny_config, tiny_params
    from spgg_jax.sampling import trunk_states

    cfg = tiny_config(n_layers=3)
    params = tiny_params(cfg)
    start = TokenConfig(train_layers=k).first_trained_layer(3)
    assert start == (1 if k == 2 else 0)
    keys = jax.random.split(jax.random.key(0), 4)
    full = init_lora(keys[0], params, rank=2)
    full = jax.tree_util.tree_map(lambda x: x + 0.1 * jax.random.normal(keys[1], x.shape), full)
    full = jax.tree_util.tree_map_with_path(  # B = 0 below the trained layers: the same weights there
        lambda path, x: x.at[:start].set(0.0) if path[-1].key == "b" else x, full)
    top = jax.tree_util.tree_map(lambda x: x[start:], full)
    assert jax.tree_util.tree_leaves(init_lora(keys[0], params, rank=2, top_layers=3 - start if start else 0))[0].shape[0] \
        == 3 - start
    rng = np.random.default_rng(0)
    pmask = np.array([[False, True, True, True, True], [True] * 5])
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    d = {"prompt_ids": jnp.asarray(rng.integers(3, cfg.vocab_size, (2, 5)), jnp.int32), "prompt_mask": jnp.asarray(pmask),
         "tokens": jnp.asarray(rng.integers(3, cfg.vocab_size, (2, 4)), jnp.int32), "mask": jnp.asarray(mask),
         "logp_old": jnp.full((2, 4), -5.3), "adv": jnp.array([1.0, -0.5]), "ref_lp": jnp.full((2, 4), -5.6)}
    want_v, want_g = jax.value_and_grad(lambda lo: _token_loss(cfg, 0)(lo, params, d)[0])(full)
    trunk = trunk_states(params, cfg, d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"], start)
    for dd in ({**d, "trunk": trunk}, d):  # the rollout's stream, or recomputed inside the step
        got_v, got_g = jax.value_and_grad(lambda lo: _token_loss(cfg, start)(lo, params, dd)[0])(top)
        np.testing.assert_allclose(got_v, want_v, rtol=1e-6)
        chex.assert_trees_all_close(got_g, jax.tree_util.tree_map(lambda x: x[start:], want_g), atol=1e-6, rtol=1e-5)
    if start:  # the full forward does send gradient to the lower layers' adapters: the split drops it
        assert float(jnp.abs(want_g["layers"]["attn"]["q_proj_kernel"]["b"][:start]).sum()) > 0
        # and no backward pass runs below the trained layers: the trunk's layer scan (length `start`)
        # appears once (its forward), where the top layers' scan has a forward and a backward
        jaxpr = jax.make_jaxpr(jax.grad(lambda lo: _token_loss(cfg, start)(lo, params, d)[0]))(top)
        lengths = _scan_lengths(jaxpr.jaxpr)
        assert lengths.count(start) == 1 and lengths.count(3 - start) >= 2, lengths


def _scan_lengths(jaxpr) -> list[int]:
    """The lengths of every scan in a jaxpr, sub-jaxprs included."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            out.append(int(eqn.params["length"]))
        for v in eqn.params.values():
            for sub in (v if isinstance(v, (list, tuple)) else [v]):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    out += _scan_lengths(inner if hasattr(inner, "eqns") else inner.jaxpr)
    return out


def test_token_learner_trains_the_top_layers_from_the_captured_trunk():
    """On a 3-layer model with train_layers=2: the training rollout captures the stream entering layer
    1, the update on it equals the update that recomputes it, the log-probs agree with the sampler's,
    generated columns are cut to the longest row, and the rollout weights change only the top layers."""
    bundle = tiny_bundle("tiny", seed=0, n_layers=3)
    cfg = TokenConfig(group_size=2, epochs=1, lora_rank=2, lr=1e-2)
    team = default_team("tiny", n=2, max_new_tokens=12).with_agent_overrides(**cfg.sampling())
    problems = [Problem(id=f"p{i}", task="basic_arithmetic", prompt=f"What is {i} + 1?", answer=str(i + 1))
                for i in (0, 0, 1, 1)]
    learner = make_learner("token", cfg, team, {"tiny": bundle})
    assert learner.start == 1
    s0 = learner.init(jax.random.key(1))
    greedy = learner.rollout_policy(s0, deterministic=True)
    assert greedy.capture_layer is None
    # evaluation decodes greedily: at the start (adapters B = 0) exactly the untrained greedy team
    want = run_episodes(team.with_agent_overrides(temperature=0.0), {"tiny": bundle}, problems, jax.random.key(5))
    got = run_episodes(team, {"tiny": bundle}, problems, jax.random.key(6), **greedy.episode_kwargs())
    for a, b in zip(want.agent_turns, got.agent_turns):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        assert b.policy is None and (np.asarray(b.sampling.temperature) == 0).all()
    policy = learner.rollout_policy(s0)
    assert policy.capture_layer == 1
    batch = run_episodes(team, {"tiny": bundle}, problems, jax.random.key(2), **policy.episode_kwargs())
    turn = batch.agent_turns[0]
    assert turn.trunk_layer == 1 and turn.trunk.shape == (4, turn.prompt_ids.shape[1] + turn.tokens.shape[1], 32)
    d = learner.turn_data(turn, np.zeros(4, np.float32))
    assert "trunk" in d and d["tokens"].shape[1] == min(turn.tokens.shape[1], -(-int(turn.lengths.max()) // 8) * 8)
    rewards = np.random.default_rng(0).normal(size=(4, team.n)).astype(np.float32)
    s1, m1 = learner.update(s0, batch, rewards, jax.random.key(3))
    for t in batch.agent_turns:  # the same batch without the captured stream: recomputed in the update
        t.trunk = None
    s2, m2 = learner.update(s0, batch, rewards, jax.random.key(3))
    chex.assert_trees_all_close(s1["policy"], s2["policy"], atol=1e-6)
    assert m1["logprob_mismatch"] < 1e-4 and m2["logprob_mismatch"] < 1e-4
    w = learner.agent_weights(s1)[0]
    base = bundle.params["layers"]["attn"]["q_proj_kernel"]
    np.testing.assert_array_equal(w["layers"]["attn"]["q_proj_kernel"][:1], base[:1])
    assert float(jnp.max(jnp.abs(w["layers"]["attn"]["q_proj_kernel"][1:] - base[1:]))) > 0
    assert w["layers"]["mlp"] is bundle.params["layers"]["mlp"]  # leaves without adapters are shared, not copied
