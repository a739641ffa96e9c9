"""Team configuration: which agents play, in which order, with which models and generation settings.

``TeamConfig`` is a frozen dataclass read from JSON (``TeamConfig.from_json(path)``) or a dict; it is
validated at construction, and every error names the bad field and value. The fields of ``TeamConfig``
and ``AgentConfig`` are declared with :func:`spgg_jax.settings.setting` (default, range or choices,
one-line help): their checks, ``spgg train --help`` and docs/training.md's settings table come from
the declarations; the checks across fields (``c_min < c_max``) are written here. ``default_team`` builds
the solver / checker / finaliser team used by ``spgg eval --team default``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from typing import Any, Mapping, Sequence

from spgg_jax.registry import unknown_names
from spgg_jax.settings import declared, setting, setting_errors

OBSERVATIONS = ("fo", "po")
#: Final-answer rules (see docs/episodes.md): which turn's output is the team's answer.
FINALS = ("last", "last_answer", "integrator", "majority", "majority_integrator")
#: Rules under which agent 1 plays an extra integrator turn (n + 1 turns).
INTEGRATOR_FINALS = ("integrator", "majority_integrator")
#: What an agent's own-cost term is charged on in LLM episodes.
EFFORTS = ("tokens", "none")
#: Role prompt sets of ``default_team(roles=...)``.
ROLE_SETS = ("default", "verify")
DEFAULT_MODEL = "smollm2-135m-instruct"

#: Role prompts of the default team, by position (first, middle..., last). The last one must make the
#: agent give the answer in the task's answer format (which the prompt builder appends).
ROLE_SOLVER = (
    "You are agent {i} of {n} in a team that solves a problem in sequence. You go first: solve the "
    "problem carefully, step by step."
)
ROLE_CHECKER = (
    "You are agent {i} of {n} in a team that solves a problem in sequence. Check the previous "
    "agents' work for mistakes, fix them, and solve the problem yourself."
)
ROLE_FINALISER = (
    "You are agent {i} of {n}, the last agent of a team that solves a problem in sequence. Use the "
    "previous agents' work where it is right, correct it where it is wrong, and give the team's "
    "final answer in exactly the requested format."
)
ROLE_VERIFY_FIRST = (
    "You are agent {i} of {n} in a team that solves a problem in sequence. You go first: solve the "
    "problem carefully, step by step, and end with your final answer in exactly the requested format."
)
ROLE_VERIFIER = (
    "You are agent {i} of {n} in a team that solves a problem in sequence. Verify the previous "
    "agent's answer: redo the problem yourself. If their answer is right, confirm it by repeating the "
    "same final answer; if it is wrong, give the corrected final answer. Always end with the final "
    "answer in exactly the requested format."
)
ROLE_SINGLE = "You are a careful problem solver. Give the final answer in exactly the requested format."


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """One agent: a model, a role prompt and its fixed generation parameters.

    The generation parameters have ``spgg_jax.sampling.SamplingParams`` semantics (neutral values
    switch a feature off); a policy (``sampling_fn``) replaces them during RL.
    """

    name: str = setting("agent", doc="the agent's label, shown to later agents and in logs")
    model: str = setting(DEFAULT_MODEL, doc="a registered model (spgg models list), a Hugging Face directory or a "
                         ".gguf file")
    role: str = setting(ROLE_SINGLE, doc="the agent's system (role) prompt")
    temperature: float = setting(0.7, ge=0, doc="sampling temperature; 0: greedy")
    top_p: float = setting(0.95, gt=0, le=1, doc="nucleus sampling: the most likely tokens up to this probability; "
                           "1: off")
    top_k: int = setting(0, ge=0, note="0: off", doc="sampling among the k most likely tokens; 0: off")
    max_new_tokens: int = setting(128, ge=1, doc="the most tokens the agent generates in a turn")
    repetition_penalty: float = setting(1.0, gt=0, doc="penalty on tokens already in the context (transformers' "
                                        "definition); 1: off")
    presence_penalty: float = setting(0.0, doc="subtracted once from the logits of tokens already generated "
                                      "(OpenAI / vLLM definition); 0: off")

    def __post_init__(self) -> None:
        for f in ("top_k", "max_new_tokens"):  # a whole float (40.0, as JSON may write it) is that integer
            v = getattr(self, f)
            if isinstance(v, float) and v.is_integer():
                object.__setattr__(self, f, int(v))
        where = f"agent {self.name!r}: "
        errors = [e for d in declared(AgentConfig) if (e := d.error(where + d.name, getattr(self, d.name)))]
        errors += [f"{where}{f} must be a non-empty string, got {getattr(self, f)!r}" for f in ("name", "model")
                   if isinstance(getattr(self, f), str) and not getattr(self, f).strip()]
        if errors:
            raise ValueError("; ".join(errors))

    def sampling_kwargs(self) -> dict[str, Any]:
        """The generation parameters as ``SamplingParams.create`` keyword arguments."""
        return {f: getattr(self, f) for f in ("temperature", "top_p", "top_k", "max_new_tokens",
                                              "repetition_penalty", "presence_penalty")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AgentConfig":
        if not isinstance(d, Mapping):
            raise ValueError(f"an agent must be a JSON object, got {d!r:.80}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(unknown_names(f"field(s) of agent {d.get('name', '?')!r}:", unknown, known))
        return cls(**dict(d))


@dataclasses.dataclass(frozen=True)
class TeamConfig:
    """A team of agents playing the sequential protocol, and the game that rewards them.

    ``agents`` are the agents in acting order (n >= 1; the game needs n >= 2: a one-agent team is a
    single agent, not a game, and is rewarded with the task score S alone, :attr:`single`). The final-answer rules
    (``final``; chosen per problem by ``rollout.scoring.choose_final``): ``"last"`` the last agent's
    output; ``"last_answer"`` the latest agent output that contains an extractable answer (an agent that
    only comments does not erase a predecessor's answer); ``"integrator"`` after agents 1..n, agent 1
    writes the final answer having seen every output (n+1 turns); ``"majority"`` plurality vote over
    the n agents' extracted answers; ``"majority_integrator"`` the integrator turn is played and the
    vote is over the n+1 answers. Vote ties go to the answer given most recently.

    The effort (``effort="tokens"``): effort_i = agent i's generated tokens / the fixed ``token_budget``,
    clipped to [0, 1] and mapped into [c_min, c_max]; q_i, the measured quality, enters only the
    benefits. A row's own chosen limit never changes its effort. (The old field ``cost`` with
    ``"quality"`` is removed: it charged correctness.)
    """

    agents: tuple[AgentConfig, ...]
    observation: str = setting("fo", choices=OBSERVATIONS, doc="fo: agent i sees every predecessor's output; po: "
                               "only agent i-1's")
    final: str = setting("last", choices=FINALS, doc="which output is the team's answer (docs/episodes.md)")
    context_budget: int = setting(1024, ge=16, note="tokens", doc="the most prompt tokens of a turn; predecessors' "
                                  "outputs are truncated to fit, the task never is")
    c_min: float = setting(0.1, gt=0, doc="the game's smallest contribution (below c_max); quality scores in [0, 1] "
                           "map into [c_min, c_max]")
    c_max: float = setting(1.0, gt=0, doc="the game's largest contribution")
    reward: str = setting("mac_spgg", doc="a registered reward with a per-agent form (spgg game list)")
    reward_params: Mapping[str, Any] = setting(default_factory=dict, doc="the game's parameters beyond n, c_min, c_max "
                                               "and observation: the shared ones (kappa, B, cost, score, ...) and "
                                               "the reward variant's own (spgg game list)")
    effort: str = setting("tokens", choices=EFFORTS, doc="what the own-cost term is charged on: tokens (generated "
                          "tokens / token_budget) or none (no own-cost term)")
    token_budget: int = setting(0, ge=0, note="0: the largest max_new_tokens", doc="the tokens that make effort 1; "
                                "0: the largest max_new_tokens among the agents")
    scorer: str = setting("task", doc="the episode scorer that turns the outputs' texts into q and S (task, "
                          "shared_credit or a plugin's; rollout.scoring.EPISODE_SCORERS)")

    def __post_init__(self) -> None:
        agents = tuple(self.agents) if isinstance(self.agents, (list, tuple)) else self.agents
        if not isinstance(agents, tuple) or not agents:
            raise ValueError(f"team.agents must be a non-empty list of agents, got {self.agents!r:.80}")
        for i, a in enumerate(agents):
            if not isinstance(a, AgentConfig):
                raise ValueError(f"team.agents[{i}] must be an AgentConfig, got {type(a).__name__}")
        object.__setattr__(self, "agents", agents)
        errors = setting_errors(self, "team")
        errors += [f"team.{f} must be {what}, got ''" for f, what in (("reward", "a reward name"),
                                                                     ("scorer", "an episode scorer name"))
                   if getattr(self, f) == ""]
        if not errors:  # the checks across fields
            if not self.c_min < self.c_max:
                errors.append(f"team needs 0 < c_min < c_max, got c_min={self.c_min!r}, c_max={self.c_max!r}")
            clash = sorted({"n", "c_min", "c_max", "observation"} & set(self.reward_params))
            if clash:
                errors.append(f"team.reward_params must not set {clash}: they come from the team itself")
        if errors:
            raise ValueError("; ".join(errors))
        object.__setattr__(self, "reward_params", types.MappingProxyType(dict(self.reward_params)))

    # ------------------------------------------------------------------ derived
    @property
    def n(self) -> int:
        """Number of agents (players of the game)."""
        return len(self.agents)

    @property
    def single(self) -> bool:
        """One agent: no game. Its reward is the final task score S (GRPO's correctness reward, no own
        cost); ``reward`` and ``reward_params`` are not used (``rollout.scoring.episode_reward_terms``)."""
        return self.n == 1

    @property
    def n_turns(self) -> int:
        """LLM turns per episode: n, or n + 1 with an integrator."""
        return self.n + (1 if self.final in INTEGRATOR_FINALS else 0)

    @property
    def effort_budget(self) -> int:
        """Tokens that make effort 1: ``token_budget``, or the largest agent ``max_new_tokens`` if 0."""
        return self.token_budget if self.token_budget > 0 else max(a.max_new_tokens for a in self.agents)

    def turn_agent(self, turn: int) -> int:
        """Index of the agent acting at ``turn`` (the integrator turn n is agent 0)."""
        if not 0 <= turn < self.n_turns:
            raise ValueError(f"turn must be in [0, {self.n_turns}), got {turn}")
        return 0 if turn == self.n else turn

    def models(self) -> list[str]:
        """Distinct models in first-use order."""
        return list(dict.fromkeys(a.model for a in self.agents))

    def game_params(self):
        """Validated ``GameParams`` of the team's reward (``spgg_jax.game.make_params``); a single agent
        (:attr:`single`) plays no game: an error."""
        from spgg_jax.game import make_params

        if self.n < 2:
            raise ValueError(f"the game needs at least 2 agents, the team has {self.n} (a single agent is "
                             f"rewarded with the task score: no game parameters)")
        return make_params(self.reward, n=self.n, c_min=self.c_min, c_max=self.c_max,
                           observation=self.observation, **dict(self.reward_params))

    def replace(self, **changes: Any) -> "TeamConfig":
        """A validated copy with fields replaced."""
        return dataclasses.replace(self, **changes)

    def with_agent_overrides(self, **changes: Any) -> "TeamConfig":
        """A copy where every agent has ``changes`` applied (e.g. ``model=...``, ``max_new_tokens=...``)."""
        return self.replace(agents=tuple(dataclasses.replace(a, **changes) for a in self.agents))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["agents"] = [dataclasses.asdict(a) for a in self.agents]
        d["reward_params"] = dict(self.reward_params)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TeamConfig":
        if not isinstance(d, Mapping):
            raise ValueError(f"a team config must be a JSON object, got {d!r:.80}")
        if "cost" in d:
            raise ValueError(
                f"team field 'cost' (here {d['cost']!r}) was renamed to 'effort': write \"effort\": \"tokens\" "
                f"(own cost on generated tokens / token_budget) or \"effort\": \"none\" (no own-cost term); "
                f"\"cost\": \"quality\" was removed because it charged the agent's measured correctness as its "
                f"cost, so a right answer could pay less than a wrong one (docs/episodes.md). The cost FUNCTION "
                f"stays in reward_params.cost")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(unknown_names("team field(s)", unknown, known))
        if "agents" not in d:
            raise ValueError("a team config needs an 'agents' list")
        agents = d["agents"]
        if not isinstance(agents, Sequence) or isinstance(agents, (str, bytes)):
            raise ValueError(f"team 'agents' must be a list, got {agents!r:.80}")
        kw = dict(d)
        kw["agents"] = tuple(a if isinstance(a, AgentConfig) else AgentConfig.from_dict(a) for a in agents)
        kw.setdefault("reward_params", {})
        return cls(**kw)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TeamConfig":
        from spgg_jax.errors import read_text_file

        p = os.fspath(path)
        if not os.path.exists(p):
            raise FileNotFoundError(f"team config not found: {p!r}")
        text = read_text_file(p, "team config")  # a directory, UTF-16 or binary: one line naming it
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{p}: invalid JSON ({err.msg} at line {err.lineno})") from None
        try:
            return cls.from_dict(d)
        except ValueError as err:
            raise ValueError(f"{p}: {err}") from None

    def to_json(self, path: str | os.PathLike) -> None:
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


def default_roles(n: int, roles: str = "default") -> list[str]:
    """Role prompts for an n-agent team (n = 1: a single solver).

    ``roles="default"``: solver, checker(s), finaliser. ``roles="verify"``: a solver, then verifiers
    that each check the previous answer and either confirm it (repeating it) or correct it; pair it
    with ``final="last_answer"`` or ``"majority"`` so a verifier that does not answer erases nothing.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if roles not in ROLE_SETS:
        raise ValueError(f"roles must be one of {ROLE_SETS}, got {roles!r}")
    if n == 1:
        return [ROLE_SINGLE]
    if roles == "verify":
        roles_ = [ROLE_VERIFY_FIRST] + [ROLE_VERIFIER] * (n - 1)
        return [r.format(i=i + 1, n=n) for i, r in enumerate(roles_)]
    roles = [ROLE_SOLVER] + [ROLE_CHECKER] * (n - 2) + [ROLE_FINALISER]
    return [r.format(i=i + 1, n=n) for i, r in enumerate(roles)]


def default_team(model: str = DEFAULT_MODEL, n: int = 3, observation: str = "fo", *,
                 max_new_tokens: int = 128, temperature: float = 0.7, roles: str = "default",
                 **team_kwargs: Any) -> TeamConfig:
    """The solver / checker(s) / finaliser team (``roles="verify"``: solver / verifiers), every agent
    on ``model``."""
    if roles == "verify":
        names = ["solver"] + [f"verifier{i}" for i in range(1, n)] if n > 1 else ["solver"]
    else:
        names = (["solver"] + [f"checker{'' if n == 3 else i}" for i in range(1, n - 1)] + ["finaliser"]) if n > 1 else ["solver"]
    agents = tuple(
        AgentConfig(name=name, model=model, role=role, temperature=temperature, top_p=0.95,
                    max_new_tokens=max_new_tokens)
        for name, role in zip(names, default_roles(n, roles))
    )
    return TeamConfig(agents=agents, observation=observation, **team_kwargs)


def load_team(spec: str, model: str | None = None, **default_kwargs: Any) -> TeamConfig:
    """``"default"`` (optionally ``default:N``) or a JSON path; ``model`` replaces every agent's model."""
    if spec == "default" or spec.startswith("default:"):
        n = int(spec.split(":", 1)[1]) if ":" in spec else 3
        return default_team(model=model or DEFAULT_MODEL, n=n, **default_kwargs)
    team = TeamConfig.from_json(spec)
    return team.with_agent_overrides(model=model) if model else team
