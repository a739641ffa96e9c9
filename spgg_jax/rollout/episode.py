"""Episodes of the sequential protocol: agents 1..n (and an optional integrator) act in order.

Each turn is ONE batched sampler call over all problems. Text (not tokens) passes between agents,
so a team may mix models with different tokenizers; every distinct model is loaded once into a
:class:`ModelBundle`, and agents on the same model share its sampler (and its compiled programs).

The RL hook: ``sampling_fn(agent_index, features, key) -> (SamplingParams, record)`` chooses each
agent's generation parameters per row; ``record`` is the policy's own account of the turn (its
draws, log-probs, values, inputs: a typed structure its learner declares, or ``None``), which the
rollout does not look inside and returns as ``AgentTurn.policy`` for the learner's update.
``features`` are the agent model's final hidden states of its prompt, mean-pooled over real tokens
(from the sampler's prefill, which the decoding then continues from: the prompt runs once; no
random noise), or ``None`` unless ``need_features=True``. ``agent_params[i]`` replaces agent i's
weights (trained per-agent weights on a shared base model; same shapes, no recompilation).
``capture_layer=L`` keeps, for each agent turn, the residual stream entering layer L over the
prompt and the generated tokens (``AgentTurn.trunk``): a learner that trains only the layers from L
up reuses the rollout's forward instead of running the frozen trunk again.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

import jax
import numpy as np

from spgg_jax.models import forward, positions_from_mask
from spgg_jax.models.tokenizer import decode_batch, encode_batch, pad_id_of
from spgg_jax.parallel.loading import load_model
from spgg_jax.parallel.multihost import to_host
from spgg_jax.rollout.prompts import agent_turn_prompts
from spgg_jax.rollout.team import AgentConfig, TeamConfig
from spgg_jax.sampling import Sampler, SamplingParams
from spgg_jax.sampling.sampler import mean_pool
from spgg_jax.tasks import get_task

#: the type of a policy's per-turn record (``AgentTurn.policy``): declared by the learner
#: (``Learner.record_type``), opaque to the rollout
R = TypeVar("R")

#: ``(agent_index, features | None, key) -> (SamplingParams, record | None)``
SamplingFn = Callable[[int, Any, jax.Array], tuple[Any, Any]]


@dataclasses.dataclass
class ModelBundle:
    """One loaded model: config, weights, tokenizer and its sampler."""

    name: str
    cfg: Any
    params: Any
    tokenizer: Any
    sampler: Any

    @classmethod
    def create(cls, name: str, cfg: Any, params: Any, tokenizer: Any, **sampler_kwargs: Any) -> "ModelBundle":
        eos = tuple(cfg.eos_token_ids) or ((tokenizer.eos_token_id,) if tokenizer.eos_token_id is not None else ())
        sampler = Sampler(params, cfg, pad_id=pad_id_of(tokenizer), eos_ids=eos, **sampler_kwargs)
        return cls(name=name, cfg=cfg, params=params, tokenizer=tokenizer, sampler=sampler)


def load_bundles(team: TeamConfig, dtype: str = "float32",
                 loader: Callable[[str, str], tuple[Any, Any, Any]] | None = None,
                 mesh: Any = None, rules: Any = None, min_gen_bucket: int = 0) -> dict[str, ModelBundle]:
    """Load each distinct model of ``team`` once: ``{model_name: ModelBundle}``.

    ``loader(name, dtype) -> (cfg, params, tokenizer)`` defaults to
    ``spgg_jax.parallel.loading.load_model``. With a ``mesh`` the default loader places the weights by
    the logical-axis ``rules`` and every sampler splits its batch over the mesh (a custom loader must
    place the weights itself). ``min_gen_bucket`` pins the samplers' generation buffers to at least
    that many tokens (a policy that chooses max_new_tokens per row then compiles one program).
    """
    if loader is None:
        loader = lambda name, dt: load_model(name, dtype=dt, mesh=mesh, rules=rules)  # noqa: E731
    kw = {"min_gen_bucket": min_gen_bucket} if mesh is None else {"mesh": mesh, "rules": rules,
                                                                  "min_gen_bucket": min_gen_bucket}
    return {m: ModelBundle.create(m, *loader(m, dtype), **kw) for m in team.models()}


@dataclasses.dataclass
class AgentTurn(Generic[R]):
    """What one turn did, for the whole batch (numpy arrays; text beside them).

    ``prompt_ids``/``prompt_mask`` are left-padded (``[B, P]``); ``tokens``/``mask``/``logprobs``/
    ``model_logprobs`` are the sampler's right-padded outputs (``[B, T]``). ``policy`` is the record
    the ``sampling_fn`` returned for this turn (its learner's declared type, host arrays over the
    batch), or ``None``: no policy consulted (the integrator turn, a rollout without a
    ``sampling_fn``), or one that keeps no record (a deterministic evaluation).
    """

    turn: int
    agent: int
    model: str
    prompt_text: list[str]
    prompt_ids: np.ndarray
    prompt_mask: np.ndarray
    tokens: np.ndarray
    mask: np.ndarray
    logprobs: np.ndarray
    model_logprobs: np.ndarray
    lengths: np.ndarray
    finish_reason: np.ndarray
    output_text: list[str]
    sampling: Any
    features: np.ndarray | None
    exchanged_tokens: np.ndarray  # i32[B]: predecessor tokens included in this turn's prompts
    truncated: np.ndarray  # bool[B]: a predecessor output was shortened to fit the budget
    seconds: float
    phase_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # prefill, policy, decode (wall clock)
    policy: R | None = None  # the policy's record of the turn (the learner's declared type), or None
    # with capture_layer=L: the residual stream entering layer L over [prompt_ids | tokens], [B, P+T, D]
    # (the sampler's forward; each row's last generated token, which no forward ran, holds 0)
    trunk: np.ndarray | None = None
    trunk_layer: int | None = None


@dataclasses.dataclass
class EpisodeBatch(Generic[R]):
    """A batch of episodes: one :class:`AgentTurn` per turn (n, or n+1 with an integrator)."""

    problems: list[Any]
    turns: list[AgentTurn[R]]
    team: TeamConfig

    @property
    def batch(self) -> int:
        return len(self.problems)

    @property
    def final_text(self) -> list[str]:
        """The team's answers: the last turn's outputs (the last agent's, or the integrator's)."""
        return self.turns[-1].output_text

    @property
    def agent_turns(self) -> list[AgentTurn[R]]:
        """The n agent turns (the integrator turn excluded)."""
        return self.turns[: self.team.n]

    @property
    def llm_calls(self) -> int:
        """LLM calls made: one per problem per turn."""
        return self.batch * len(self.turns)

    @property
    def tokens_generated(self) -> np.ndarray:
        """i32[B, turns]: tokens each turn generated for each problem."""
        return np.stack([t.lengths for t in self.turns], axis=1).astype(np.int32)

    @property
    def prompt_tokens(self) -> int:
        """Real (unpadded) prompt tokens over every turn and problem: what the prefills processed."""
        return int(sum(int(np.sum(t.prompt_mask)) for t in self.turns))

    @property
    def tokens_exchanged(self) -> np.ndarray:
        """i32[B, turns]: predecessor tokens each turn read in its prompt."""
        return np.stack([t.exchanged_tokens for t in self.turns], axis=1).astype(np.int32)

    @property
    def seconds(self) -> float:
        return float(sum(t.seconds for t in self.turns))

    @property
    def phase_seconds(self) -> dict[str, float]:
        """Wall-clock seconds of each rollout phase (prefill, policy, decode), summed over turns."""
        out: dict[str, float] = {}
        for t in self.turns:
            for k, v in t.phase_seconds.items():
                out[k] = out.get(k, 0.0) + v
        return out


# ------------------------------------------------------------------------------------ features
@functools.partial(jax.jit, static_argnames=("cfg",))
def prompt_features(params: Any, cfg: Any, ids: jax.Array, mask: jax.Array) -> jax.Array:
    """f32[B, D]: final hidden states of the prompt, mean-pooled over real tokens, without a cache.

    The rollout takes the same features from the sampler's prefill (``Sampler.prefill``), which
    runs the prompt once for the policy and the decoding; this standalone forward is the reference.
    """
    hidden, _ = forward(params, cfg, ids, positions_from_mask(mask), mask)
    return mean_pool(hidden, mask)


def config_sampling(agent: AgentConfig, batch: int):
    """``SamplingParams`` for ``batch`` rows from an agent's fixed generation parameters."""
    return SamplingParams.create(batch, **agent.sampling_kwargs())


def encode_prompts(tokenizer: Any, texts: Sequence[str], add_special_tokens: Sequence[bool],
                   pad_to_multiple_of: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded ``(ids, mask)`` for prompts that may differ in ``add_special_tokens``."""
    flags = set(bool(a) for a in add_special_tokens)
    if len(flags) == 1:
        return encode_batch(tokenizer, list(texts), add_special_tokens=flags.pop(), pad_to_multiple_of=pad_to_multiple_of)
    rows = [tokenizer(t, add_special_tokens=bool(a))["input_ids"] for t, a in zip(texts, add_special_tokens)]
    length = -(-max(len(r) for r in rows) // pad_to_multiple_of) * pad_to_multiple_of
    ids = np.full((len(rows), length), pad_id_of(tokenizer), np.int32)
    mask = np.zeros((len(rows), length), bool)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = r
        mask[i, length - len(r):] = True
    return ids, mask


def _align_left(trunk: np.ndarray, width: int) -> np.ndarray:
    """A left-padded [B, W, D] stream on ``width`` columns: the last ``width`` (zeros on the left when short)."""
    w = trunk.shape[1]
    if w >= width:
        return trunk[:, w - width:]
    return np.concatenate([np.zeros((trunk.shape[0], width - w, trunk.shape[2]), trunk.dtype), trunk], axis=1)


def generate_batch(bundle: ModelBundle, texts: Sequence[str], add_special_tokens: Sequence[bool], sampling: Any,
                   key: jax.Array, params: Any = None, need_features: bool = False,
                   sampling_fn: Callable[[Any, jax.Array], tuple[Any, Any]] | None = None,
                   capture_layer: int | None = None) -> dict[str, Any]:
    """Encode, prefill, ask ``sampling_fn`` for parameters (given the prompt features), decode.

    The prompt runs through the model once: its pooled final hidden states are the policy's
    features and its KV cache is what decoding continues from. ``sampling`` (the agent's configured
    parameters) sizes the generation slots; a policy's rows may not ask for more. Returns a dict of
    numpy arrays and texts (``policy``: the record ``sampling_fn`` returned beside its parameters, as
    it returned it; ``None`` without one), with ``phase_seconds`` (prefill, policy, decode; compilation included;
    each phase waits for its device work before the clock is read). ``capture_layer=L`` adds ``trunk``:
    the residual stream entering layer L over ``[prompt_ids | tokens]`` (the prompt's columns as
    ``prompt_ids`` pads them).
    """
    ids, mask = encode_prompts(bundle.tokenizer, texts, add_special_tokens)
    prompts = [row[m].tolist() for row, m in zip(ids, mask)]
    k_policy, k_sample = jax.random.split(key)
    t0 = time.perf_counter()
    pre = bundle.sampler.prefill(prompts, int(np.max(np.asarray(sampling.max_new_tokens))), params=params,
                                 capture=capture_layer)
    # the prefill's time is its own: wait for it (else it is counted in the decode, which waits on it)
    jax.block_until_ready((pre.start, pre.pooled))
    feats = pre.features if need_features else None
    t1 = time.perf_counter()
    record = None
    if sampling_fn is not None:
        sampling, record = sampling_fn(feats, k_policy)
    t2 = time.perf_counter()
    out = to_host(bundle.sampler.decode(pre, sampling, key=k_sample))  # the whole batch on every process
    t3 = time.perf_counter()
    tokens, gmask = np.asarray(out.tokens), np.asarray(out.mask)
    trunk = None
    if capture_layer is not None:
        prompt_trunk = np.asarray(to_host(pre.prompt_trunk))
        trunk = np.concatenate([_align_left(prompt_trunk, ids.shape[1]), np.asarray(out.trunk)], axis=1)
    return dict(
        prompt_ids=ids, prompt_mask=mask, tokens=tokens, mask=gmask, logprobs=np.asarray(out.logprobs),
        model_logprobs=np.asarray(out.model_logprobs), lengths=np.asarray(out.lengths),
        finish_reason=np.asarray(out.finish_reason), output_text=decode_batch(bundle.tokenizer, tokens, gmask),
        sampling=sampling, policy=record, features=None if feats is None else to_host(feats),
        phase_seconds={"prefill": t1 - t0, "policy": t2 - t1, "decode": t3 - t2},
        trunk=trunk, trunk_layer=capture_layer if trunk is not None else None,
    )


def run_episodes(team: TeamConfig, bundles: Mapping[str, ModelBundle], problems: Sequence[Any], key: jax.Array,
                 sampling_fn: SamplingFn | None = None, agent_params: Sequence[Any] | None = None,
                 need_features: bool = False, answer_format: str | None = None,
                 on_turn: Callable[[AgentTurn], None] | None = None,
                 capture_layer: int | None = None) -> EpisodeBatch:
    """Play the team's protocol on ``problems`` (one batched sampler call per turn).

    Args:
      team: the team (observation, final, budget, agents).
      bundles: ``{model_name: ModelBundle}`` covering every agent's model (``load_bundles``).
      problems: ``spgg_jax.tasks.Problem`` list (all of one task).
      key: PRNG key; turn t uses ``fold_in(key, t)``.
      sampling_fn: ``(agent_index, features f32[B,D] | None, key) -> (SamplingParams, record)``;
        called once per AGENT turn (not for the integrator turn, which uses agent 1's fixed
        parameters). ``record`` (the learner's declared record type, or ``None``) becomes the
        turn's ``AgentTurn.policy``. ``None``: every agent uses its config's parameters.
      agent_params: per-agent weight overrides (``None`` entries keep the bundle's weights); the
        integrator turn uses agent 1's.
      need_features: compute prompt features for ``sampling_fn`` (else it gets ``None``).
      answer_format: overrides the task's answer-format instruction.
      on_turn: called with each finished turn (progress reporting).
      capture_layer: keep each agent turn's residual stream entering this layer (``AgentTurn.trunk``;
        not for the integrator turn).
    """
    problems = list(problems)
    if not problems:
        raise ValueError("run_episodes needs at least one problem")
    tasks = sorted({p.task for p in problems})
    if len(tasks) != 1:
        raise ValueError(f"problems of one batch must share a task, got {tasks}")
    missing = [m for m in team.models() if m not in bundles]
    if missing:
        raise ValueError(f"no ModelBundle for model(s) {missing}; loaded: {sorted(bundles)}")
    if agent_params is not None and len(agent_params) != team.n:
        raise ValueError(f"agent_params must have one entry per agent ({team.n}), got {len(agent_params)}")
    fmt = get_task(tasks[0]).answer_format if answer_format is None else answer_format
    b = len(problems)
    outputs: list[list[str]] = []
    turns: list[AgentTurn] = []
    for t in range(team.n_turns):
        t0 = time.perf_counter()
        ai = team.turn_agent(t)
        agent = team.agents[ai]
        bundle = bundles[agent.model]
        tps = agent_turn_prompts(bundle.tokenizer, team, t, problems, outputs, fmt)
        policy = None
        if sampling_fn is not None and t < team.n:
            policy = functools.partial(_call_policy, sampling_fn, ai)
        res = generate_batch(
            bundle, [p.text for p in tps], [p.add_special_tokens for p in tps], config_sampling(agent, b),
            jax.random.fold_in(key, t), params=None if agent_params is None else agent_params[ai],
            need_features=need_features and policy is not None, sampling_fn=policy,
            capture_layer=capture_layer if t < team.n else None,
        )
        turn = AgentTurn(
            turn=t, agent=ai, model=agent.model, prompt_text=[p.text for p in tps],
            exchanged_tokens=np.asarray([p.contribution_tokens for p in tps], np.int32),
            truncated=np.asarray([p.truncated for p in tps], bool), seconds=time.perf_counter() - t0, **res,
        )
        outputs.append(turn.output_text)
        turns.append(turn)
        if on_turn is not None:
            on_turn(turn)
    return EpisodeBatch(problems=problems, turns=turns, team=team)


def _call_policy(sampling_fn: SamplingFn, agent_index: int, feats: Any, key: jax.Array):
    return sampling_fn(agent_index, feats, key)
