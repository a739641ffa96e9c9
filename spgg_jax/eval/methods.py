"""Baselines and the sequential protocol as evaluation methods (registry ``METHODS``).

Every method is ``method(ctx: EvalContext, problems, key) -> MethodResult`` and batches across
problems in every sampler call (never a batch-size-1 loop); rows of agents that share a model go
into one call of that model's sampler. Generation parameters come from the team's agents (single,
few-shot, CoT and self-consistency use agent 1's model and parameters, debate uses all agents).

Accounting per problem: ``llm_calls`` (one per generated completion), ``tokens_generated``
(sampled tokens, stop token included), ``tokens_exchanged`` (tokens of OTHER agents' outputs
placed in prompts, counted with the receiving model's tokenizer, after truncation).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from spgg_jax.registry import Registry
from spgg_jax.rollout.episode import ModelBundle, generate_batch, run_episodes
from spgg_jax.rollout.prompts import DEBATE_HEADER, Contribution, render_messages, turn_prompt
from spgg_jax.rollout.scoring import is_verifiable
from spgg_jax.rollout.team import ROLE_SINGLE, AgentConfig, TeamConfig
from spgg_jax.sampling import SamplingParams
from spgg_jax.tasks import get_task, load_task, score_batch

COT_INSTRUCTION = "Let's think step by step: reason through the problem first, then give the final answer."
DEBATE_ROLE = ("You are one of several agents debating a problem. Solve it yourself; when other agents' "
               "answers are shown, check them critically and give your own final answer.")
DEBATE_CLOSING = "Taking the other agents' answers into account, write your updated response and final answer."


@dataclasses.dataclass
class EvalContext:
    """Everything a method needs besides the problems.

    ``options``: ``shots`` (few-shot examples, 3), ``samples`` (self-consistency k, 5),
    ``rounds`` (debate rounds, 2), ``split`` (the evaluated split, for few-shot fallbacks),
    ``judge`` (optional ``(problems, texts) -> scores`` for non-verifiable tasks).
    """

    team: TeamConfig
    bundles: Mapping[str, ModelBundle]
    task: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    on_call: Callable[[str], None] | None = None

    @property
    def answer_format(self) -> str:
        return self.options.get("answer_format") or get_task(self.task).answer_format

    def option(self, name: str, default: Any) -> Any:
        return self.options.get(name, default)


@dataclasses.dataclass
class MethodResult:
    """Per-problem outcome of one method."""

    method: str
    problems: list[Any]
    final_text: list[str]
    extracted: list[str | None]
    correct: np.ndarray  # bool[B]
    score: np.ndarray  # f32[B] in [0, 1]
    tokens_generated: np.ndarray  # i32[B]
    llm_calls: np.ndarray  # i32[B]
    tokens_exchanged: np.ndarray  # i32[B]
    seconds: float
    details: list[dict[str, Any]]  # per problem: every completion and extra facts

    def summary(self) -> dict[str, Any]:
        b = len(self.problems)
        return {
            "method": self.method,
            "problems": b,
            "accuracy": float(np.mean(self.correct)) if b else 0.0,
            "score": float(np.mean(self.score)) if b else 0.0,
            "tokens_generated": int(np.sum(self.tokens_generated)),
            "tokens_generated_per_problem": float(np.mean(self.tokens_generated)) if b else 0.0,
            "llm_calls": int(np.sum(self.llm_calls)),
            "llm_calls_per_problem": float(np.mean(self.llm_calls)) if b else 0.0,
            "tokens_exchanged": int(np.sum(self.tokens_exchanged)),
            "tokens_exchanged_per_problem": float(np.mean(self.tokens_exchanged)) if b else 0.0,
            "wall_s": float(self.seconds),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-friendly dict per problem."""
        return [
            {"method": self.method, "id": p.id, "prompt": p.prompt, "answer": p.answer, "final_text": t, "extracted": e,
             "correct": bool(c), "score": float(s), "tokens_generated": int(g), "llm_calls": int(n),
             "tokens_exchanged": int(x), **d}
            for p, t, e, c, s, g, n, x, d in zip(self.problems, self.final_text, self.extracted, self.correct,
                                                 self.score, self.tokens_generated, self.llm_calls,
                                                 self.tokens_exchanged, self.details)
        ]


MethodFn = Callable[[EvalContext, Sequence[Any], jax.Array], MethodResult]
METHODS: Registry[MethodFn] = Registry("eval method")


# ------------------------------------------------------------------------------------ helpers
@dataclasses.dataclass(frozen=True)
class Row:
    """One completion to generate: the agent whose model/parameters to use, and its prompt."""

    agent: AgentConfig
    text: str
    add_special_tokens: bool


def generate_rows(ctx: EvalContext, rows: Sequence[Row], key: jax.Array) -> tuple[list[str], np.ndarray]:
    """Generate every row, ONE sampler call per distinct model (rows of one model batched together,
    each with its agent's generation parameters). Returns texts and i32 lengths in row order."""
    texts: list[str] = [""] * len(rows)
    lengths = np.zeros(len(rows), np.int32)
    by_model: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(rows):
        by_model[r.agent.model].append(i)
    for m_i, (model, idx) in enumerate(by_model.items()):
        if model not in ctx.bundles:
            raise ValueError(f"no ModelBundle for model {model!r}; loaded: {sorted(ctx.bundles)}")
        kw = {f: [rows[i].agent.sampling_kwargs()[f] for i in idx] for f in rows[idx[0]].agent.sampling_kwargs()}
        sp = SamplingParams.create(len(idx), **kw)
        res = generate_batch(ctx.bundles[model], [rows[i].text for i in idx], [rows[i].add_special_tokens for i in idx],
                             sp, jax.random.fold_in(key, m_i))
        for j, i in enumerate(idx):
            texts[i] = res["output_text"][j]
            lengths[i] = res["lengths"][j]
        if ctx.on_call is not None:
            ctx.on_call(model)
    return texts, lengths


def score(ctx: EvalContext, problems: Sequence[Any], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """``(score f32, correct bool, extracted)`` with the task scorer (or the judge, if given)."""
    judge = ctx.options.get("judge")
    if judge is not None and not is_verifiable(ctx.task):
        s = np.asarray(judge(problems, texts), np.float32)
        return s, s >= 0.5, [None] * len(texts)
    res = score_batch(list(problems), list(texts))
    return (np.asarray([r.score for r in res], np.float32), np.asarray([r.correct for r in res], bool),
            [r.extracted for r in res])


def majority_vote(answers: Sequence[str | None]) -> int:
    """Index of the first answer of the most frequent non-empty extracted answer (ties: the one seen
    first). All empty: index 0."""
    keys = [None if a is None else str(a).strip() for a in answers]
    counts = collections.Counter(k for k in keys if k)
    if not counts:
        return 0
    best = max(counts.values())
    for i, k in enumerate(keys):
        if k and counts[k] == best:
            return i
    return 0  # pragma: no cover


def single_agent(ctx: EvalContext) -> AgentConfig:
    """Agent 1's model and generation parameters with a plain solver role."""
    return dataclasses.replace(ctx.team.agents[0], role=ROLE_SINGLE)


def _prompt_rows(ctx: EvalContext, agent: AgentConfig, problems: Sequence[Any], instruction: str = "") -> list[Row]:
    tok = ctx.bundles[agent.model].tokenizer
    out = []
    for p in problems:
        tp = turn_prompt(tok, agent.role, p.prompt, ctx.answer_format, (), ctx.team.context_budget,
                         instruction=instruction)
        out.append(Row(agent, tp.text, tp.add_special_tokens))
    return out


def _result(name: str, problems, texts, extracted, correct, sc, gen, calls, exch, t0, details) -> MethodResult:
    b = len(problems)
    return MethodResult(
        method=name, problems=list(problems), final_text=list(texts), extracted=list(extracted),
        correct=np.asarray(correct, bool), score=np.asarray(sc, np.float32),
        tokens_generated=np.asarray(gen, np.int32).reshape(b), llm_calls=np.asarray(calls, np.int32).reshape(b),
        tokens_exchanged=np.asarray(exch, np.int32).reshape(b), seconds=time.perf_counter() - t0,
        details=list(details) if details is not None else [{} for _ in range(b)],
    )


def _one_shot_method(name: str, ctx: EvalContext, problems, key, rows: list[Row]) -> MethodResult:
    t0 = time.perf_counter()
    texts, lengths = generate_rows(ctx, rows, key)
    sc, ok, ext = score(ctx, problems, texts)
    b = len(problems)
    return _result(name, problems, texts, ext, ok, sc, lengths, np.ones(b), np.zeros(b), t0, None)


# ------------------------------------------------------------------------------------ methods
@METHODS.register("single")
def method_single(ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    """Zero-shot: one call per problem with agent 1's model."""
    return _one_shot_method("single", ctx, problems, key, _prompt_rows(ctx, single_agent(ctx), problems))


@METHODS.register("cot")
def method_cot(ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    """Zero-shot chain of thought: an explicit step-by-step instruction."""
    return _one_shot_method("cot", ctx, problems, key,
                            _prompt_rows(ctx, single_agent(ctx), problems, instruction=COT_INSTRUCTION))


def worked_answer(problem: Any) -> str:
    """A gold worked answer for a few-shot example, in the task's answer format."""
    scorer = get_task(problem.task).scorer
    md = problem.metadata
    if scorer in ("humaneval", "mbpp"):
        code = problem.prompt + md["canonical_solution"] if "canonical_solution" in md else md.get("code", "")
        return f"```python\n{code.rstrip()}\n```"
    if scorer == "multiple_choice":
        return f"The answer is ({problem.answer})."
    if scorer == "math_latex":
        return md.get("solution") or f"The answer is \\boxed{{{problem.answer}}}."
    if scorer == "math":
        sol = md.get("solution")
        if sol and "####" in sol:
            steps = sol.split("####")[0].strip()
            return f"{steps}\nThe answer is {problem.answer}."
        return f"The answer is {problem.answer}."
    return str(problem.answer or "")


def fewshot_examples(ctx: EvalContext, problems: Sequence[Any], k: int) -> list[Any]:
    """``k`` examples from the task's training split; tasks without one (HumanEval) use other problems
    of the evaluated split, never one being evaluated."""
    if k <= 0:
        return []
    seed = int(ctx.option("seed", 0))
    try:
        pool = load_task(ctx.task, split="train", limit=k, seed=seed)
    except (ValueError, FileNotFoundError):
        ids = {p.id for p in problems}
        pool = [p for p in load_task(ctx.task, split=ctx.option("split", "test")) if p.id not in ids]
    if len(pool) < k:
        raise ValueError(f"few-shot needs {k} examples for task {ctx.task!r}, found {len(pool)}")
    return list(pool[:k])


@METHODS.register("fewshot")
def method_fewshot(ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    """k worked examples from the training split as earlier chat turns (``options["shots"]``, 3)."""
    agent = single_agent(ctx)
    tok = ctx.bundles[agent.model].tokenizer
    shots = fewshot_examples(ctx, problems, int(ctx.option("shots", 3)))
    prefix: list[dict[str, str]] = [{"role": "system", "content": agent.role}]
    for ex in shots:
        prefix += [{"role": "user", "content": f"{ex.prompt.strip()}\n\n{ctx.answer_format}"},
                   {"role": "assistant", "content": worked_answer(ex)}]
    rows = []
    for p in problems:
        text, special = render_messages(tok, prefix + [{"role": "user", "content": f"{p.prompt.strip()}\n\n{ctx.answer_format}"}])
        rows.append(Row(agent, text, special))
    res = _one_shot_method("fewshot", ctx, problems, key, rows)
    for d in res.details:
        d["shots"] = [ex.id for ex in shots]
    return res


@METHODS.register("self_consistency")
def method_self_consistency(ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    """k samples per problem (one batched call of B*k rows), majority vote over extracted answers."""
    t0 = time.perf_counter()
    k = int(ctx.option("samples", 5))
    if k < 1:
        raise ValueError(f"self_consistency needs samples >= 1, got {k}")
    agent = single_agent(ctx)
    if agent.temperature <= 0:
        agent = dataclasses.replace(agent, temperature=0.7)  # greedy samples would all agree
    base = _prompt_rows(ctx, agent, problems, instruction=COT_INSTRUCTION)
    rows = [r for r in base for _ in range(k)]
    texts, lengths = generate_rows(ctx, rows, key)
    rep = [p for p in problems for _ in range(k)]
    sc, ok, ext = score(ctx, rep, texts)
    b = len(problems)
    fin_t, fin_e, fin_ok, fin_s, details = [], [], [], [], []
    for i in range(b):
        sl = slice(i * k, (i + 1) * k)
        j = i * k + majority_vote(ext[sl])
        fin_t.append(texts[j]), fin_e.append(ext[j]), fin_ok.append(ok[j]), fin_s.append(sc[j])
        details.append({"samples": texts[sl], "votes": ext[sl]})
    gen = lengths.reshape(b, k).sum(1)
    return _result("self_consistency", problems, fin_t, fin_e, fin_ok, fin_s, gen, np.full(b, k),
                   np.zeros(b), t0, details)


@METHODS.register("debate")
def method_debate(ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    """Multi-agent debate: the team's n agents, ``options["rounds"]`` rounds (2); from round 2 on each
    agent sees the others' previous answers; final = majority over the last round's answers."""
    t0 = time.perf_counter()
    rounds = int(ctx.option("rounds", 2))
    if rounds < 1:
        raise ValueError(f"debate needs rounds >= 1, got {rounds}")
    agents = [dataclasses.replace(a, role=DEBATE_ROLE) for a in ctx.team.agents]
    n, b = len(agents), len(problems)
    prev: list[list[str]] = []  # prev[a][i]
    exch = np.zeros(b, np.int64)
    gen = np.zeros(b, np.int64)
    history = [[] for _ in range(b)]
    for r in range(rounds):
        rows, cur_exch = [], np.zeros((n, b), np.int64)
        for a, agent in enumerate(agents):
            tok = ctx.bundles[agent.model].tokenizer
            for i, p in enumerate(problems):
                others = [Contribution(f"Agent {o + 1}", prev[o][i]) for o in range(n) if o != a] if r else []
                tp = turn_prompt(tok, agent.role, p.prompt, ctx.answer_format, others, ctx.team.context_budget,
                                 header=DEBATE_HEADER, closing=DEBATE_CLOSING)
                cur_exch[a, i] = tp.contribution_tokens
                rows.append(Row(agent, tp.text, tp.add_special_tokens))
        texts, lengths = generate_rows(ctx, rows, jax.random.fold_in(key, r))
        prev = [texts[a * b:(a + 1) * b] for a in range(n)]
        gen += lengths.reshape(n, b).sum(0)
        exch += cur_exch.sum(0)
        for i in range(b):
            history[i].append([prev[a][i] for a in range(n)])
    last = [prev[a][i] for i in range(b) for a in range(n)]
    sc, ok, ext = score(ctx, [p for p in problems for _ in range(n)], last)
    fin_t, fin_e, fin_ok, fin_s, details = [], [], [], [], []
    for i in range(b):
        sl = slice(i * n, (i + 1) * n)
        j = i * n + majority_vote(ext[sl])
        fin_t.append(last[j]), fin_e.append(ext[j]), fin_ok.append(ok[j]), fin_s.append(sc[j])
        details.append({"rounds": history[i], "votes": ext[sl]})
    return _result("debate", problems, fin_t, fin_e, fin_ok, fin_s, gen, np.full(b, n * rounds), exch, t0, details)


def _mac_spgg(name: str, observation: str, ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    t0 = time.perf_counter()
    team = ctx.team.replace(observation=observation)
    on_turn = (lambda t: ctx.on_call(t.model)) if ctx.on_call is not None else None
    batch = run_episodes(team, ctx.bundles, problems, key, answer_format=ctx.option("answer_format", None),
                         on_turn=on_turn)
    from spgg_jax.rollout.scoring import choose_final, select_final

    per_turn = [score(ctx, problems, t.output_text) for t in batch.turns]  # every turn scored once
    agent_sc = np.stack([s for s, _, _ in per_turn[: team.n]], 1)
    # the team's final-answer rule picks each problem's answer (last, last_answer, integrator, majority, ...)
    final_turn = choose_final(team.final, team.n, [e for _, _, e in per_turn])
    sc, ok, ext = select_final(final_turn, per_turn)
    final_text = [batch.turns[t].output_text[i] for i, t in enumerate(final_turn)]
    details = [{"agents": [team.agents[t.agent].name for t in batch.turns],
                "turns": [t.output_text[i] for t in batch.turns], "agent_scores": agent_sc[i].tolist(),
                "votes": [per_turn[t][2][i] for t in range(len(batch.turns))], "final_turn": int(final_turn[i]),
                "truncated": [bool(t.truncated[i]) for t in batch.turns]} for i in range(len(problems))]
    return _result(name, problems, final_text, ext, ok, sc, batch.tokens_generated.sum(1),
                   np.full(len(problems), len(batch.turns)), batch.tokens_exchanged.sum(1), t0, details)


@METHODS.register("mac_spgg_fo")
def method_mac_spgg_fo(ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    """The sequential protocol under full observation, fixed generation parameters."""
    return _mac_spgg("mac_spgg_fo", "fo", ctx, problems, key)


@METHODS.register("mac_spgg_po")
def method_mac_spgg_po(ctx: EvalContext, problems: Sequence[Any], key: jax.Array) -> MethodResult:
    """The sequential protocol under partial observation, fixed generation parameters."""
    return _mac_spgg("mac_spgg_po", "po", ctx, problems, key)
