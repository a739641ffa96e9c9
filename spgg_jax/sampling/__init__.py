"""Fast batched sampling: KV cache, ``lax.while_loop`` decode, per-row traced parameters.

See docs/sampling.md.
"""

from spgg_jax.sampling.logprobs import continuation_logprobs, logprobs_from_layer, trunk_states
from spgg_jax.sampling.params import SamplingParams
from spgg_jax.sampling.processors import apply_penalties, choose_tokens, sampling_logits
from spgg_jax.sampling.sampler import (
    FINISH_LENGTH,
    FINISH_REASONS,
    FINISH_STOP,
    SampleOutput,
    PrefilledBatch,
    Sampler,
    bucket,
    mean_pool,
    prompt_bucket,
    left_pad,
    sample_loop,
)

__all__ = [
    "SamplingParams", "SampleOutput", "Sampler", "PrefilledBatch", "sample_loop", "bucket", "prompt_bucket", "mean_pool", "left_pad", "continuation_logprobs",
    "logprobs_from_layer", "trunk_states",
    "apply_penalties", "sampling_logits", "choose_tokens", "FINISH_LENGTH", "FINISH_STOP", "FINISH_REASONS",
]
