"""Answer extraction from free-form model output (pure Python, never raises on junk).

Rules (documented in ``docs/tasks.md``):

- Explicit markers win over guesses. The explicit markers are ``#### X`` (GSM8K style), ``\\boxed{X}``
  / ``\\fbox{X}`` (nested braces handled) and answer phrases (``The answer is X``, ``Final answer: X``,
  ``Answer: X``). When several appear, the one that **ends last** in the text is used (models restate
  and correct themselves; the last statement is the answer).
- Without a marker, the **last number** in the text is used. Unlike the paper's code this keeps the
  sign (``-5``; a ``-`` directly after a digit or letter is subtraction, not a sign), thousands
  separators (``1,234`` -> ``1234``), decimals (``.5``, ``3.25``), fractions (``3/4``, ``\\frac{3}{4}``,
  ``\\dfrac34``), scientific notation (``1e5``), and strips percent signs, currency symbols
  (``$ € £ ¥``) and trailing units.
- For numeric tasks the marker's content is reduced to its first number; for MATH-style tasks
  (``numeric=False``) it is kept as written (LaTeX) for :mod:`math_verify`.
- Multiple choice: :func:`extract_choice` looks for ``answer is (B)``, ``Answer: B``, ``\\boxed{B}``,
  ``(B)``, a line starting ``B.``/``B)``/``B:``, a lone letter, and finally a verbatim option text.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple, Optional, Sequence

__all__ = [
    "Extraction",
    "extract_hash_answer",
    "extract_boxed",
    "extract_all_boxed",
    "extract_answer_phrase",
    "find_numbers",
    "last_number",
    "parse_number",
    "normalize_number",
    "extract_math_answer",
    "extract_choice",
    "strip_latex_number",
]

_MAX_CHARS = 200_000  # longer texts are cut to their tail: answers live at the end
# No pattern below has two whitespace runs that can split one stretch of whitespace between them
# (``\s*X?\s*``): those backtrack over every split and made 64 KB of blanks take a minute.
# Optional pieces carry their own leading whitespace instead (``(?:\s*X)?\s*``).

_CURRENCY = "$€£¥₹"

_NUMBER_RE = re.compile(
    r"""
    (?:(?<![\w.)\]}])(?P<sign>[-+\u2212])\s?)?        # sign: not right after a digit/letter/bracket
    [$€£¥₹]?\s?                                        # currency between sign and digits: -$5
    (?<![\w.])                                         # digits start a token
    (?P<num>
        \d{1,3}(?:,\d{3})+(?:\.\d+)?                   # 1,234,567.89
      | \d+(?:\.\d+)?                                  # 1234.5
      | \.\d+                                          # .5
    )
    (?:[eE](?P<exp>[-+]?\d+))?                         # 1e5
    (?:\s?/\s?(?P<den>\d+(?:\.\d+)?)(?![\d/]))?        # fraction 3/4 (not dates 1/2/2020)
    (?P<pct>\s?%)?
    """,
    re.VERBOSE,
)

_FRAC_RE = re.compile(
    r"(?P<sign>[-\u2212]\s*)?\\[dt]?frac\s*(?:\{\s*(?P<a>[-\u2212]?[\d.,]+)\s*\}|(?P<a1>\d))"
    r"\s*(?:\{\s*(?P<b>[-\u2212]?[\d.,]+)\s*\}|(?P<b1>\d))"
)
_HASH_RE = re.compile(r"####\s*([^\n]*)")
_PHRASE_RE = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)(?:\s*\*+)?\s*(?:is|was|would\s+be|will\s+be|=|:)"
    r"(?:\s*[:=])?\s*",
    re.IGNORECASE,
)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*")


class Extraction(NamedTuple):
    """An extracted answer: the answer string (or ``None``), how it was found, where it ended."""

    answer: Optional[str]
    method: str
    end: int = -1


def _clip(text: object) -> str:
    if not isinstance(text, str):
        return "" if text is None else str(text)
    return text if len(text) <= _MAX_CHARS else text[-_MAX_CHARS:]


def strip_latex_number(s: str) -> str:
    """Rewrite LaTeX number notation into plain text: ``\\frac{3}{4}`` -> ``3/4``, ``1{,}000`` ->
    ``1,000``, drop ``\\$``, ``\\%``, ``\\text{..}``/``\\mbox{..}`` units, ``\\!``, ``\\,``, ``^\\circ``."""

    def frac(m: re.Match) -> str:
        a = m.group("a") or m.group("a1")
        b = m.group("b") or m.group("b1")
        sign = "-" if m.group("sign") else ""
        return f" {sign}{a}/{b}"

    s = _FRAC_RE.sub(frac, s)
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\;", " ")
    s = s.replace("\\$", "$").replace("\\%", "%").replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s)
    s = re.sub(r"\\(?:text|mbox|mathrm|textbf|mathbf)\s*\{([^{}]*)\}", r" \1 ", s)
    s = s.replace("\\cdot", "*").replace("\\times", "*")
    return s


def extract_all_boxed(text: str) -> list[tuple[str, int]]:
    """Every ``\\boxed{...}``/``\\fbox{...}`` content with its end offset (nested braces handled;
    an unclosed box is ignored; ``\\boxed 5`` without braces takes the next token)."""
    text = _clip(text)
    out: list[tuple[str, int]] = []
    for m in _BOXED_RE.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                c = text[j]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        out.append((text[i + 1 : j].strip(), j + 1))
                        break
        else:
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                out.append((tok.group(0), i + tok.end()))
    return out


def extract_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` (nested braces handled), or ``None``."""
    boxes = extract_all_boxed(text)
    return boxes[-1][0] if boxes else None


def extract_hash_answer(text: str) -> Optional[str]:
    """The (stripped) text after the last ``####``, or ``None``."""
    ms = list(_HASH_RE.finditer(_clip(text)))
    if not ms:
        return None
    ans = ms[-1].group(1).strip()
    return ans or None


def _phrase_matches(text: str) -> list[tuple[str, int]]:
    out = []
    for m in _PHRASE_RE.finditer(text):
        nl = text.find("\n", m.end())
        rest = text[m.end(): nl if nl >= 0 else len(text)].strip()
        if rest:
            out.append((rest, m.end()))
    return out


def extract_answer_phrase(text: str) -> Optional[str]:
    """The rest of the line after the last ``answer is`` / ``Answer:`` / ``final answer`` phrase."""
    ms = _phrase_matches(_clip(text))
    return ms[-1][0] if ms else None


def _to_fraction(num: str, exp: Optional[str], den: Optional[str]) -> Optional[Fraction]:
    try:
        v = Fraction(num.replace(",", ""))
        if exp:
            e = int(exp)
            if abs(e) > 400:
                return None
            v *= Fraction(10) ** e
        if den:
            d = Fraction(den)
            if d == 0:
                return None
            v /= d
        return v
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def find_numbers(text: str) -> list[tuple[str, Fraction, int]]:
    """All numbers in ``text`` as (clean string, exact value, end offset), in order.

    The clean string keeps the sign and the fraction bar and drops commas, currency and ``%``.
    """
    text = strip_latex_number(_clip(text))
    out = []
    for m in _NUMBER_RE.finditer(text):
        val = _to_fraction(m.group("num"), m.group("exp"), m.group("den"))
        if val is None:
            continue
        neg = m.group("sign") in ("-", "\u2212")
        if neg:
            val = -val
        s = ("-" if neg else "") + m.group("num").replace(",", "")
        if m.group("exp"):
            s += "e" + m.group("exp")
        if m.group("den"):
            s += "/" + m.group("den")
        out.append((s, val, m.end()))
    return out


def last_number(text: str) -> Optional[str]:
    """The last number in ``text`` (clean string, sign kept), or ``None``."""
    nums = find_numbers(text)
    return nums[-1][0] if nums else None


def parse_number(s: object) -> Optional[Fraction]:
    """Exact value of a string that is a single number (with optional sign, currency, commas,
    percent, units, LaTeX fraction); ``None`` when it is not exactly one number."""
    if isinstance(s, (int, Fraction)) and not isinstance(s, bool):
        return Fraction(s)
    if isinstance(s, float):
        return Fraction(s) if s == s and s not in (float("inf"), float("-inf")) else None
    if not isinstance(s, str) or not s.strip() or len(s) > 200:
        return None
    nums = find_numbers(s)
    if len(nums) != 1:
        return None
    # Reject expressions such as "2+3" or "x/2": only units/words may surround the number.
    rest = strip_latex_number(s)
    rest = re.sub(r"[\d,.\s$€£¥₹%+\-\u2212/eE]", "", rest)
    rest = rest.replace("{", "").replace("}", "").replace("\\", "")
    if re.search(r"[\^*=<>()\[\]|_]", rest):
        return None
    if re.search(r"[A-Za-z]\s*[/*^]|[/*^]\s*[A-Za-z]", strip_latex_number(s)):
        return None
    return nums[0][1]


def normalize_number(s: object) -> Optional[str]:
    """Canonical string of a single number: ``"1,234.50"`` -> ``"1234.5"``, ``"\\frac{6}{8}"`` ->
    ``"0.75"`` (terminating decimals as decimals, other rationals as ``p/q``), ``"-$5"`` -> ``"-5"``; ``None`` when ``s`` is not one number."""
    v = parse_number(s)
    if v is None:
        return None
    if v.denominator == 1:
        return str(v.numerator)
    d = v.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:  # terminating decimal
        q = v.numerator / v.denominator
        txt = f"{q:.12f}".rstrip("0").rstrip(".")
        if Fraction(txt) == v:
            return txt
    return f"{v.numerator}/{v.denominator}"


def _first_number(s: str) -> Optional[str]:
    nums = find_numbers(s)
    return nums[0][0] if nums else None


def _clean_phrase(rest: str) -> str:
    rest = rest.strip().strip("*").strip()
    m = re.fullmatch(r"\$+(.*?)\$+\.?", rest)
    if m:
        rest = m.group(1)
    m = re.fullmatch(r"\\\((.*?)\\\)\.?", rest)
    if m:
        rest = m.group(1)
    return rest.rstrip(".").strip()


def extract_math_answer(text: object, *, numeric: bool = True) -> Extraction:
    """The final answer of a worked solution (see the module doc for the rules).

    Args:
      text: model output (anything; non-strings are treated as empty/str()).
      numeric: reduce explicit answers to their first number (GSM8K-style tasks); with ``False``
        the marker's content is kept verbatim (MATH), falling back to the number when there is
        no marker.

    Returns:
      :class:`Extraction` with ``method`` in ``"####"``, ``"boxed"``, ``"phrase"``,
      ``"last_number"`` or ``"none"``.
    """
    t = _clip(text)
    cands: list[tuple[int, str, str]] = []
    for m in _HASH_RE.finditer(t):
        if m.group(1).strip():
            cands.append((m.end(), "####", m.group(1).strip()))
    for content, end in extract_all_boxed(t):
        if content:
            cands.append((end, "boxed", content))
    for rest, end in _phrase_matches(t):
        # "answer is \boxed{5}" is the same statement as the box; the box (more precise) wins.
        cands.append((end, "phrase", _clean_phrase(rest)))
    for end, method, content in sorted(cands, key=lambda c: -c[0]):
        if numeric:
            num = _first_number(content)
            if num is not None:
                return Extraction(num, method, end)
            continue  # a marker without a number (e.g. "the answer is below"): keep looking
        content = content.strip()
        if content:
            return Extraction(content, method, end)
    nums = find_numbers(t)
    if nums:
        return Extraction(nums[-1][0], "last_number", nums[-1][2])
    return Extraction(None, "none", -1)


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def extract_choice(
    text: object, n_choices: int = 4, choices: Optional[Sequence[str]] = None
) -> Extraction:
    """The chosen option letter (``"A"``, ``"B"``, ...) of a multiple-choice answer.

    Args:
      text: model output.
      n_choices: number of options (letters ``A`` .. ).
      choices: the option texts; used last, when the output names exactly one of them verbatim.
    """
    if not 1 <= n_choices <= 26:
        raise ValueError(f"extract_choice: n_choices must be in 1..26, got {n_choices!r}")
    t = _clip(text)
    L = _LETTERS[:n_choices]
    Ll = L.lower()
    cls = f"[{L}]"
    cls_any = f"[{L}{Ll}]"
    patterns = [
        # "answer is (B)", "Answer: B", "final answer: **C**", "answer is option D"
        ("phrase", re.compile(
            rf"(?i:answer)(?:\s*(?:is|:|=))?(?:\s*[:=])?(?:\s*(?i:option|choice))?(?:\s*\*+)?\s*"
            rf"(?:[\(\[]\s*(?P<l1>{cls_any})\s*[\)\]]|(?P<l2>{cls})(?![\w']))")),
        ("boxed", re.compile(rf"\\boxed\s*\{{(?:\s*\\text\{{)?\s*\(?(?P<l1>{cls_any})\)?\s*\}}")),
        ("paren", re.compile(rf"[\(\[]\s*(?P<l1>{cls})\s*[\)\]]")),
        ("verb", re.compile(rf"\b(?:is|it's|choose|select|pick|option|choice)(?:\s*:)?\s*\**"
                            rf"(?P<l1>{cls})(?![\w'])")),
        # horizontal whitespace only: with \s a run of blank lines made this quadratic
        ("line", re.compile(rf"(?m)^[ \t]*\**(?P<l1>{cls})[ \t]*[\.\):]")),
        ("alone", re.compile(rf"^\s*\**\(?(?P<l1>{cls})\)?\**\.?\s*$")),
    ]
    for method, pat in patterns:
        found = None
        for m in pat.finditer(t):
            found = m
        if found is not None:
            letter = (found.group("l1") or found.groupdict().get("l2") or "").upper()
            if letter:
                return Extraction(letter, method, found.end())
    if choices:
        lower = t.lower()
        hits = [i for i, c in enumerate(choices[:n_choices])
                if isinstance(c, str) and c.strip() and c.strip().lower() in lower]
        if len(hits) == 1:
            return Extraction(L[hits[0]], "option_text", -1)
    return Extraction(None, "none", -1)
