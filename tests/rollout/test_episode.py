"""Episodes with a tiny random model and a byte-level tokenizer (no downloads)."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.rollout.episode import encode_prompts, prompt_features, run_episodes
from spgg_jax.rollout.team import default_team
from spgg_jax.rollout.testing import tiny_bundle, tiny_params
from spgg_jax.sampling import SamplingParams
from spgg_jax.tasks import Problem

B = 3
MAX_NEW = 8


@pytest.fixture(scope="module")
def bundle():
    return tiny_bundle("tiny", seed=0)


def _problems():
    return [Problem(id=f"p{i}", task="basic_arithmetic", prompt=f"What is {i} + {2 * i}?", answer=str(3 * i))
            for i in range(B)]


def _team(obs="fo", temperature=0.0, **kw):
    return default_team("tiny", n=3, observation=obs, max_new_tokens=MAX_NEW, temperature=temperature, **kw)


def _label(team, t):
    return f"[Agent {t + 1} ({team.agents[t].name})]\n"


@pytest.mark.parametrize("obs", ["fo", "po"])
def test_episode_prompts_shapes_accounting(bundle, obs):
    team = _team(obs, temperature=1.0)  # sampled: every row and turn writes something different
    tok = bundle.tokenizer
    batch = run_episodes(team, {"tiny": bundle}, _problems(), jax.random.key(0))
    assert len(batch.turns) == 3 and batch.llm_calls == 3 * B and batch.final_text == batch.turns[2].output_text
    for t, turn in enumerate(batch.turns):
        chex.assert_rank([turn.prompt_ids, turn.tokens], 2)
        chex.assert_equal_shape([turn.prompt_ids, turn.prompt_mask])
        chex.assert_equal_shape([turn.tokens, turn.mask, turn.logprobs, turn.model_logprobs])
        assert turn.tokens.shape[0] == B and turn.tokens.shape[1] >= MAX_NEW
        np.testing.assert_array_equal(turn.lengths, turn.mask.sum(1))
        assert np.all(turn.lengths <= MAX_NEW) and np.all(turn.lengths >= 1)
        assert turn.features is None and turn.policy is None and turn.agent == t
        assert len(turn.output_text) == B and turn.seconds > 0
        for b in range(B):
            # the encoded prompt is exactly the rendered text; padding on the left
            ids = turn.prompt_ids[b][turn.prompt_mask[b]].tolist()
            assert ids == tok(turn.prompt_text[b], add_special_tokens=False)["input_ids"]
            assert turn.prompt_mask[b, -1]
            # exactly the right predecessors, each from the same problem
            seen = (0, 1)[:t] if obs == "fo" else ((t - 1,) if t else ())
            for s in range(t):
                block = _label(team, s) + batch.turns[s].output_text[b].strip()
                assert (block in turn.prompt_text[b]) == (s in seen), (t, s, b)
                assert (_label(team, s) in turn.prompt_text[b]) == (s in seen)
            expect = sum(len(tok(batch.turns[s].output_text[b].strip(), add_special_tokens=False)["input_ids"])
                         for s in seen)
            assert turn.exchanged_tokens[b] == expect
    assert len({batch.turns[0].output_text[b] for b in range(B)}) == B
    np.testing.assert_array_equal(batch.tokens_generated, np.stack([t.lengths for t in batch.turns], 1))
    assert batch.tokens_exchanged.shape == (B, 3) and np.all(batch.tokens_exchanged[:, 0] == 0)


@dataclasses.dataclass(frozen=True)
class _Record:
    """A policy's own per-turn record: the rollout carries it untouched as ``AgentTurn.policy``."""

    agent: np.ndarray
    logp: np.ndarray


def test_sampling_fn_features_and_policy_record(bundle):
    team = _team("fo")
    calls = []

    def policy(agent_index, features, key):
        calls.append((agent_index, features))
        max_new = np.array([1, 3, 5]) + agent_index  # per-row values, no recompilation
        sp = SamplingParams.create(B, temperature=0.0, max_new_tokens=max_new)
        return sp, _Record(agent=np.full((B,), agent_index), logp=np.zeros((B,)))

    batch = run_episodes(team.replace(final="integrator"), {"tiny": bundle}, _problems(), jax.random.key(1),
                         sampling_fn=policy, need_features=True)
    assert [c[0] for c in calls] == [0, 1, 2]  # once per agent, not for the integrator turn
    for i, (_, f) in enumerate(calls):
        chex.assert_shape(f, (B, bundle.cfg.d_model))
        chex.assert_tree_all_finite(f)
        turn = batch.turns[i]
        np.testing.assert_allclose(turn.features, f)
        ref = prompt_features(bundle.params, bundle.cfg, jnp.asarray(turn.prompt_ids), jnp.asarray(turn.prompt_mask))
        np.testing.assert_allclose(np.asarray(ref), f, rtol=1e-5, atol=1e-6)
        assert np.all(turn.lengths <= np.array([1, 3, 5]) + i)
        assert isinstance(turn.policy, _Record)
        np.testing.assert_array_equal(turn.policy.agent, i)
        np.testing.assert_array_equal(np.asarray(turn.sampling.max_new_tokens), np.array([1, 3, 5]) + i)
    assert len(batch.turns) == 4 and batch.turns[3].policy is None and batch.turns[3].features is None
    # padding does not change features: a row alone gives the same pooled state
    t0 = batch.turns[0]
    ids, mask = encode_prompts(bundle.tokenizer, t0.prompt_text[:1], [False])
    alone = prompt_features(bundle.params, bundle.cfg, jnp.asarray(ids), jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(alone)[0], calls[0][1][0], rtol=1e-4, atol=1e-5)


def test_agent_params_override(bundle):
    team = _team("fo")
    other = tiny_params(bundle.cfg, seed=7)
    base = run_episodes(team, {"tiny": bundle}, _problems(), jax.random.key(2))
    over = run_episodes(team, {"tiny": bundle}, _problems(), jax.random.key(2), agent_params=[None, other, None])
    np.testing.assert_array_equal(base.turns[0].tokens, over.turns[0].tokens)
    assert not np.array_equal(base.turns[1].tokens, over.turns[1].tokens)
    # the same episode with the roles of the weights swapped: the override is exactly what agent 2 used
    from spgg_jax.rollout.episode import ModelBundle

    b2 = ModelBundle.create("tiny", bundle.cfg, other, bundle.tokenizer)
    swapped = run_episodes(team, {"tiny": b2}, _problems(), jax.random.key(2),
                           agent_params=[bundle.params, None, bundle.params])
    for a, b in zip(over.turns, swapped.turns):
        np.testing.assert_array_equal(a.tokens, b.tokens)
    with pytest.raises(ValueError, match="one entry per agent"):
        run_episodes(team, {"tiny": bundle}, _problems(), jax.random.key(2), agent_params=[None])


def test_heterogeneous_team_and_errors(bundle):
    other = tiny_bundle("tiny2", seed=3, chat=False)
    team = _team("fo")
    agents = list(team.agents)
    agents[1] = dataclasses.replace(agents[1], model="tiny2")
    team = team.replace(agents=tuple(agents))
    batch = run_episodes(team, {"tiny": bundle, "tiny2": other}, _problems()[:2], jax.random.key(3))
    assert [t.model for t in batch.turns] == ["tiny", "tiny2", "tiny"]
    assert batch.turns[1].prompt_text[0].endswith("Response:\n")  # plain template for the base model
    assert batch.turns[2].prompt_text[0].startswith("<|im_start|>")
    with pytest.raises(ValueError, match="no ModelBundle"):
        run_episodes(team, {"tiny": bundle}, _problems(), jax.random.key(3))
    with pytest.raises(ValueError, match="share a task"):
        probs = _problems()[:1] + [Problem(id="x", task="chain_sum", prompt="1+1", answer="2")]
        run_episodes(_team(), {"tiny": bundle}, probs, jax.random.key(3))
