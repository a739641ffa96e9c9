"""From episodes to the game: per-agent quality q, effort, the final answer, its score S, rewards.

The mapping keeps the game's incentive: R_i = benefit_i(q, S) - own_cost(effort_i) (the registered
variant's split, ``spgg_jax.game.rewards``), so at equal effort a correct contribution is never
rewarded less than a wrong one (docs/episodes.md, with a worked example).

- q_i (quality): agent i's OWN output scored on its own. Verifiable tasks (math, multiple choice,
  code) use the task scorer: correctness of the agent's extracted answer (0/1), partial credit for
  MBPP (fraction of asserts passed). Tasks without a verifiable answer (``summeval``) use an LLM
  judge (``spgg_jax.tasks.judge``) when one is given, else the task scorer's score (ROUGE-L F1).
  The score s in [0, 1] maps to q = c_min + (c_max - c_min) * s. q enters only the benefits.
- effort_i: agent i's generated tokens / the team's fixed ``effort_budget`` (``team.token_budget``,
  or the largest agent ``max_new_tokens`` when 0), clipped to [0, 1] and mapped into [c_min, c_max].
  The own-cost term is charged on it when ``team.effort == "tokens"``; ``"none"``: no own cost.
- final answer: per problem, the turn chosen by the team's rule (:func:`choose_final`: last,
  last_answer, integrator, majority, majority_integrator) from the outputs' extracted answers.
- S: the score in [0, 1] of the chosen final output, same scorer.

The text-to-score step (everything above but effort) is an *episode scorer*, registered in
:data:`EPISODE_SCORERS` and picked by ``team.scorer``: ``scorer(problems, outputs, *, team, judge)
-> TextScores`` (per-agent scores and S in [0, 1]). ``task`` is the default just described;
``shared_credit`` gives every agent the team's S; plugins register their own.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

from spgg_jax.registry import PLUGIN_HINT, Registry

#: scorers whose score is not a verifiable correctness signal (an LLM judge is preferred).
NON_VERIFIABLE_SCORERS = frozenset({"rouge_l"})

JudgeFn = Callable[[Sequence[Any], Sequence[str]], np.ndarray]


@struct.dataclass
class EpisodeScores:
    """Scores of a batch of episodes (all arrays)."""

    q: jnp.ndarray  # f32[B,n] quality (own output's score) in [c_min, c_max]
    S: jnp.ndarray  # f32[B] final task score in [0, 1]
    correct_final: jnp.ndarray  # bool[B]
    per_agent_correct: jnp.ndarray  # bool[B,n]
    effort: jnp.ndarray  # f32[B,n] token effort in [c_min, c_max] (tokens / fixed budget)
    agent_score: jnp.ndarray  # f32[B,n] raw per-agent scores in [0, 1]
    tokens: jnp.ndarray  # i32[B,n] tokens each agent generated
    final_turn: jnp.ndarray  # i32[B] the turn whose output is the team's answer (n = the integrator)


def is_verifiable(task: str) -> bool:
    """Whether ``task``'s scorer measures correctness (False: judged quality, e.g. summeval)."""
    from spgg_jax.tasks import get_task

    return get_task(task).scorer not in NON_VERIFIABLE_SCORERS


def to_contribution(score: Any, c_min: float, c_max: float) -> jnp.ndarray:
    """Map scores in [0, 1] linearly into [c_min, c_max] (clipped)."""
    s = jnp.clip(jnp.asarray(score, jnp.float32), 0.0, 1.0)
    return c_min + (c_max - c_min) * s


def effort_from_lengths(lengths: Any, token_budget: Any, c_min: float, c_max: float) -> jnp.ndarray:
    """Generated tokens over a FIXED token budget, clipped to [0, 1], mapped into [c_min, c_max].

    ``token_budget`` is one number for the whole team (``TeamConfig.effort_budget``), so a row's own
    chosen ``max_new_tokens`` does not change its effort and a truncated output costs what it
    generated.
    """
    budget = np.asarray(token_budget, np.float64)
    if budget.ndim != 0 or not np.isfinite(budget) or budget < 1:
        raise ValueError(f"token_budget must be one number >= 1 (tokens), got {token_budget!r}")
    frac = jnp.asarray(lengths, jnp.float32) / jnp.float32(budget)
    return to_contribution(frac, c_min, c_max)


def make_scores(agent_score: Any, agent_correct: Any, final_score: Any, final_correct: Any, lengths: Any,
                token_budget: Any, c_min: float, c_max: float, final_turn: Any = None) -> EpisodeScores:
    """Pure assembly of :class:`EpisodeScores` from per-agent / final scores and token counts.

    ``agent_score``, ``agent_correct``, ``lengths``: ``[B, n]``; ``final_score``, ``final_correct``
    and ``final_turn`` (default: the last agent, n - 1): ``[B]``; ``token_budget``: one number.
    """
    agent_score = jnp.asarray(agent_score, jnp.float32)
    if agent_score.ndim != 2:
        raise ValueError(f"agent_score must be [B, n], got shape {agent_score.shape}")
    b, n = agent_score.shape
    final_turn = np.full(b, n - 1, np.int32) if final_turn is None else final_turn
    for name, v in (("agent_correct", agent_correct), ("lengths", lengths)):
        if np.shape(v) != agent_score.shape:
            raise ValueError(f"{name} must have shape {agent_score.shape}, got {np.shape(v)}")
    for name, v in (("final_score", final_score), ("final_correct", final_correct), ("final_turn", final_turn)):
        if np.shape(v) != (b,):
            raise ValueError(f"{name} must have shape {(b,)}, got {np.shape(v)}")
    return EpisodeScores(
        q=to_contribution(agent_score, c_min, c_max),
        S=jnp.clip(jnp.asarray(final_score, jnp.float32), 0.0, 1.0),
        correct_final=jnp.asarray(final_correct, bool),
        per_agent_correct=jnp.asarray(agent_correct, bool),
        effort=effort_from_lengths(lengths, token_budget, c_min, c_max),
        agent_score=jnp.clip(agent_score, 0.0, 1.0),
        tokens=jnp.asarray(lengths, jnp.int32),
        final_turn=jnp.asarray(final_turn, jnp.int32),
    )


# ------------------------------------------------------------------------------------ final answers
def vote_key(answer: Any) -> str | None:
    """Canonical form of an extracted answer for voting (None: no answer).

    Numbers compare as exact rationals ("4", "4.0" and "8/2" are one vote); anything else by its
    stripped, lower-cased text.
    """
    if answer is None:
        return None
    s = str(answer).strip()
    if not s:
        return None
    try:
        return str(Fraction(s.replace(",", "")))
    except (ValueError, ZeroDivisionError, OverflowError):
        return s.lower()


def choose_final_one(rule: str, n: int, answers: Sequence[Any]) -> int:
    """The turn (0-based) whose output is the team's answer for ONE problem.

    ``answers[t]`` is turn t's extracted answer (None when it has none): n agent turns, plus the
    integrator's (turn n) under the integrator rules.

    - ``last``: turn n - 1. ``integrator``: turn n.
    - ``last_answer``: the latest agent turn with an answer (none has one: n - 1), so an agent that
      only verifies without answering does not erase a predecessor's answer.
    - ``majority`` (agents' turns 0..n-1) / ``majority_integrator`` (0..n): plurality vote over the
      answers (``vote_key``). Tie-break: the tied answer given MOST RECENTLY wins, represented by its
      latest turn. Reason: later turns have read more of the team's work, and with no agreement at
      all (every answer distinct) the rule then reduces to ``last`` / ``integrator``, the protocol's
      own choice; it also keeps the vote monotone: one more vote for an answer never makes it lose.
      No answer at all: the last voting turn.
    """
    from spgg_jax.rollout.team import FINALS

    if rule not in FINALS:
        raise ValueError(f"final rule must be one of {FINALS}, got {rule!r}")
    voters = n + 1 if rule in ("integrator", "majority_integrator") else n
    if len(answers) < voters:
        raise ValueError(f"final rule {rule!r} needs {voters} turns' answers for n={n}, got {len(answers)}")
    if rule in ("last", "integrator"):
        return voters - 1
    keys = [vote_key(a) for a in answers[:voters]]
    if rule == "last_answer":
        return next((t for t in range(voters - 1, -1, -1) if keys[t] is not None), voters - 1)
    counts: dict[str, int] = {}
    latest: dict[str, int] = {}
    for t, k in enumerate(keys):
        if k is not None:
            counts[k] = counts.get(k, 0) + 1
            latest[k] = t
    if not counts:
        return voters - 1
    return latest[max(counts, key=lambda k: (counts[k], latest[k]))]


def choose_final(rule: str, n: int, answers: Sequence[Sequence[Any]]) -> np.ndarray:
    """i32[B]: :func:`choose_final_one` per problem; ``answers[t][b]`` = turn t's answer on problem b."""
    b = len(answers[0]) if len(answers) else 0
    return np.asarray([choose_final_one(rule, n, [a[i] for a in answers]) for i in range(b)], np.int32)


# ------------------------------------------------------------------------------------ scoring
def score_texts_extracted(problems: Sequence[Any], texts: Sequence[str], judge: JudgeFn | None = None,
                          max_workers: int | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """``(score f32[B], correct bool[B], extracted)``: task scorer, or ``judge`` for judged tasks.

    With a judge, "correct" means judge score >= 0.5 and nothing is extracted (None).
    """
    from spgg_jax.tasks import score_batch

    if len(problems) != len(texts):
        raise ValueError(f"{len(problems)} problems but {len(texts)} texts")
    if judge is not None and not all(is_verifiable(p.task) for p in problems):
        s = np.asarray(judge(problems, texts), np.float32)
        if s.shape != (len(texts),) or not np.all((s >= 0) & (s <= 1)):
            raise ValueError(f"judge must return [B] scores in [0, 1], got shape {s.shape}")
        return s, s >= 0.5, [None] * len(texts)
    results = score_batch(list(problems), list(texts), max_workers=max_workers)
    return (np.asarray([r.score for r in results], np.float32), np.asarray([r.correct for r in results], bool),
            [r.extracted for r in results])


def score_texts(problems: Sequence[Any], texts: Sequence[str], judge: JudgeFn | None = None,
                max_workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(score f32[B], correct bool[B])`` of completions (see :func:`score_texts_extracted`)."""
    s, c, _ = score_texts_extracted(problems, texts, judge, max_workers)
    return s, c


def select_final(final_turn: Any, per_turn: Sequence[tuple[np.ndarray, np.ndarray, list]]):
    """``(score, correct, extracted)`` of each row's chosen turn from per-turn scoring results."""
    ft = np.asarray(final_turn)
    rows = np.arange(len(ft))
    sc = np.stack([p[0] for p in per_turn], 1)[rows, ft]
    ok = np.stack([p[1] for p in per_turn], 1)[rows, ft]
    ext = [per_turn[t][2][i] for i, t in enumerate(ft)]
    return sc, ok, ext


# ------------------------------------------------------------------------------------ episode scorers
@dataclasses.dataclass(frozen=True)
class TextScores:
    """What an episode scorer returns for a batch of B problems and an n-agent team (numpy arrays).

    ``agent_score`` f32[B, n]: each agent's contribution in [0, 1] (q before the linear map into
    [c_min, c_max]); ``final_score`` f32[B]: the team's score S in [0, 1]. Optional:
    ``agent_correct`` bool[B, n] and ``final_correct`` bool[B] (default: score >= 0.5, for accuracy
    metrics), ``final_turn`` i32[B] (the turn whose output is the team's answer, for logs; default
    the last agent, n - 1).
    """

    agent_score: Any
    final_score: Any
    agent_correct: Any = None
    final_correct: Any = None
    final_turn: Any = None


#: ``scorer(problems, outputs, *, team, judge=None) -> TextScores``: ``outputs[b]`` holds problem b's
#: texts in turn order (``team.n_turns`` of them: the n agents, then the integrator's under the
#: integrator rules). Select with ``team.scorer``; register with :func:`register_episode_scorer`.
EPISODE_SCORERS: Registry[Callable[..., TextScores]] = Registry("episode scorer", hint=PLUGIN_HINT)


def register_episode_scorer(name: str, *, overwrite: bool = False):
    """Decorator registering ``scorer(problems, outputs, *, team, judge=None) -> TextScores``."""
    return EPISODE_SCORERS.register(name, overwrite=overwrite)


def _check_text_scores(name: str, out: Any, b: int, n: int, n_turns: int) -> TextScores:
    """The scorer's output checked at the boundary: shapes, ranges, defaults filled in."""
    if not isinstance(out, TextScores):
        raise ValueError(f"episode scorer {name!r} must return a TextScores, got {type(out).__name__}")
    agent = np.asarray(out.agent_score, np.float32)
    final = np.asarray(out.final_score, np.float32)
    for what, v, shape in (("agent_score", agent, (b, n)), ("final_score", final, (b,))):
        if v.shape != shape:
            raise ValueError(f"episode scorer {name!r}: {what} must have shape {shape}, got {v.shape}")
        if not np.all(np.isfinite(v) & (v >= 0) & (v <= 1)):
            raise ValueError(f"episode scorer {name!r}: {what} must lie in [0, 1], got {v.ravel()[:6].tolist()}")
    agent_ok = agent >= 0.5 if out.agent_correct is None else np.asarray(out.agent_correct, bool)
    final_ok = final >= 0.5 if out.final_correct is None else np.asarray(out.final_correct, bool)
    turn = np.full(b, n - 1, np.int32) if out.final_turn is None else np.asarray(out.final_turn, np.int32)
    for what, v, shape in (("agent_correct", agent_ok, (b, n)), ("final_correct", final_ok, (b,)),
                           ("final_turn", turn, (b,))):
        if v.shape != shape:
            raise ValueError(f"episode scorer {name!r}: {what} must have shape {shape}, got {v.shape}")
    if not np.all((turn >= 0) & (turn < n_turns)):
        raise ValueError(f"episode scorer {name!r}: final_turn must lie in [0, {n_turns}), got {turn[:6].tolist()}")
    return TextScores(agent, final, agent_ok, final_ok, turn)


def score_texts_with(name: str, problems: Sequence[Any], outputs: Sequence[Sequence[str]], team: Any,
                     judge: JudgeFn | None = None) -> TextScores:
    """Run the registered episode scorer ``name`` on ``outputs[b][t]`` and check what it returns."""
    scorer = EPISODE_SCORERS.get(name)
    if len(outputs) != len(problems) or any(len(o) != team.n_turns for o in outputs):
        raise ValueError(f"episode scorer {name!r}: need {team.n_turns} outputs for each of {len(problems)} "
                         f"problems, got {[len(o) for o in outputs][:6]}")
    out = scorer(list(problems), [list(o) for o in outputs], team=team, judge=judge)
    return _check_text_scores(name, out, len(problems), team.n, team.n_turns)


@register_episode_scorer("task")
def task_scorer(problems, outputs, *, team, judge=None) -> TextScores:
    """Every turn scored on its own by the task's scorer (an LLM judge for unverifiable tasks when one
    is given); each problem's final answer chosen by ``team.final``; S is that turn's score."""
    per = [score_texts_extracted(problems, [o[t] for o in outputs], judge) for t in range(team.n_turns)]
    final_turn = choose_final(team.final, team.n, [p[2] for p in per])
    final_score, final_correct, _ = select_final(final_turn, per)
    return TextScores(np.stack([s for s, _, _ in per[: team.n]], axis=1), final_score,
                      np.stack([c for _, c, _ in per[: team.n]], axis=1), final_correct, final_turn)


@register_episode_scorer("shared_credit")
def shared_credit_scorer(problems, outputs, *, team, judge=None) -> TextScores:
    """As ``task`` for S, but every agent's q is the team's S (no individual credit: the ablation where
    an agent's own output matters only through the team's answer)."""
    t = task_scorer(problems, outputs, team=team, judge=judge)
    return TextScores(np.repeat(t.final_score[:, None], team.n, 1), t.final_score,
                      np.repeat(np.asarray(t.final_correct)[:, None], team.n, 1), t.final_correct, t.final_turn)


def score_episodes(batch: Any, team: Any = None, judge: JudgeFn | None = None) -> EpisodeScores:
    """q_i, S and effort of every episode: the team's episode scorer (``team.scorer``, default
    ``task``: every agent's own output scored, the final answer chosen by ``team.final`` and scored)
    on the batch's texts, plus token effort from the generated lengths."""
    team = batch.team if team is None else team
    if len(batch.turns) != team.n_turns:
        raise ValueError(f"team final={team.final!r} plays {team.n_turns} turns, the batch has {len(batch.turns)}")
    outputs = [[t.output_text[i] for t in batch.turns] for i in range(len(batch.problems))]
    out = score_texts_with(team.scorer, batch.problems, outputs, team, judge)
    lengths = np.stack([t.lengths for t in batch.agent_turns], axis=1)
    return make_scores(out.agent_score, out.agent_correct, out.final_score, out.final_correct, lengths,
                       team.effort_budget, team.c_min, team.c_max, final_turn=out.final_turn)


#: an agent free-rides when it spends at most this share of the token budget (the game-level learners'
#: ``free_ride_frac`` on the contribution range)
FREE_RIDE_FRAC = 0.05


def free_riding(scores: EpisodeScores, team: Any, frac: float = FREE_RIDE_FRAC) -> np.ndarray:
    """bool[B, n]: agent i spent at most ``frac`` of the team's token budget (its effort is at the
    game's minimum contribution, whatever its answer's correctness)."""
    return np.asarray(scores.tokens) <= frac * team.effort_budget


# ------------------------------------------------------------------------------------ contributing nothing
#: words of an answer statement ("So the final answer is", "Answer:") and fence/markup words: what may
#: surround an answer in an output that says nothing else
_STATEMENT_WORDS = re.compile(r"(?i)\b(?:so|thus|therefore|hence|the|final|answer|answers|is|was|python|py)\b"
                              r"|\\(?:boxed|fbox|text)|####")
_NUMBER = re.compile(r"[-\u2212]?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def answer_text(problem: Any, text: str) -> str | None:
    """The answer ``text`` states for ``problem``, by its task's scorer, without running code or a judge:
    the extracted number (``math``), LaTeX answer (``math_latex``) or option letter
    (``multiple_choice``), the code (code tasks), else the stripped text; None when there is none."""
    from spgg_jax.tasks import get_task
    from spgg_jax.tasks.code import extract_code
    from spgg_jax.tasks.extract import extract_choice, extract_math_answer

    text = text if isinstance(text, str) else ""
    scorer = get_task(problem.task).scorer
    if scorer in ("math", "math_latex"):
        return extract_math_answer(text, numeric=scorer == "math").answer
    if scorer == "multiple_choice":
        choices = problem.metadata.get("choices") or ()
        return extract_choice(text, n_choices=len(choices) or 4, choices=choices).answer
    if scorer in ("humaneval", "humaneval_classic", "mbpp", "mbpp_classic"):
        return extract_code(text, problem.metadata.get("entry_point")).strip() or None
    return text.strip() or None


def is_bare_answer(text: str, answer: Any) -> bool:
    """Whether ``text`` holds nothing but a statement of ``answer``: with the answer (and numbers equal to
    it), answer-statement words ("so the final answer is", "Answer:", ``\\boxed``, ``####``, code fences)
    and punctuation taken out, no letter or digit is left."""
    key = vote_key(answer)
    if key is None:
        return False
    rest = text.replace(str(answer).strip(), " ") if len(str(answer).strip()) > 1 else \
        re.sub(rf"(?<![A-Za-z0-9]){re.escape(str(answer).strip())}(?![A-Za-z0-9])", " ", text)
    rest = _NUMBER.sub(lambda m: " " if vote_key(m.group(0).replace("\u2212", "-")) == key else m.group(0), rest)
    rest = _STATEMENT_WORDS.sub(" ", rest)
    return re.search(r"[^\W_]", rest) is None


def contributes_nothing(problems: Sequence[Any], outputs: Sequence[Sequence[str]], n: int | None = None) -> np.ndarray:
    """bool[B, n]: agent i's output on problem b contributes nothing: it is empty or whitespace, states no
    answer (:func:`answer_text`), or is a bare copy of a predecessor's answer (the same answer as an
    earlier agent's, :func:`vote_key`, and nothing else: :func:`is_bare_answer`).

    ``outputs[b][t]`` are problem b's texts in turn order (the first ``n`` are the agents', default all).
    """
    if len(outputs) != len(problems):
        raise ValueError(f"{len(problems)} problems but {len(outputs)} rows of outputs")
    n = len(outputs[0]) if n is None and len(outputs) else (n or 0)
    out = np.zeros((len(problems), n), bool)
    for b, (p, texts) in enumerate(zip(problems, outputs)):
        if len(texts) < n:
            raise ValueError(f"problem {b}: {len(texts)} outputs for {n} agents")
        keys = []
        for i in range(n):
            text = texts[i] if isinstance(texts[i], str) else ""
            ans = answer_text(p, text) if text.strip() else None
            key = vote_key(ans)
            out[b, i] = key is None or (key in keys and is_bare_answer(text, ans))
            keys.append(key)
    return out


def batch_contributes_nothing(batch: Any) -> np.ndarray:
    """:func:`contributes_nothing` of an :class:`~spgg_jax.rollout.episode.EpisodeBatch`'s agent turns."""
    turns = batch.agent_turns
    return contributes_nothing(batch.problems, [[t.output_text[i] for t in turns] for i in range(batch.batch)],
                               len(turns))


def check_team_reward(team: Any) -> None:
    """The team's reward can reward LLM episodes: a per-agent form (S is measured, not derived from
    q), and an own-cost term when the team charges token effort."""
    from spgg_jax.game import get_reward

    spec = get_reward(team.reward)
    if spec.per_agent is None:
        raise ValueError(f"reward {team.reward!r} has no per-agent form, so it cannot take a measured final score: "
                         f"register it with register_per_agent_reward")
    if team.effort == "tokens" and spec.own_cost_name == "none":
        raise ValueError(
            f"reward {team.reward!r} declares no own-cost term (own_cost='none'), so effort='tokens' has "
            f"nothing to charge: register it with register_per_agent_reward(..., own_cost=...) or set the "
            f"team's effort to 'none'")


def episode_reward_terms(scores: EpisodeScores, team: Any, params: Any = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(benefit, own_cost)`` f32[B, n]: R = benefit - own_cost (own_cost is 0 when effort="none").

    A single agent (``team.single``) plays no game: its benefit is the final task score S and it pays
    no own cost (the correctness reward of single-agent GRPO); ``params`` is not used."""
    from spgg_jax.game.rewards import reward_terms_given_score

    if team.single:
        s = jnp.asarray(scores.S, jnp.float32)[:, None]
        return s, jnp.zeros_like(s)
    params = team.game_params() if params is None else params
    check_team_reward(team)
    benefit, cost = reward_terms_given_score(team.reward, scores.q, scores.S, params, effort=scores.effort)
    if team.effort == "none":
        cost = jnp.zeros_like(cost)
    return benefit, cost


def episode_rewards(scores: EpisodeScores, team: Any, params: Any = None) -> jnp.ndarray:
    """f32[B, n] rewards R_i = benefit_i(q, S) - own_cost(effort_i) of the team's reward variant.

    q enters only the benefits; the own cost (pgg/spgg: effort_i, mac_spgg: C(effort_i)) is charged
    on token effort when ``team.effort == "tokens"`` and dropped when ``"none"``. ``params``
    defaults to ``team.game_params()``.
    """
    benefit, cost = episode_reward_terms(scores, team, params)
    return benefit - cost
