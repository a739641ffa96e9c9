"""Prompt construction for the sequential protocol (pure functions of text and a tokenizer).

Agent i's prompt is, in this order: its role prompt (system message), then in the user message the
predecessors' outputs it may see (all of them under full observation "fo", only agent i-1's under
partial observation "po"), the task prompt and the task's answer-format instruction (last, where a
small model attends best). With ``final="integrator"`` a last turn (n + 1) is played by agent 1's model with the
integrator role and sees every agent's output.

Everything must fit ``context_budget`` prompt tokens of the receiving model's tokenizer: the
predecessors' outputs are truncated (each keeps its END, where answers are, behind a ``[...]``
marker, and the budget is shared water-filling style so short outputs stay whole); the task is
never truncated, and a task that alone exceeds the budget is an error.

The text is rendered with the model's own chat template, or with a plain-text template for base
models that have none (``PLAIN_TEMPLATE``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

PREDECESSOR_HEADER = "Your teammates' answers so far (they may be wrong):"
DEBATE_HEADER = "Answers of the other agents in the previous round:"
CLOSING = ""
INTEGRATOR_ROLE = (
    "You are agent 1, and you also integrate the team's work. Every agent of your team has now "
    "responded. Read all of their responses, decide which answer is right, and give the team's "
    "final answer in exactly the requested format."
)
TRUNCATION_MARKER = "[...] "
PLAIN_TEMPLATE = "{system}\n\n{user}\n\nResponse:\n"  # the plain rendering of one system + user turn


@dataclasses.dataclass(frozen=True)
class Contribution:
    """One predecessor output as another agent sees it."""

    name: str
    text: str


@dataclasses.dataclass(frozen=True)
class TurnPrompt:
    """A rendered prompt and what went into it.

    Attributes:
      text: the prompt text fed to the tokenizer.
      messages: the chat messages it was rendered from.
      add_special_tokens: encode ``text`` with this flag (False after a chat template, which writes
        its own special tokens; True for the plain template so BOS etc. are added).
      contribution_texts: the (possibly truncated) predecessor texts included.
      contribution_tokens: tokens of those texts under the receiving tokenizer ("tokens exchanged").
      n_tokens: tokens of the whole prompt.
      truncated: whether any predecessor text was shortened.
    """

    text: str
    messages: tuple[Mapping[str, str], ...]
    add_special_tokens: bool
    contribution_texts: tuple[str, ...]
    contribution_tokens: int
    n_tokens: int
    truncated: bool


# ------------------------------------------------------------------------------------ who sees what
def visible_turns(turn: int, n: int, observation: str, final: str = "last") -> tuple[int, ...]:
    """Indices of the earlier turns whose outputs turn ``turn`` sees.

    Turns 0..n-1 are agents 1..n; turn n exists only with an integrator rule (``final`` in
    ``INTEGRATOR_FINALS``: "integrator", "majority_integrator") and sees all n.
    """
    from spgg_jax.rollout.team import FINALS, INTEGRATOR_FINALS

    if observation not in ("fo", "po"):
        raise ValueError(f"observation must be 'fo' or 'po', got {observation!r}")
    if final not in FINALS:
        raise ValueError(f"final must be one of {FINALS}, got {final!r}")
    last = n if final in INTEGRATOR_FINALS else n - 1
    if not 0 <= turn <= last:
        raise ValueError(f"turn must be in [0, {last}] for n={n}, final={final!r}, got {turn}")
    if turn == n:
        return tuple(range(n))
    if observation == "fo":
        return tuple(range(turn))
    return (turn - 1,) if turn > 0 else ()


# ------------------------------------------------------------------------------------ messages
def build_messages(role: str, task_prompt: str, answer_format: str, contributions: Sequence[Contribution] = (),
                   *, header: str = PREDECESSOR_HEADER, closing: str = CLOSING,
                   instruction: str = "") -> list[dict[str, str]]:
    """System (role) + user message: contributions first, then the task, answer format and instruction.

    The predecessors' outputs come before the task so that the question and the answer format are
    the last thing the agent reads: with SmolLM2-135M and FO, this order lifted the team's final
    accuracy from 0.17 to 0.21 on 24 basic_arithmetic problems and shortened prompts (measured when
    choosing it; see docs/episodes.md).
    """
    if not isinstance(task_prompt, str) or not task_prompt.strip():
        raise ValueError(f"task_prompt must be a non-empty string, got {task_prompt!r:.80}")
    parts = []
    if contributions:
        blocks = [f"[{c.name}]\n{c.text.strip()}" for c in contributions]
        parts.append(header + "\n\n" + "\n\n".join(blocks))
    parts.append(task_prompt.strip())
    if answer_format:
        parts.append(answer_format.strip())
    if instruction:
        parts.append(instruction.strip())
    if contributions and closing:
        parts.append(closing)
    msgs = []
    if role:
        msgs.append({"role": "system", "content": role.strip()})
    msgs.append({"role": "user", "content": "\n\n".join(parts)})
    return msgs


def render_messages(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> tuple[str, bool]:
    """``(text, add_special_tokens)``: the model's chat template, else ``PLAIN_TEMPLATE``."""
    from spgg_jax.models.tokenizer import apply_chat_template, has_chat_template

    if tokenizer is not None and has_chat_template(tokenizer):
        return apply_chat_template(tokenizer, messages, add_generation_prompt=True), False
    parts = []
    for m in messages:
        if m["role"] == "user":
            parts.append(m["content"] + "\n\nResponse:\n")
        else:  # system text, or an earlier assistant answer (few-shot examples)
            parts.append(m["content"] + "\n\n")
    if not messages or messages[-1]["role"] != "user":
        parts.append("Response:\n")
    return "".join(parts), True


# ------------------------------------------------------------------------------------ budgets
class TokenCounter:
    """Counts and truncates text with a tokenizer (``None``: characters, for tokenizer-free use)."""

    def __init__(self, tokenizer: Any = None):
        self.tokenizer = tokenizer

    def ids(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if self.tokenizer is None:
            return [ord(c) for c in text]
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def count(self, text: str, add_special_tokens: bool = False) -> int:
        return len(self.ids(text, add_special_tokens))

    def keep_end(self, text: str, max_tokens: int) -> str:
        """``text`` if it fits ``max_tokens``, else its last tokens behind ``TRUNCATION_MARKER``."""
        ids = self.ids(text)
        if len(ids) <= max_tokens:
            return text
        keep = max_tokens - self.count(TRUNCATION_MARKER)
        if keep <= 0:
            return ""
        if self.tokenizer is None:
            return TRUNCATION_MARKER + text[-keep:]
        return TRUNCATION_MARKER + self.tokenizer.decode(ids[-keep:], skip_special_tokens=True).lstrip()


def share_budget(lengths: Sequence[int], budget: int) -> list[int]:
    """Water-filling: caps with ``sum(caps) <= budget``; items shorter than the fair share keep all."""
    caps = [0] * len(lengths)
    remaining = max(int(budget), 0)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for k, i in enumerate(order):
        share = remaining // (len(order) - k)
        caps[i] = min(int(lengths[i]), share)
        remaining -= caps[i]
    return caps


def turn_prompt(tokenizer: Any, role: str, task_prompt: str, answer_format: str,
                contributions: Sequence[Contribution], context_budget: int, *,
                header: str = PREDECESSOR_HEADER, closing: str = CLOSING, instruction: str = "",
                max_rounds: int = 8) -> TurnPrompt:
    """Render one agent's prompt, truncating contributions so it fits ``context_budget`` tokens."""
    counter = TokenCounter(tokenizer)
    contributions = list(contributions)

    def render(texts: Sequence[str]) -> tuple[list[dict[str, str]], str, bool, int]:
        cs = [Contribution(c.name, t) for c, t in zip(contributions, texts)]
        msgs = build_messages(role, task_prompt, answer_format, cs, header=header, closing=closing,
                              instruction=instruction)
        text, special = render_messages(tokenizer, msgs)
        return msgs, text, special, counter.count(text, special)

    texts = [c.text for c in contributions]
    msgs, text, special, n_tok = render(texts)
    truncated = False
    if n_tok > context_budget:
        truncated = True
        _, _, _, base = render(["" for _ in texts])
        if base > context_budget:
            raise ValueError(
                f"the task prompt alone needs {base} tokens, more than context_budget={context_budget}; "
                "raise the team's context_budget (the task is never truncated)"
            )
        lengths = [counter.count(t) for t in texts]
        avail = context_budget - base
        for _ in range(max_rounds):
            cut = [counter.keep_end(t, cap) for t, cap in zip(texts, share_budget(lengths, avail))]
            msgs, text, special, n_tok = render(cut)
            if n_tok <= context_budget:
                texts = cut
                break
            avail -= n_tok - context_budget  # token boundaries merged differently: shrink and retry
        else:
            texts = ["" for _ in texts]
            msgs, text, special, n_tok = render(texts)
    return TurnPrompt(
        text=text, messages=tuple(msgs), add_special_tokens=special, contribution_texts=tuple(texts),
        contribution_tokens=sum(counter.count(t.strip()) for t in texts), n_tokens=n_tok, truncated=truncated,
    )


# ------------------------------------------------------------------------------------ the protocol
def agent_turn_prompts(tokenizer: Any, team: Any, turn: int, problems: Sequence[Any],
                       outputs: Sequence[Sequence[str]], answer_format: str) -> list[TurnPrompt]:
    """Prompts of turn ``turn`` for a batch: ``outputs[t][b]`` is turn t's output on problem b."""
    n = team.n
    seen = visible_turns(turn, n, team.observation, team.final)
    if len(outputs) < (max(seen) + 1 if seen else 0):
        raise ValueError(f"turn {turn} needs the outputs of turns {seen}, got {len(outputs)} turns")
    agent = team.agents[team.turn_agent(turn)]
    role = INTEGRATOR_ROLE if turn == n else agent.role
    out = []
    for b, prob in enumerate(problems):
        contribs = [Contribution(_label(team, t), outputs[t][b]) for t in seen]
        out.append(turn_prompt(tokenizer, role, prob.prompt, answer_format, contribs, team.context_budget))
    return out


def _label(team: Any, t: int) -> str:
    return f"Agent {t + 1} ({team.agents[t].name})"
