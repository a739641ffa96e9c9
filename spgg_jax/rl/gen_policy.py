"""The generation-parameter policy (the paper's method, done right).

Per agent, a small Flax actor-critic maps a feature vector of the task and the predecessors'
outputs (the agent model's own pooled hidden states of its prompt, its one-hot id and position; no
random noise) to a proper distribution over the generation parameters it controls (any subset of
the six, in ``PARAM_NAMES`` order; the others keep the agent's configured values). Each controlled
parameter has a Beta(alpha, beta) distribution on (0, 1) (alpha, beta = 1 + softplus(.), so
unimodal), mapped ONCE affinely into its range (the paper's code squashed twice through sigmoids).
Log-probs and entropy are exact (sums over the Betas, in the unit space). Integer parameters (top_k,
max_new_tokens) are rounded after mapping; the log-prob is that of the continuous draw.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, digamma

from spgg_jax.sampling import SamplingParams
from spgg_jax.sampling.params import PARAM_NAMES
EPS = 1e-4


@dataclasses.dataclass(frozen=True)
class GenParamRanges:
    """Ranges the unit-interval draws are mapped into (inclusive)."""

    temperature: tuple[float, float] = (0.05, 1.5)
    top_p: tuple[float, float] = (0.5, 1.0)
    top_k: tuple[float, float] = (1.0, 200.0)
    max_new_tokens: tuple[float, float] = (16.0, 128.0)
    repetition_penalty: tuple[float, float] = (1.0, 1.5)
    presence_penalty: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        for name in PARAM_NAMES:
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"range of {name} must have low < high, got {(lo, hi)}")
        if self.temperature[0] < 0 or self.top_p[0] <= 0 or self.top_p[1] > 1 or self.top_k[0] < 1:
            raise ValueError(f"invalid generation-parameter ranges: {self}")
        if self.max_new_tokens[0] < 1 or self.repetition_penalty[0] <= 0:
            raise ValueError(f"invalid generation-parameter ranges: {self}")

    def bounds(self) -> tuple[jnp.ndarray, jnp.ndarray]:
        lo = jnp.array([getattr(self, n)[0] for n in PARAM_NAMES], jnp.float32)
        hi = jnp.array([getattr(self, n)[1] for n in PARAM_NAMES], jnp.float32)
        return lo, hi


def to_sampling_params(u: jax.Array, ranges: GenParamRanges, controls: Sequence[str] = PARAM_NAMES,
                       fixed: jax.Array | None = None) -> SamplingParams:
    """Map unit draws u f32[B, len(controls)] into a ``SamplingParams`` batch (integers rounded).

    Parameters not in ``controls`` take their values from ``fixed`` f32[6] (or f32[B, 6]), in
    ``PARAM_NAMES`` order (the agent's configured values).
    """
    lo, hi = ranges.bounds()
    idx = jnp.array([PARAM_NAMES.index(c) for c in controls], jnp.int32)
    mapped = lo[idx] + (hi[idx] - lo[idx]) * u
    if len(controls) == len(PARAM_NAMES) and tuple(controls) == PARAM_NAMES:
        x = mapped
    else:
        if fixed is None:
            raise ValueError(f"to_sampling_params: the parameters outside {list(controls)} need fixed values")
        x = jnp.broadcast_to(jnp.asarray(fixed, jnp.float32), mapped.shape[:-1] + (len(PARAM_NAMES),))
        x = x.at[..., idx].set(mapped)
    return SamplingParams(
        temperature=x[:, 0],
        top_p=jnp.clip(x[:, 1], 1e-3, 1.0),
        top_k=jnp.round(x[:, 2]).astype(jnp.int32),
        max_new_tokens=jnp.maximum(jnp.round(x[:, 3]), 1).astype(jnp.int32),
        repetition_penalty=x[:, 4],
        presence_penalty=x[:, 5],
    )


def beta_log_prob(u, a, b):
    u = jnp.clip(u, EPS, 1.0 - EPS)
    return (a - 1) * jnp.log(u) + (b - 1) * jnp.log1p(-u) - betaln(a, b)


def beta_entropy(a, b):
    return betaln(a, b) - (a - 1) * digamma(a) - (b - 1) * digamma(b) + (a + b - 2) * digamma(a + b)


class ActorCritic(nn.Module):
    """MLP torso -> Beta concentrations for ``n_params`` parameters, and a value head."""

    hidden: Sequence[int] = (128, 128)
    n_params: int = len(PARAM_NAMES)

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm()(x)
        for width in self.hidden:
            h = nn.tanh(nn.Dense(width)(h))
        conc = nn.Dense(2 * self.n_params, kernel_init=nn.initializers.orthogonal(0.01))(h)
        a, b = jnp.split(1.0 + nn.softplus(conc) , 2, axis=-1)
        v = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(h)[..., 0]
        return a, b, v


def policy_features(hidden_pooled, agent_index, n_agents: int):
    """Policy input: pooled hidden states f32[B, D] + the agent's one-hot and relative position."""
    b = hidden_pooled.shape[0]
    onehot = jnp.broadcast_to(jax.nn.one_hot(agent_index, n_agents), (b, n_agents))
    pos = jnp.full((b, 1), (agent_index + 1) / n_agents, jnp.float32)
    return jnp.concatenate([hidden_pooled.astype(jnp.float32), onehot, pos], axis=-1)


def to_unit(sp_values: dict, ranges: GenParamRanges, controls: Sequence[str] = PARAM_NAMES) -> jnp.ndarray:
    """Inverse of the range mapping: values of the ``controls`` -> unit draws u f32[len(controls)] (clipped)."""
    lo, hi = ranges.bounds()
    idx = jnp.array([PARAM_NAMES.index(c) for c in controls], jnp.int32)
    x = jnp.array([float(sp_values[n]) for n in controls], jnp.float32)
    return jnp.clip((x - lo[idx]) / (hi[idx] - lo[idx]), 0.0, 1.0)


def init_policy(key, feature_dim: int, hidden: Sequence[int] = (128, 128), init_u=None, concentration: float = 6.0,
                n_params: int = len(PARAM_NAMES)):
    """Random actor-critic weights. With ``init_u`` f32[n_params], each Beta starts with its mode at
    ``init_u`` (a = 1 + k u, b = 1 + k (1 - u), k = ``concentration``), so training starts from given
    generation parameters (e.g. the agent's configured ones) and explores around them."""
    params = ActorCritic(tuple(hidden), n_params).init(key, jnp.zeros((1, feature_dim)))["params"]
    if init_u is None:
        return params
    u = jnp.asarray(init_u, jnp.float32)
    inv_softplus = lambda y: jnp.log(jnp.expm1(jnp.maximum(y, 1e-3)))  # noqa: E731
    bias = jnp.concatenate([inv_softplus(concentration * u), inv_softplus(concentration * (1 - u))])
    head = f"Dense_{len(hidden)}"
    return {**params, head: {**params[head], "bias": bias}}


def _heads(params, features, hidden):
    n_params = params[f"Dense_{len(hidden)}"]["bias"].shape[-1] // 2
    return ActorCritic(tuple(hidden), n_params).apply({"params": params}, features)


def act(params, features, key, hidden: Sequence[int] = (128, 128)):
    """Sample unit draws u f32[B, P]; return (u, log_prob f32[B], value f32[B])."""
    a, b, v = _heads(params, features, hidden)
    u = jnp.clip(jax.random.beta(key, a, b), EPS, 1.0 - EPS)
    return u, jnp.sum(beta_log_prob(u, a, b), axis=-1), v


def evaluate(params, features, u, hidden: Sequence[int] = (128, 128)):
    """(log_prob f32[B], entropy f32[B], value f32[B]) of given draws under the current policy."""
    a, b, v = _heads(params, features, hidden)
    return jnp.sum(beta_log_prob(u, a, b), axis=-1), jnp.sum(beta_entropy(a, b), axis=-1), v


def mode(params, features, hidden: Sequence[int] = (128, 128)):
    """The most likely draw (Beta mode (a-1)/(a+b-2)) for deterministic evaluation."""
    a, b, _ = _heads(params, features, hidden)
    return jnp.clip((a - 1) / jnp.maximum(a + b - 2, 1e-6), EPS, 1.0 - EPS)
