"""A deterministic LLM judge of summaries (the paper's SummEval-style evaluator, without sampling).

For each dimension (relevance, coherence, consistency, fluency) the judge model reads a prompt that
asks for a 0-5 rating and ends right where the rating goes. ONE forward pass gives the next-token
distribution; with p_k the probability of the token for digit k (both "k" and " k" spellings when
the tokenizer has them) the dimension's score is the expectation ``sum_k k p_k / sum_k p_k`` in
[0, 5]. The judge's score is the mean over dimensions divided by 5, in [0, 1].

Any of our Flax models can judge (``LLMJudge.load(name)``); prompts of a batch (x 4 dimensions)
go through one jitted forward that only projects the last position onto the vocabulary. No
sampling: the paper's evaluator sampled scores at temperature 0.7, which made its reward noisy.
The expected rating is also smoother than the argmax rating.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spgg_jax.models import forward, logits_from_hidden, positions_from_mask
from spgg_jax.models.tokenizer import apply_chat_template, encode_batch, has_chat_template
from spgg_jax.parallel.loading import load_model
from spgg_jax.parallel.multihost import to_host

#: SummEval's dimension definitions (Fabbri et al., 2021), shortened.
DIMENSIONS: dict[str, str] = {
    "relevance": "selection of important content from the source; the summary should include only "
                 "important information from the article",
    "coherence": "the collective quality of all sentences; the summary should be well-structured and "
                 "well-organized, not a heap of related information",
    "consistency": "factual alignment between the summary and the article; the summary should contain "
                   "only statements that are entailed by the article, with no hallucinated facts",
    "fluency": "the quality of the individual sentences; they should be grammatical, well-written and "
               "easy to read",
}
MAX_RATING = 5
RATING_PREFIX = "Rating:"


def judge_messages(dimension: str, source: str, summary: str) -> list[dict[str, str]]:
    """Chat messages asking for a 0-5 rating of ``summary`` on ``dimension``."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown judge dimension {dimension!r}; known: {sorted(DIMENSIONS)}")
    system = "You are an expert evaluator of news article summaries."
    user = (
        f"Rate the summary of the article below for {dimension.upper()}: {DIMENSIONS[dimension]}.\n"
        f"Use an integer from 0 (worst) to {MAX_RATING} (best).\n\n"
        f"Article:\n{source.strip()}\n\nSummary:\n{summary.strip()}\n\n"
        f"Reply with the rating only, as '{RATING_PREFIX} N'."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_prompt(tokenizer: Any, dimension: str, source: str, summary: str) -> tuple[str, bool]:
    """``(text, add_special_tokens)`` ending in ``RATING_PREFIX`` so the next token is the rating."""
    msgs = judge_messages(dimension, source, summary)

    if has_chat_template(tokenizer):
        return apply_chat_template(tokenizer, msgs, add_generation_prompt=True) + RATING_PREFIX, False
    return msgs[0]["content"] + "\n\n" + msgs[1]["content"] + "\n\n" + RATING_PREFIX, True


def rating_token_ids(tokenizer: Any) -> np.ndarray:
    """i32[K, 6]: token ids spelling each rating 0..5 (K variants, e.g. "3" and " 3"; -1 = none)."""
    variants: list[list[int]] = []
    for fmt in ("{}", " {}"):
        row = []
        for k in range(MAX_RATING + 1):
            ids = tokenizer(fmt.format(k), add_special_tokens=False)["input_ids"]
            row.append(ids[0] if len(ids) == 1 else -1)
        if any(i >= 0 for i in row) and row not in variants:
            variants.append(row)
    if not variants or not any(all(i >= 0 for i in row) for row in variants):
        raise ValueError("the judge's tokenizer has no single-token spelling of every digit 0..5")
    return np.asarray(variants, np.int32)


@functools.partial(jax.jit, static_argnames=("cfg",))
def rating_probs(params: Any, cfg: Any, ids: jax.Array, mask: jax.Array, rating_ids: jax.Array) -> jax.Array:
    """f32[B, 6]: next-token probability mass on each rating (summed over its spellings).

    ``ids``/``mask`` are left-padded so the last column is every row's last real token.
    """
    hidden, _ = forward(params, cfg, ids, positions_from_mask(mask), mask)
    logits = logits_from_hidden(params, cfg, hidden[:, -1:])[:, 0].astype(jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1)
    valid = rating_ids >= 0
    picked = jnp.where(valid[None], probs[:, jnp.maximum(rating_ids, 0)], 0.0)  # [B, K, 6]
    return jnp.sum(picked, axis=1)


def expected_rating(probs: Any) -> np.ndarray:
    """``sum_k k p_k / sum_k p_k`` per row (in [0, MAX_RATING])."""
    p = np.asarray(probs, np.float64)
    k = np.arange(p.shape[-1], dtype=np.float64)
    return (p @ k / np.maximum(p.sum(-1), 1e-30)).astype(np.float32)


@dataclasses.dataclass
class LLMJudge:
    """Scores summaries with a Flax model's next-token rating distribution.

    ``max_source_tokens`` keeps the first tokens of long articles (the judge's context budget);
    ``batch_size`` prompts go through each forward pass (padded to multiples of ``pad_to``).
    """

    cfg: Any
    params: Any
    tokenizer: Any
    dimensions: tuple[str, ...] = tuple(DIMENSIONS)
    max_source_tokens: int = 768
    batch_size: int = 16
    pad_to: int = 64

    def __post_init__(self) -> None:
        bad = [d for d in self.dimensions if d not in DIMENSIONS]
        if bad or not self.dimensions:
            raise ValueError(f"judge dimensions must be a non-empty subset of {sorted(DIMENSIONS)}, got {self.dimensions}")
        self._rating_ids = jnp.asarray(rating_token_ids(self.tokenizer))

    @classmethod
    def load(cls, name_or_path: str = "smollm2-135m-instruct", dtype: str = "float32", mesh: Any = None,
             rules: Any = None, **kw: Any) -> "LLMJudge":
        """Load the judge model (placed by ``rules`` on ``mesh`` when one is given)."""
        cfg, params, tok = load_model(name_or_path, dtype=dtype, mesh=mesh, rules=rules)
        return cls(cfg, params, tok, **kw)

    def _truncate_source(self, source: str) -> str:
        ids = self.tokenizer(source, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_source_tokens:
            return source
        return self.tokenizer.decode(ids[: self.max_source_tokens], skip_special_tokens=True) + " [...]"

    def dimension_ratings(self, sources: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        """f32[B, len(dimensions)]: expected 0-5 rating per summary and dimension."""

        if len(sources) != len(summaries):
            raise ValueError(f"{len(sources)} sources but {len(summaries)} summaries")
        if not len(sources):
            return np.zeros((0, len(self.dimensions)), np.float32)
        srcs = [self._truncate_source(s) for s in sources]
        prompts = [judge_prompt(self.tokenizer, d, s, m) for s, m in zip(srcs, summaries) for d in self.dimensions]
        out = []
        for i in range(0, len(prompts), self.batch_size):
            chunk = prompts[i:i + self.batch_size]
            rows = len(chunk)
            chunk = chunk + [chunk[-1]] * (self.batch_size - rows)  # constant batch shape: one compile
            ids, mask = encode_batch(self.tokenizer, [c[0] for c in chunk], add_special_tokens=chunk[0][1],
                                     pad_to_multiple_of=self.pad_to)
            p = rating_probs(self.params, self.cfg, jnp.asarray(ids), jnp.asarray(mask), self._rating_ids)
            out.append(to_host(p)[:rows])  # the whole batch on every process
        ratings = expected_rating(np.concatenate(out))
        return ratings.reshape(len(sources), len(self.dimensions))

    def score(self, sources: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        """f32[B] in [0, 1]: mean expected rating over dimensions, divided by 5."""
        return (self.dimension_ratings(sources, summaries).mean(-1) / MAX_RATING).astype(np.float32)

    def __call__(self, problems: Sequence[Any], texts: Sequence[str]) -> np.ndarray:
        """Judge adapter for ``spgg_jax.rollout.scoring``: the source is ``metadata["source"]``
        (SummEval), else the problem prompt."""
        sources = [p.metadata.get("source", p.prompt) for p in problems]
        return self.score(sources, texts)
