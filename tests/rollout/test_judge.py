"""The LLM judge: deterministic expected ratings from next-token probabilities."""

from __future__ import annotations

import chex
import numpy as np
import pytest

from spgg_jax.tasks.judge import (
    DIMENSIONS,
    RATING_PREFIX,
    LLMJudge,
    expected_rating,
    judge_prompt,
    rating_token_ids,
)
from spgg_jax.rollout.testing import tiny_bundle, tiny_tokenizer

ARTICLE = ("The city council voted on Tuesday to build a new bridge across the river. The bridge will cost "
           "12 million dollars and open in 2027. Supporters say it will cut traffic in the old town.")
GOOD = "The council approved a 12 million dollar bridge that opens in 2027 to reduce old-town traffic."
BAD = "Bananas are yellow and the moon is made of cheese, said nobody."


def test_expected_rating_pure():
    np.testing.assert_allclose(expected_rating(np.eye(6)[[3]]), [3.0])
    np.testing.assert_allclose(expected_rating(np.full((1, 6), 0.01)), [2.5])
    np.testing.assert_allclose(expected_rating([[0.0, 0, 0, 0, 0.2, 0.2]]), [4.5])


def test_prompt_ends_at_rating():
    tok = tiny_tokenizer()
    text, special = judge_prompt(tok, "coherence", ARTICLE, GOOD)
    assert text.endswith(RATING_PREFIX) and not special and "COHERENCE" in text and GOOD in text
    ids = rating_token_ids(tok)
    assert ids.shape[1] == 6 and np.all(ids[0] >= 0)
    assert [tok.decode([i]) for i in ids[0]] == [str(k) for k in range(6)]
    with pytest.raises(ValueError, match="dimension"):
        judge_prompt(tok, "style", ARTICLE, GOOD)


@pytest.fixture(scope="module")
def tiny_judge():
    b = tiny_bundle(seed=1)
    return LLMJudge(b.cfg, b.params, b.tokenizer, batch_size=8, max_source_tokens=200)


def test_tiny_judge_range_determinism_batch_invariance(tiny_judge):
    sources = [ARTICLE, ARTICLE, ARTICLE[:80]]
    summaries = [GOOD, BAD, "x"]
    r = tiny_judge.dimension_ratings(sources, summaries)
    chex.assert_shape(r, (3, len(DIMENSIONS)))
    assert np.all((r >= 0) & (r <= 5))
    s = tiny_judge.score(sources, summaries)
    chex.assert_shape(s, (3,))
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(s, r.mean(1) / 5, rtol=1e-6)
    np.testing.assert_array_equal(tiny_judge.score(sources, summaries), s)  # deterministic
    alone = np.concatenate([tiny_judge.score([a], [m]) for a, m in zip(sources, summaries)])
    np.testing.assert_allclose(alone, s, atol=1e-5)  # batch composition and padding do not matter
    # the rating really depends on the input
    assert len({round(float(v), 6) for v in s}) > 1


@pytest.mark.real_model
@pytest.mark.slow
def test_smollm2_judge_two_summaries():
    judge = LLMJudge.load("smollm2-135m-instruct", batch_size=8)
    r = judge.dimension_ratings([ARTICLE, ARTICLE], [GOOD, BAD])
    assert np.all((r >= 0) & (r <= 5))
    s = judge.score([ARTICLE, ARTICLE], [GOOD, BAD])
    np.testing.assert_array_equal(s, judge.score([ARTICLE, ARTICLE], [GOOD, BAD]))
    print("SmolLM2 judge ratings (rows: good, bad; cols:", list(DIMENSIONS), ")\n", r, "\nscores", s)
    assert s[0] > s[1], f"the judge should prefer the faithful summary: {s}"
