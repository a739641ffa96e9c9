"""Code tasks: pull code out of completions and build the test programs run in the sandbox.

The programs print a success line tagged with a random per-run nonce only after the tests ran, so
a completion that exits early (``sys.exit(0)``, ``os._exit(0)``) or prints "passed" never counts.

Two ways to run HumanEval tests: :func:`build_humaneval_program` is the official one (the
candidate's code and the tests in one program, one process: what published pass@1 figures use, and
what an adversarial candidate can subvert from inside that process), and
:func:`build_humaneval_checked` (tests in a separate checker process that only sees plain-data
return values; what rewards use). MBPP likewise: :func:`build_mbpp_program` runs the asserts in
the candidate's process (``mbpp_classic``), :func:`build_mbpp_checked` in a checker process
(``mbpp``, what rewards use).
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import secrets
from typing import Optional, Sequence

from spgg_jax.tasks.base import Problem

__all__ = [
    "extract_code",
    "build_humaneval_program",
    "build_humaneval_checked",
    "build_mbpp_program",
    "build_mbpp_checked",
    "mbpp_called_names",
    "parse_report",
    "new_nonce",
    "MAX_CODE_CHARS",
]

_LANG_RE = re.compile(r"[ \t]*([\w+-]*)")
#: Completions are cut to their first ``MAX_CODE_CHARS`` characters before extraction (a
#: backstop: every step below is linear in the text; model outputs are far shorter).
MAX_CODE_CHARS = 100_000


def _def_re(name: str) -> "re.Pattern[str]":
    r"""``def name(`` at the start of a line (horizontal whitespace only: ``\s`` with ``re.M``
    rescans a run of blank lines from every line start, quadratic in its length)."""
    return re.compile(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", re.M)


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order: a fence line "```lang ...", the body up to
    the next "```" (or the end of the text when unclosed). One pass with ``str.find``."""
    blocks = []
    pos = 0
    while True:
        i = text.find("```", pos)
        if i < 0:
            break
        nl = text.find("\n", i + 3)
        if nl < 0:
            break  # a fence line must end; no later fence can either
        lang = _LANG_RE.match(text, i + 3, nl).group(1)
        j = text.find("```", nl + 1)
        blocks.append((lang.lower(), text[nl + 1: j if j >= 0 else len(text)]))
        if j < 0:
            break
        pos = j + 3
    return blocks


def new_nonce() -> str:
    return "SPGG-" + secrets.token_hex(12)


def extract_code(completion: object, entry_point: Optional[str] = None) -> str:
    """The code in a completion.

    Fenced blocks (```` ```python ```` or bare ```` ``` ````; an unclosed final fence runs to the end)
    win: the first block defining ``entry_point`` if given, else the first Python/untagged block,
    else the first block. Without fences the completion itself (trailing whitespace removed).
    Only the first :data:`MAX_CODE_CHARS` characters are looked at; time is linear in them.
    """
    text = completion if isinstance(completion, str) else ("" if completion is None else str(completion))
    text = text[:MAX_CODE_CHARS]
    blocks = _fenced_blocks(text)
    if not blocks:
        return text.rstrip()
    if entry_point:
        pat = _def_re(entry_point)
        for _, body in blocks:
            if pat.search(body):
                return body.rstrip()
    for lang, body in blocks:
        if lang in ("python", "py", "python3", ""):
            return body.rstrip()
    return blocks[0][1].rstrip()


def build_humaneval_program(problem: Problem, completion: str, nonce: str) -> tuple[str, str]:
    """(program, code) for a HumanEval completion.

    If the extracted code defines ``entry_point`` it is appended after the official prompt (so the
    prompt's imports and helper functions stay available and the model's definition wins);
    otherwise it is treated as the function body continuing the prompt (the official
    ``prompt + completion`` convention). Then the official ``test`` and ``check(entry_point)``.
    """
    md = problem.metadata
    entry = md["entry_point"]
    code = extract_code(completion, entry)
    if _def_re(entry).search(code):
        body = problem.prompt + "\n    pass\n\n" + code
    else:
        body = problem.prompt + code
    program = (f"{body}\n\n\n{md['test']}\n\n"
               f"check({entry})\n"
               f"print({nonce!r} + ' PASS')\n")
    return program, code


def _mbpp_tests(problem: Problem, include_challenge: bool) -> list[str]:
    """The asserts of an MBPP problem (``challenge_test_list`` appended when asked)."""
    md = problem.metadata
    return list(md["test_list"]) + (list(md.get("challenge_test_list") or ()) if include_challenge else [])


def _assert_harness(tests: Sequence[str], nonce: str, timeout_s: float, namespace: str) -> str:
    """Python source that runs each assert of ``tests`` on its own (an exception or a ``SIGALRM``
    after ``timeout_s`` fails only that assert; each runs in ``namespace``, an expression over the
    program's globals) and prints the list of results as JSON on a ``nonce``-tagged line."""
    return f"""

def __spgg_harness():
    import json as _json, signal as _signal
    class _TestTimeout(BaseException):
        pass
    def _alarm(signum, frame):
        raise _TestTimeout()
    _signal.signal(_signal.SIGALRM, _alarm)
    results = []
    for src in {json.dumps(list(tests))}:
        ok = False
        try:
            _signal.setitimer(_signal.ITIMER_REAL, {float(timeout_s)!r})
            exec(src, {namespace})
            ok = True
        except BaseException:
            ok = False
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
        results.append(ok)
    print({nonce!r} + ' ' + _json.dumps(results))

__spgg_harness()
"""


def build_mbpp_program(problem: Problem, completion: str, nonce: str, *, include_challenge: bool = False,
                       per_test_timeout_s: float = 2.0) -> tuple[str, str, int]:
    """(program, code, n_tests) for an MBPP completion: setup code, the model's code, then each
    assert run separately (an exception or a per-test ``SIGALRM`` timeout fails only that test);
    the result list is printed as JSON on a nonce-tagged line."""
    md = problem.metadata
    code = extract_code(completion)
    tests = _mbpp_tests(problem, include_challenge)
    harness = _assert_harness(tests, nonce, per_test_timeout_s, "globals()")
    setup = md.get("test_setup_code") or ""
    program = (setup + "\n\n" if setup else "") + code + "\n" + harness
    return program, code, len(tests)


def parse_report(stdout: str, nonce: str) -> Optional[str]:
    """The payload of the last line starting with ``nonce`` (``None`` when absent)."""
    payload = None
    for line in stdout.splitlines():
        if line.startswith(nonce):
            payload = line[len(nonce):].strip()
    return payload


# --------------------------------------------------------------------------------------------
# Checked scoring: the tests run in a second process that never runs the candidate's code.
#
# The candidate's process only answers calls: the checker sends the arguments of each call over
# a pipe and gets back the return value encoded as plain data (None, bool, int, float, complex,
# str, bytes, list, tuple, dict, set, frozenset; exact types, never subclasses). The checker
# rebuilds genuine built-in objects from that, so every ``==``, ``isinstance`` and ``assert`` in
# the official tests runs on honest values in a process the candidate cannot touch: an object
# whose ``__eq__`` is always true, patched builtins, ``sys.exit(0)`` or a printed fake report in
# the candidate's process change nothing.
# --------------------------------------------------------------------------------------------

#: Largest encoded message (one call's arguments or one return value), in bytes.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

_CODEC = r'''
def __spgg_enc(x, depth=0):
    if depth > 200:
        raise ValueError("value nested deeper than 200 levels")
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return {"i": format(x, "x")}
    if t is float:
        return {"f": x.hex()}
    if t is complex:
        return {"c": [x.real.hex(), x.imag.hex()]}
    if t is bytes:
        return {"b": x.hex()}
    if t is list:
        return [__spgg_enc(v, depth + 1) for v in x]
    if t is tuple:
        return {"t": [__spgg_enc(v, depth + 1) for v in x]}
    if t is set:
        return {"s": [__spgg_enc(v, depth + 1) for v in x]}
    if t is frozenset:
        return {"z": [__spgg_enc(v, depth + 1) for v in x]}
    if t is dict:
        return {"d": [[__spgg_enc(k, depth + 1), __spgg_enc(v, depth + 1)] for k, v in x.items()]}
    raise TypeError("cannot pass a %s between processes" % (t.__name__,))


def __spgg_dec(x, depth=0):
    if depth > 200:
        raise ValueError("value nested deeper than 200 levels")
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is list:
        return [__spgg_dec(v, depth + 1) for v in x]
    if t is not dict or len(x) != 1:
        raise TypeError("malformed value: %.80r" % (x,))
    (tag, v), = x.items()
    if tag == "i" and type(v) is str:
        return int(v, 16)
    if tag == "f" and type(v) is str:
        return float.fromhex(v)
    if tag == "c" and type(v) is list and len(v) == 2:
        return complex(float.fromhex(v[0]), float.fromhex(v[1]))
    if tag == "b" and type(v) is str:
        return bytes.fromhex(v)
    if type(v) is not list:
        raise TypeError("malformed value: %.80r" % (x,))
    if tag == "t":
        return tuple(__spgg_dec(e, depth + 1) for e in v)
    if tag == "s":
        return set(__spgg_dec(e, depth + 1) for e in v)
    if tag == "z":
        return frozenset(__spgg_dec(e, depth + 1) for e in v)
    if tag == "d":
        out = {}
        for kv in v:
            if type(kv) is not list or len(kv) != 2:
                raise TypeError("malformed dict item: %.80r" % (kv,))
            out[__spgg_dec(kv[0], depth + 1)] = __spgg_dec(kv[1], depth + 1)
        return out
    raise TypeError("malformed value: %.80r" % (x,))
'''


def _checker_prelude(names: Sequence[str], read_fd: int, write_fd: int) -> str:
    """Proxies named ``names`` that forward each call to the candidate's process."""
    return _CODEC + f'''
import json as __spgg_json, os as __spgg_os
__spgg_req = __spgg_os.fdopen({int(write_fd)}, "w", encoding="utf-8")
__spgg_resp = __spgg_os.fdopen({int(read_fd)}, "rb")


class CandidateError(Exception):
    """The candidate raised, returned something that is not plain data, or stopped answering."""


def __spgg_proxy(name):
    def call(*args, **kwargs):
        __spgg_req.write(__spgg_json.dumps(
            {{"f": name, "a": __spgg_enc(list(args)), "k": __spgg_enc(kwargs)}}) + "\\n")
        __spgg_req.flush()
        line = __spgg_resp.readline({MAX_MESSAGE_BYTES})
        if not line.endswith(b"\\n"):
            raise CandidateError("%s: no answer from the candidate" % name)
        msg = __spgg_json.loads(line)
        if type(msg) is not list or len(msg) != 2 or msg[0] not in ("ok", "exc"):
            raise CandidateError("%s: malformed answer" % name)
        if msg[0] == "exc":
            raise CandidateError("%s raised %.200s" % (name, msg[1]))
        return __spgg_dec(msg[1])
    call.__name__ = call.__qualname__ = name
    return call

__spgg_proxies = {{n: __spgg_proxy(n) for n in {list(names)!r}}}
'''


def _candidate_server(names: Sequence[str], read_fd: int, write_fd: int) -> str:
    """The loop the candidate's process runs after its code: answer calls until the pipe closes."""
    return _CODEC + f'''

def __spgg_serve():
    import json, os
    fns = {{n: globals().get(n) for n in {list(names)!r}}}
    rf = os.fdopen({int(read_fd)}, "rb")
    wf = os.fdopen({int(write_fd)}, "w", encoding="utf-8")
    while True:
        line = rf.readline({MAX_MESSAGE_BYTES})
        if not line:
            return
        try:
            req = json.loads(line)
            out = ["ok", __spgg_enc(fns[req["f"]](*__spgg_dec(req["a"]), **__spgg_dec(req["k"])))]
        except BaseException as e:
            out = ["exc", type(e).__name__ + ": " + str(e)[:200]]
        wf.write(json.dumps(out) + "\\n")
        wf.flush()

__spgg_serve()
'''


def build_humaneval_checked(problem: Problem, completion: str, nonce: str,
                            checker_fds: tuple[int, int],
                            candidate_fds: tuple[int, int]) -> tuple[str, str, str]:
    """(checker program, candidate program, code) for checked HumanEval scoring.

    ``checker_fds``/``candidate_fds`` are each process's (read, write) pipe ends. The checker runs
    the official prompt (trusted: it keeps the prompt's helpers, e.g. ``poly`` or
    ``encode_cyclic``, even when the completion redefines them), binds the entry point to a proxy
    that calls into the candidate's process, runs the official ``test`` and ``check(entry_point)``
    and prints the nonce line. The candidate program is the classic program's code part followed
    by the answering loop.
    """
    md = problem.metadata
    entry = md["entry_point"]
    code = extract_code(completion, entry)
    if _def_re(entry).search(code):
        body = problem.prompt + "\n    pass\n\n" + code
    else:
        body = problem.prompt + code
    candidate = f"{body}\n\n\n" + _candidate_server([entry], *candidate_fds)
    checker = (_checker_prelude([entry], *checker_fds)
               + f"\n\n{problem.prompt}\n    pass\n\n"
               + f"{entry} = __spgg_proxies[{entry!r}]\n\n"
               + f"{md['test']}\n\n"
               + f"check({entry})\n"
               + f"print({nonce!r} + ' PASS')\n")
    return checker, candidate, code


# --------------------------------------------------------------------------------------------
# Checked MBPP: the asserts run in the checker; every function they call that the (trusted) setup
# code does not define is a proxy into the candidate's process. Calls carry a sequence number so
# that a call abandoned by a per-test timeout cannot answer a later one.
# --------------------------------------------------------------------------------------------


def mbpp_called_names(tests: Sequence[str], setup: str = "") -> list[str]:
    """Names the asserts use that neither the setup code, the tests themselves nor the builtins
    define: the candidate's functions (usually one)."""
    defined = set(dir(builtins))
    used: list[str] = []
    for src in [setup, *tests]:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined.update((a.asname or a.name).partition(".")[0] for a in node.names)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                defined.add(node.id)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
    for src in tests:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
                    and node.id not in defined and node.id not in used):
                used.append(node.id)
    return used


def _mbpp_checker_prelude(names: Sequence[str], read_fd: int, write_fd: int) -> str:
    return _CODEC + f'''
import json as __spgg_json, os as __spgg_os
__spgg_req = __spgg_os.fdopen({int(write_fd)}, "w", encoding="utf-8")
__spgg_resp = __spgg_os.fdopen({int(read_fd)}, "rb")
__spgg_seq = [0]


class CandidateError(Exception):
    """The candidate raised, returned something that is not plain data, or stopped answering."""


def __spgg_proxy(name):
    def call(*args, **kwargs):
        __spgg_seq[0] += 1
        seq = __spgg_seq[0]
        __spgg_req.write(__spgg_json.dumps(
            {{"n": seq, "f": name, "a": __spgg_enc(list(args)), "k": __spgg_enc(kwargs)}}) + "\\n")
        __spgg_req.flush()
        while True:
            line = __spgg_resp.readline({MAX_MESSAGE_BYTES})
            if not line.endswith(b"\\n"):
                raise CandidateError("%s: no answer from the candidate" % name)
            msg = __spgg_json.loads(line)
            if type(msg) is not list or len(msg) != 3 or type(msg[0]) is not int or msg[1] not in ("ok", "exc"):
                raise CandidateError("%s: malformed answer" % name)
            if msg[0] == seq:
                break
            if msg[0] > seq:
                raise CandidateError("%s: answer out of order" % name)
            # else: the late answer to a call a per-test timeout abandoned; skip it
        if msg[1] == "exc":
            raise CandidateError("%s raised %.200s" % (name, msg[2]))
        return __spgg_dec(msg[2])
    call.__name__ = call.__qualname__ = name
    return call

__spgg_proxies = {{n: __spgg_proxy(n) for n in {list(names)!r}}}
globals().update(__spgg_proxies)
'''


def _mbpp_candidate_server(names: Sequence[str], read_fd: int, write_fd: int, call_timeout_s: float) -> str:
    return _CODEC + f'''

def __spgg_serve():
    import json, os, signal
    class CallTimeout(BaseException):
        pass
    def alarm(signum, frame):
        raise CallTimeout("call took more than {float(call_timeout_s)!r} s")
    fns = {{n: globals().get(n) for n in {list(names)!r}}}
    rf = os.fdopen({int(read_fd)}, "rb")
    wf = os.fdopen({int(write_fd)}, "w", encoding="utf-8")
    while True:
        line = rf.readline({MAX_MESSAGE_BYTES})
        if not line:
            return
        seq = 0
        try:
            req = json.loads(line)
            seq = int(req["n"])
            fn = fns[req["f"]]
            if fn is None:
                raise NameError("name %r is not defined" % (req["f"],))
            args, kwargs = __spgg_dec(req["a"]), __spgg_dec(req["k"])
            signal.signal(signal.SIGALRM, alarm)  # (again: the candidate's code may have changed it)
            signal.setitimer(signal.ITIMER_REAL, {float(call_timeout_s)!r})
            try:
                val = fn(*args, **kwargs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            out = [seq, "ok", __spgg_enc(val)]
        except BaseException as e:
            try:
                out = [seq, "exc", type(e).__name__ + ": " + str(e)[:200]]
            except BaseException:
                out = [seq, "exc", "unprintable exception"]
        wf.write(json.dumps(out) + "\\n")
        wf.flush()

__spgg_serve()
'''


def build_mbpp_checked(problem: Problem, completion: str, nonce: str, checker_fds: tuple[int, int],
                       candidate_fds: tuple[int, int], *, include_challenge: bool = False,
                       per_test_timeout_s: float = 2.0) -> tuple[str, str, str, int]:
    """(checker program, candidate program, code, n_tests) for checked MBPP scoring.

    The candidate program is the setup code and the model's code followed by a loop answering
    calls. The checker runs the (trusted) setup code, binds every name the asserts call but do not
    define (:func:`mbpp_called_names`) to a proxy into the candidate's process, runs each assert
    separately under a ``SIGALRM`` budget (``per_test_timeout_s`` + 0.5 s) and prints the result
    list on a nonce-tagged line. The candidate's process interrupts each call after
    ``per_test_timeout_s`` (its own ``SIGALRM``), so a hanging call fails its test only.
    """
    md = problem.metadata
    code = extract_code(completion)
    tests = _mbpp_tests(problem, include_challenge)
    setup = md.get("test_setup_code") or ""
    names = mbpp_called_names(tests, setup)
    candidate = ((setup + "\n\n" if setup else "") + code + "\n\n\n"
                 + _mbpp_candidate_server(names, *candidate_fds, call_timeout_s=per_test_timeout_s))
    harness = _assert_harness(tests, nonce, per_test_timeout_s + 0.5, "dict(globals())")
    checker = ((setup + "\n\n" if setup else "") + _mbpp_checker_prelude(names, *checker_fds) + harness)
    return checker, candidate, code, len(tests)
