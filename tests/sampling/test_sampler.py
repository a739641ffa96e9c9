"""The sampler: parity with transformers, per-row parameters, log-probs, stops, recompiles, sharding."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.models.config import ModelConfig
from spgg_jax.models.decoder import init_params
from spgg_jax.models.generate import greedy_generate
from spgg_jax.models.weights.hf import load_hf_dir
from spgg_jax.sampling import (
    FINISH_LENGTH,
    FINISH_STOP,
    Sampler,
    SamplingParams,
    continuation_logprobs,
    left_pad,
    logprobs_from_layer,
    sample_loop,
    sampling_logits,
    trunk_states,
)
from spgg_jax.sampling.processors import _top_k_top_p, apply_penalties, choose_tokens, draw_tokens

from .conftest import TINY_KINDS

PROMPTS = [[5, 9, 3, 17, 2, 8, 40], [11, 4], [7, 7, 21, 30]]


@pytest.mark.torch
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_greedy_matches_transformers_generate(tiny_hf, kind):
    import torch

    m = tiny_hf(kind)
    cfg, params = load_hf_dir(m.path)
    sampler = Sampler(params, cfg, pad_id=0)
    new = 10
    out = sampler.generate(PROMPTS, SamplingParams.greedy(len(PROMPTS), new), stop_tokens=[[]] * len(PROMPTS))
    for r, prompt in enumerate(PROMPTS):
        with torch.no_grad():
            ref = m.torch_model.generate(
                torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=new, min_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0,
            )[0, len(prompt):].numpy()
        np.testing.assert_array_equal(np.asarray(out.tokens[r, :new]), ref, err_msg=f"{kind} row {r}")
    assert np.all(np.asarray(out.lengths) == new)


def test_greedy_equals_reference_loop_and_rows_alone(tiny_model):
    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    out = sampler.generate(PROMPTS, SamplingParams.greedy(3, 12), stop_tokens=[[]] * 3)
    ids, mask = left_pad(PROMPTS, 16, 0)
    ref = greedy_generate(params, cfg, ids, mask, 12, eos_ids=())
    np.testing.assert_array_equal(out.tokens[:, :12], ref)
    for r, prompt in enumerate(PROMPTS):  # a mixed-length batch equals each row run alone
        alone = sampler.generate([prompt], SamplingParams.greedy(1, 12), stop_tokens=[[]])
        np.testing.assert_array_equal(alone.tokens[0, :12], out.tokens[r, :12])


def test_tiny_temperature_and_top_k_one_equal_greedy(tiny_model):
    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    greedy = sampler.generate(PROMPTS, SamplingParams.greedy(3, 8), stop_tokens=[[]] * 3)
    cold = sampler.generate(PROMPTS, SamplingParams.create(3, temperature=1e-4, max_new_tokens=8),
                            key=jax.random.key(3), stop_tokens=[[]] * 3)
    topk1 = sampler.generate(PROMPTS, SamplingParams.create(3, temperature=1.5, top_k=1, max_new_tokens=8),
                             key=jax.random.key(4), stop_tokens=[[]] * 3)
    np.testing.assert_array_equal(cold.tokens, greedy.tokens)
    np.testing.assert_array_equal(topk1.tokens, greedy.tokens)


def test_top_p_keeps_smallest_set_reaching_p():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = jnp.log(jnp.asarray(probs))[None].repeat(4, 0)
    top_p = jnp.array([0.7, 0.5, 0.96, 1.0])
    kept = np.isfinite(np.asarray(_top_k_top_p(logits, jnp.zeros(4, jnp.int32), top_p)))
    np.testing.assert_array_equal(kept, [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])


@pytest.mark.torch
def test_processors_match_transformers_definitions():
    import torch
    from transformers.generation.logits_process import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    rng = np.random.default_rng(0)
    b, v = 6, 50
    logits = rng.normal(size=(b, v)).astype(np.float32) * 3
    history = rng.integers(0, v, size=(b, 12))
    temps, ks, ps, rps = [0.7, 1.0, 1.3, 0.5, 2.0, 1.0], [0, 5, 10, 0, 3, 50], [0.9, 1.0, 0.5, 0.8, 1.0, 0.3], [1.3, 1.0, 0.8, 2.0, 1.1, 1.0]
    seen = np.zeros((b, v), bool)
    for r in range(b):
        seen[r, history[r]] = True
    sp = SamplingParams.create(b, temperature=temps, top_k=ks, top_p=ps, repetition_penalty=rps)
    ours = np.asarray(sampling_logits(jnp.asarray(logits), sp, jnp.asarray(seen), jnp.zeros((b, v), bool)))
    for r in range(b):
        x = torch.tensor(logits[r : r + 1])
        ids = torch.tensor(history[r : r + 1])
        x = RepetitionPenaltyLogitsProcessor(rps[r])(ids, x)
        x = TemperatureLogitsWarper(temps[r])(ids, x)
        if ks[r] > 0:
            x = TopKLogitsWarper(ks[r])(ids, x)
        if ps[r] < 1.0:
            x = TopPLogitsWarper(ps[r])(ids, x)
        ref = x.numpy()[0]
        np.testing.assert_array_equal(np.isfinite(ours[r]), np.isfinite(ref), err_msg=f"support row {r}")
        fin = np.isfinite(ref)
        np.testing.assert_allclose(ours[r][fin], ref[fin], rtol=1e-5, atol=1e-5)


def test_presence_penalty_subtracts_once_on_generated_tokens():
    logits = jnp.array([[1.0, -2.0, 3.0, 0.5]])
    sp = SamplingParams.create(1, presence_penalty=0.75, repetition_penalty=1.0)
    seen_gen = jnp.array([[False, True, True, False]])
    out = apply_penalties(logits, sp, jnp.zeros_like(seen_gen), seen_gen)
    np.testing.assert_allclose(out, [[1.0, -2.75, 2.25, 0.5]])


@pytest.mark.parametrize("kw", [dict(temperature=1.0), dict(temperature=0.6, top_k=5), dict(temperature=1.4, top_p=0.8)])
def test_sampled_frequencies_match_the_distribution(kw):
    n, v = 40000, 8
    base = jnp.log(jnp.array([0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.04, 0.01]))
    logits = jnp.broadcast_to(base, (n, v))
    sp = SamplingParams.create(n, **kw)
    zeros = jnp.zeros((n, v), bool)
    tok, lp, mlp = jax.jit(choose_tokens)(jax.random.key(0), logits, sp, zeros, zeros)
    target = np.asarray(jax.nn.softmax(sampling_logits(logits[:1], SamplingParams.create(1, **kw), zeros[:1], zeros[:1]))[0])
    freq = np.bincount(np.asarray(tok), minlength=v) / n
    # chi-square statistic over the support; 99.9% quantile for <= 7 dof is 24.3
    support = target > 0
    chi2 = n * np.sum((freq[support] - target[support]) ** 2 / target[support])
    assert chi2 < 24.3, (freq, target)
    assert np.all(freq[~support] == 0)
    np.testing.assert_allclose(np.exp(np.asarray(lp)), target[np.asarray(tok)], rtol=1e-5)
    np.testing.assert_allclose(np.exp(np.asarray(mlp)), np.asarray(jax.nn.softmax(base))[np.asarray(tok)], rtol=1e-5)


def test_block_draw_matches_the_distribution_across_blocks():
    """The inverse-CDF draw over blocks of 128: a support spread over a vocabulary that is not a
    multiple of the block (the last block padded), nothing outside the support ever drawn."""
    n, v, k = 40000, 1000, 20
    rng = np.random.default_rng(0)
    support = np.sort(rng.choice(v, k, replace=False))
    proc = np.full((v,), -np.inf, np.float32)
    proc[support] = rng.normal(size=k).astype(np.float32)
    proc[support[-1]] = 1.0  # keep one entry in the padded last block's neighbourhood
    tok = np.asarray(jax.jit(draw_tokens)(jax.random.key(3), jnp.broadcast_to(jnp.asarray(proc), (n, v))))
    target = np.asarray(jax.nn.softmax(jnp.asarray(proc)))
    freq = np.bincount(tok, minlength=v) / n
    assert set(np.unique(tok)) <= set(support.tolist())
    chi2 = n * np.sum((freq[support] - target[support]) ** 2 / target[support])
    assert chi2 < 43.8, chi2  # 99.9% quantile, 19 degrees of freedom


def test_logprobs_equal_a_separate_forward_pass(tiny_model):
    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    temps = [0.8, 1.0, 1.3]
    out = sampler.generate(PROMPTS, SamplingParams.create(3, temperature=temps, max_new_tokens=[9, 14, 5]),
                           key=jax.random.key(1), stop_tokens=[[]] * 3)
    ids, mask = left_pad(PROMPTS, 16, 0)
    model_lp = continuation_logprobs(params, cfg, ids, mask, out.tokens, out.mask)
    np.testing.assert_allclose(model_lp, out.model_logprobs, atol=2e-5)
    samp_lp = continuation_logprobs(params, cfg, ids, mask, out.tokens, out.mask, temperature=jnp.array(temps))
    np.testing.assert_allclose(samp_lp, out.logprobs, atol=2e-5)
    assert np.all(np.asarray(out.logprobs)[~np.asarray(out.mask)] == 0)


def test_captured_trunk_equals_the_recomputed_one(tiny_model):
    """``capture=1``: the prefill's and each decode step's residual stream entering layer 1 equal the
    training-side ``trunk_states`` at every real position the update reads (all but each row's last
    token, which no forward runs), the sampled tokens do not change, and log-probs from the captured
    stream (``logprobs_from_layer``) equal the sampler's and the full forward's."""
    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    sp = SamplingParams.create(3, temperature=[0.8, 1.0, 1.3], max_new_tokens=[9, 14, 5])
    free = np.asarray(sampler.decode(sampler.prefill(PROMPTS, 14), sp, key=jax.random.key(1)).tokens)
    stops = [[int(free[0, 3])], [int(free[1, 5])], []]  # rows 0 and 1 stop early, row 2 at its length
    plain = sampler.decode(sampler.prefill(PROMPTS, 14), sp, key=jax.random.key(1), stop_tokens=stops)
    pre = sampler.prefill(PROMPTS, 14, capture=1)
    out = sampler.decode(pre, sp, key=jax.random.key(1), stop_tokens=stops)
    np.testing.assert_array_equal(out.tokens, plain.tokens)
    assert plain.trunk is None and pre.prompt_trunk.shape == (3, 16, cfg.d_model)
    assert out.trunk.shape == (3, out.tokens.shape[1], cfg.d_model)
    assert list(np.asarray(out.finish_reason)) == [FINISH_STOP, FINISH_STOP, FINISH_LENGTH]
    ids, mask = left_pad(PROMPTS, 16, 0)
    captured = jnp.concatenate([pre.prompt_trunk, out.trunk], axis=1)
    want = trunk_states(params, cfg, ids, mask, out.tokens, out.mask, 1)
    used = np.concatenate([mask, np.asarray(out.mask)], 1)
    used[np.arange(3), 16 + np.asarray(out.lengths) - 1] = False  # each row's last token
    np.testing.assert_allclose(np.asarray(captured)[used], np.asarray(want)[used], atol=1e-5, rtol=0)
    lp = logprobs_from_layer(params, cfg, captured, mask, out.tokens, out.mask, 1.0, start=1)
    np.testing.assert_allclose(lp, out.model_logprobs, atol=2e-5)
    np.testing.assert_allclose(lp, continuation_logprobs(params, cfg, ids, mask, out.tokens, out.mask), atol=2e-5)
    with pytest.raises(ValueError, match=r"capture must be a layer index in \[0, 2\], got 3"):
        sampler.prefill(PROMPTS, 14, capture=3)


def test_sampling_logprobs_with_penalties_and_top_p_recomputed(tiny_model):
    cfg, params = tiny_model
    b = 3
    sp = SamplingParams.create(b, temperature=[0.9, 1.2, 0.7], top_p=[0.9, 0.8, 1.0], top_k=[0, 20, 10],
                               repetition_penalty=[1.3, 1.0, 0.9], presence_penalty=[0.5, 0.0, 1.0], max_new_tokens=10)
    out = Sampler(params, cfg).generate(PROMPTS, sp, key=jax.random.key(2), stop_tokens=[[]] * b)
    ids, mask = left_pad(PROMPTS, 16, 0)
    from spgg_jax.models.decoder import apply, positions_from_mask

    seq = jnp.concatenate([ids, out.tokens], 1)
    seq_mask = jnp.concatenate([mask, out.mask], 1)
    logits, _ = apply(params, cfg, seq, positions_from_mask(seq_mask), seq_mask)
    seen = np.zeros((b, cfg.vocab_size), bool)
    for r, p in enumerate(PROMPTS):
        seen[r, p] = True
    seen_gen = np.zeros_like(seen)
    for t in range(10):
        proc = sampling_logits(logits[:, 16 + t - 1], sp, jnp.asarray(seen), jnp.asarray(seen_gen))
        lp = np.asarray(jax.nn.log_softmax(proc))[np.arange(b), np.asarray(out.tokens[:, t])]
        np.testing.assert_allclose(lp, out.logprobs[:, t], atol=3e-5)
        for r in range(b):
            seen[r, int(out.tokens[r, t])] = True
            seen_gen[r, int(out.tokens[r, t])] = True


def test_max_new_tokens_and_stop_tokens_per_row(tiny_model):
    cfg, params = tiny_model
    sampler = Sampler(params, cfg, pad_id=0)
    greedy = sampler.generate(PROMPTS, SamplingParams.greedy(3, 12), stop_tokens=[[]] * 3)
    # stop row 0 at the token it emits 4th; row 1 has no stops; row 2 is capped at 3 tokens
    stop0 = int(greedy.tokens[0, 3])
    first = int(np.argmax(np.asarray(greedy.tokens[0]) == stop0))
    out = sampler.generate(PROMPTS, SamplingParams.greedy(3, [12, 12, 3]), stop_tokens=[[stop0], [], [63, 62]])
    lengths = np.asarray(out.lengths)
    assert lengths[0] == first + 1 and int(out.finish_reason[0]) == FINISH_STOP
    assert lengths[1] == 12 and int(out.finish_reason[1]) == FINISH_LENGTH
    assert lengths[2] == 3 and int(out.finish_reason[2]) == FINISH_LENGTH
    toks, m = np.asarray(out.tokens), np.asarray(out.mask)
    for r in range(3):
        assert m[r, : lengths[r]].all() and not m[r, lengths[r]:].any()
        assert np.all(toks[r, lengths[r]:] == 0)
        np.testing.assert_array_equal(toks[r, : lengths[r]], np.asarray(greedy.tokens)[r, : lengths[r]])


def test_no_recompile_when_values_change_and_lengths_are_bucketed(tiny_model):
    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    sampler.generate(PROMPTS, SamplingParams.create(3, temperature=0.5, max_new_tokens=10))
    before = sample_loop._cache_size()
    for kw in (dict(temperature=[0.0, 1.0, 2.0], top_p=[0.5, 0.9, 1.0], max_new_tokens=12),
               dict(top_k=[1, 7, 0], repetition_penalty=1.4, max_new_tokens=16),
               dict(presence_penalty=[0.1, 0.2, 0.3], max_new_tokens=[3, 16, 9])):
        sampler.generate(PROMPTS, SamplingParams.create(3, **kw), key=jax.random.key(5))
    sampler.generate([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [3], [4, 4]], SamplingParams.create(3, max_new_tokens=13))
    assert sample_loop._cache_size() == before
    sampler.generate(PROMPTS, SamplingParams.create(3, max_new_tokens=40))  # another generation bucket
    assert sample_loop._cache_size() == before + 1


def test_rng_reproducible(tiny_model):
    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    sp = SamplingParams.create(3, temperature=1.0, max_new_tokens=12)
    a = sampler.generate(PROMPTS, sp, key=jax.random.key(7), stop_tokens=[[]] * 3)
    b = sampler.generate(PROMPTS, sp, key=jax.random.key(7), stop_tokens=[[]] * 3)
    c = sampler.generate(PROMPTS, sp, key=jax.random.key(8), stop_tokens=[[]] * 3)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(np.asarray(a.tokens), np.asarray(c.tokens))


def test_sharded_batch_gives_same_greedy_tokens(tiny_model):
    from spgg_jax.parallel import MeshConfig, make_mesh

    cfg, params = tiny_model
    prompts = [PROMPTS[i % 3] + [i + 2] for i in range(8)]
    ref = Sampler(params, cfg).generate(prompts, SamplingParams.greedy(8, 10), stop_tokens=[[]] * 8)
    mesh = make_mesh(MeshConfig(data=8))
    out = Sampler(params, cfg, mesh=mesh).generate(prompts, SamplingParams.greedy(8, 10), stop_tokens=[[]] * 8)
    assert len(out.tokens.sharding.device_set) == 8
    np.testing.assert_array_equal(out.tokens, ref.tokens)


def test_batch_that_does_not_divide_the_mesh_is_padded_and_trimmed(tiny_model):
    from spgg_jax.parallel import MeshConfig, make_mesh

    cfg, params = tiny_model
    prompts = [PROMPTS[i % 3] + [i + 2] for i in range(5)]
    sp = SamplingParams.create(5, temperature=[0.0, 0.0, 0.0, 0.0, 0.0], max_new_tokens=[3, 10, 6, 10, 1])
    ref = Sampler(params, cfg).generate(prompts, sp, stop_tokens=[[]] * 5)
    sampler = Sampler(params, cfg, mesh=make_mesh(MeshConfig(data=8)))
    assert sampler.batch_multiple() == 8
    out = sampler.generate(prompts, sp, stop_tokens=[[]] * 5)
    assert out.tokens.shape == ref.tokens.shape  # the 3 padding rows are dropped
    np.testing.assert_array_equal(out.tokens, ref.tokens)
    np.testing.assert_array_equal(out.lengths, [3, 10, 6, 10, 1])
    [(rows, _)] = sampler._caches  # white-box: one cache of 8 rows, split over the 8 devices
    assert rows == 8


@pytest.mark.parametrize("kw, match", [
    (dict(temperature=-1.0), "temperature must be >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_k=-2), "top_k must be >= 0"),
    (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
    (dict(repetition_penalty=0.0), "repetition_penalty must be > 0"),
    (dict(temperature=float("nan")), "temperature must be finite"),
    (dict(temperature=[1.0, 2.0]), r"shape \[3\]"),
])
def test_sampling_params_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams.create(3, **kw)


def test_sampler_boundary_errors(tiny_model):
    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    with pytest.raises(ValueError, match="empty"):
        sampler.generate([[1], []], SamplingParams.greedy(2, 4))
    with pytest.raises(ValueError, match="a 200-token prompt plus 100 new tokens exceed the model's 256 positions"):
        sampler.generate([[1] * 200], SamplingParams.greedy(1, 100))
    with pytest.raises(ValueError, match="for 2 rows"):
        sampler.generate([[1]], SamplingParams.greedy(2, 4))
    chex.assert_equal(sampler.stop_matrix(2, [[5], [6, 7]]).shape, (2, 4))


def test_bucket_check_accepts_requests_that_fit():
    """A 20-token prompt + 16 new tokens fit a 37-position model although the buckets (32 + 16)
    do not: the buffers shrink to fit; a request that cannot fit is refused naming its sizes."""
    cfg = ModelConfig(family="llama", vocab_size=64, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2,
                      head_dim=8, d_ff=64, max_position_embeddings=37, eos_token_ids=(1,))
    params = init_params(cfg, jax.random.key(0))
    sampler = Sampler(params, cfg)
    assert sampler.lengths(20, 16) == (21, 16)
    assert sampler.lengths(3, 4) == (16, 16)  # buckets unchanged when they fit
    out = sampler.generate([[5] * 20], SamplingParams.greedy(1, 16))
    assert np.asarray(out.tokens).shape[1] == 16
    with pytest.raises(ValueError, match=r"a 22-token prompt plus 16 new tokens exceed the model's 37"):
        sampler.generate([[5] * 22], SamplingParams.greedy(1, 16))


def test_prefill_then_decode_equals_generate_and_features_pool_the_prompt(tiny_model):
    """The two-program path (prefill, policy, decode) samples exactly what the one-program path does."""
    from spgg_jax.rollout.episode import prompt_features

    cfg, params = tiny_model
    sampler = Sampler(params, cfg)
    sp = SamplingParams.create(3, temperature=[0.0, 0.8, 1.3], top_p=[1.0, 0.9, 0.7], repetition_penalty=1.2,
                               max_new_tokens=[5, 12, 9])
    ref = sampler.generate(PROMPTS, sp, key=jax.random.key(3))
    pre = sampler.prefill(PROMPTS, max_new=12)
    ids, mask = left_pad(PROMPTS, 16, 0)
    chex.assert_trees_all_close(pre.features, prompt_features(params, cfg, jnp.asarray(ids), jnp.asarray(mask)),
                                atol=1e-5, rtol=1e-5)
    out = sampler.decode(pre, sp, key=jax.random.key(3))
    for name in ("tokens", "mask", "lengths", "finish_reason"):
        np.testing.assert_array_equal(getattr(out, name), getattr(ref, name), err_msg=name)
    np.testing.assert_allclose(out.logprobs, ref.logprobs, atol=1e-5)
    with pytest.raises(ValueError, match="already decoded"):
        sampler.decode(pre, sp)
    with pytest.raises(ValueError, match="exceeds the 16 generation slots"):
        sampler.decode(sampler.prefill(PROMPTS, max_new=12), SamplingParams.greedy(3, 20))


@pytest.mark.parametrize("data", [1, 8])
def test_identical_prompts_are_prefilled_once_and_sample_as_if_each_ran(tiny_model, data):
    """A group of rollouts of one problem shares its prompt: the prefill runs the distinct prompts
    (a cache of 3 rows, not 7) and every row decodes exactly as the one-program path that runs
    each row's prompt, with the prompt's features and captured stream copied per row; on a mesh
    of 8 too (7 rows padded to 8, the distinct 3 to 8)."""
    from spgg_jax.parallel import MeshConfig, make_mesh

    cfg, params = tiny_model
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[2], PROMPTS[2], PROMPTS[1]]
    sp = SamplingParams.create(7, temperature=[1.0, 0.9, 1.1, 1.2, 0.0, 0.8, 1.0], max_new_tokens=[9, 12, 5, 12, 7, 3, 12])
    ref = Sampler(params, cfg).generate(prompts, sp, key=jax.random.key(4), capture=1)
    sampler = Sampler(params, cfg, mesh=make_mesh(MeshConfig(data=data)) if data > 1 else None)
    pre = sampler.prefill(prompts, 12, capture=1)
    assert sorted(rows for rows, _ in sampler._caches) == [8 if data > 1 else 3]  # white-box: the distinct rows' buffer
    alone = Sampler(params, cfg).prefill(PROMPTS, 12, capture=1)
    index = [0, 0, 1, 0, 2, 2, 1]
    np.testing.assert_allclose(pre.features, np.asarray(alone.features)[index], atol=1e-6)
    np.testing.assert_allclose(pre.prompt_trunk, np.asarray(alone.prompt_trunk)[index], atol=1e-6)
    out = sampler.decode(pre, sp, key=jax.random.key(4))
    for name in ("tokens", "mask", "lengths", "finish_reason"):
        np.testing.assert_array_equal(getattr(out, name), getattr(ref, name), err_msg=name)
    np.testing.assert_allclose(out.logprobs, ref.logprobs, atol=1e-5)
    np.testing.assert_allclose(out.trunk, ref.trunk, atol=1e-5)
    assert len(set(map(tuple, np.asarray(out.tokens)[[0, 1, 3]]))) > 1  # the group's samples differ
    if data > 1:
        assert len(out.tokens.sharding.device_set) == 8


def test_prompt_buckets_pad_at_most_a_quarter_above_128():
    from spgg_jax.sampling import prompt_bucket

    assert [prompt_bucket(n) for n in (1, 17, 100, 128, 129, 139, 161, 197, 256, 257, 300, 513)] == \
        [16, 32, 128, 128, 160, 160, 192, 224, 256, 320, 320, 640]
    for n in range(129, 3000):
        b = prompt_bucket(n)
        assert n <= b <= 1.25 * n + 1e-9 and prompt_bucket(b) == b
