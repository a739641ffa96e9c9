"""The trainer's reference metrics: write them, and compare a run with them across CPUs.

    python tests/rl/reference/make_reference.py            # rewrite {gen_params,token}.json
    python tests/rl/reference/make_reference.py --check    # compare a fresh run, print the largest
                                                           # differences per kind of metric

Rewrite only after a change that alters what training computes on purpose (say which in the commit).

The reference files were written on one CPU and are checked on any x86-64 CPU. float32 results differ
in their last digits between CPUs (vector width: XLA's CPU kernels reduce in 8-, 16- or 4-lane
blocks, so sums are added in another order), so each metric is compared by what it is (``KINDS``):

- discrete outcomes (step, accuracy, correctness, quality, tokens, free riding, eval counts) are
  means of integers over a handful of episodes: equal up to the rounding of that mean (rtol 1e-6);
  one changed token or outcome moves them by at least 1/24.
- continuous values (rewards, costs, losses, KL, the policy's parameters) carry the float32
  accumulation of three training steps: one reduction over n terms errs by about sqrt(n) ulps
  (float32 ulp 1.2e-7, n up to ~10^3 in the tiny model: ~4e-6) and three Adam steps carry it on.
  rtol 1e-4 keeps a margin of 25 over that and stays far below a change of behaviour (a changed
  token or episode moves these by 1e-2 or more). Some are small results of terms of order 1 that
  cancel (the policy loss: group-normalised advantages sum to zero, so -0.076 comes from terms near
  1, and its relative error is 10x theirs: 2.1e-5 to 3.4e-5 measured); atol 1e-5 covers that
  absolute accumulation error (about sqrt(n) ulps of the terms) whatever the size of the result.
  Measured against the committed files (the largest relative difference, always the policy loss):
  AMD EPYC 4.1e-6 (issue 22); Intel Sapphire Rapids under pytest 2.2e-6, alone 2.1e-5, alone with
  ``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` 2.7e-5, with ``SSE4_2`` 3.4e-5, on one core 2.1e-5; the
  token learner's at most 1.1e-7 apart (apart from values that are zero up to noise, within atol).
  Discrete metrics never differed.
- noise metrics (``logprob_mismatch``: the difference of two computations of the same log-prob) are
  not reproducible digits at all: they are checked against a bound (below 1e-4), not the reference.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ (tiny_models)

SETTINGS = {
    "gen_params": {"gen_params.controls": "temperature,top_p,top_k,max_new_tokens,repetition_penalty,presence_penalty"},
    "token": {"batch": 2, "token.group_size": 2, "token.epochs": 1},
}

DISCRETE_PREFIXES = ("step", "accuracy", "correct/", "q/", "tokens/", "free_riding", "threshold_met",
                     "final_score", "ppo_epochs_run", "nothing/", "n", "llm_calls", "tokens_generated")
NOISE_BOUNDS = {"logprob_mismatch": 1e-4}
TOLERANCE = {"discrete": dict(rtol=1e-6, atol=0.0), "continuous": dict(rtol=1e-4, atol=1e-5)}


def kind(key: str) -> str:
    """``"noise"``, ``"discrete"`` or ``"continuous"`` for a metric or eval-row key."""
    if key in NOISE_BOUNDS:
        return "noise"
    if key == "n" or any(key.startswith(p) for p in DISCRETE_PREFIXES if p != "n"):
        return "discrete"
    return "continuous"


def _pairs(want, got, where):
    """(where, want, got) for every number in two equally shaped JSON values; a structural difference
    (keys, lengths, strings, None) is reported as a pair of non-numbers."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(want) != set(got):
            yield where, sorted(want), sorted(got)
            return
        for k in want:
            yield from _pairs(want[k], got[k], where + (k,))
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (w, g) in enumerate(zip(want, got)):
            yield from _pairs(w, g, where + (i,))
    else:
        yield where, want, got


def _key(where) -> str:
    return next((w for w in reversed(where) if isinstance(w, str)), "")


def compare(want, got) -> tuple[list[str], dict[str, float]]:
    """Violations (one line each) of ``got`` against the reference ``want`` under these rules, and per
    kind the largest share of its tolerance used (|got - want| / (atol + rtol |want|); 1 = at the
    limit), with where (for the noise kind: the largest value)."""
    bad, worst = [], {"discrete": (0.0, ""), "continuous": (0.0, ""), "noise": (0.0, "")}
    for where, w, g in _pairs(want, got, ()):
        key, name = _key(where), "/".join(map(str, where))
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (w, g))
        if not numeric:
            if w != g:
                bad.append(f"{name}: reference {w!r}, got {g!r}")
            continue
        k = kind(key)
        if k == "noise":
            worst["noise"] = max(worst["noise"], (abs(g), name))
            if not abs(g) < NOISE_BOUNDS[key]:
                bad.append(f"{name}: {g!r} is not below the bound {NOISE_BOUNDS[key]}")
            continue
        rel = abs(g - w) / max(abs(w), 1e-30)
        tol = TOLERANCE[k]
        allowed = tol["atol"] + tol["rtol"] * abs(w)
        worst[k] = max(worst[k], (abs(g - w) / allowed if allowed else float(g != w), name))
        if not abs(g - w) <= allowed:
            bad.append(f"{name} ({k}): reference {w!r}, got {g!r} (relative difference {rel:.2e}, "
                       f"allowed {tol['rtol']:g})")
    return bad, worst


def run_reference(method: str, extra: dict, model_dir: Path, run: Path) -> dict:
    """Three training steps and the held-out table of the tiny model, as the reference files hold them."""
    from tiny_models import run_metrics, tiny_train_overrides

    from spgg_jax.train import Trainer, load_config

    out = Trainer(load_config(None, tiny_train_overrides(model_dir, run, 3, method=method, eval_size=4,
                                                         **extra))).run()
    ev = [{k: v for k, v in r.items() if k != "seconds"} for r in out["eval"]["rows"]]
    return {"metrics": run_metrics(run), "eval": ev}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="compare a fresh run with the committed files instead of rewriting them")
    args = ap.parse_args(argv)
    from tiny_models import make_tiny_model_dir

    from spgg_jax.tidy import tidy

    failed = False
    with tempfile.TemporaryDirectory() as d:
        model = make_tiny_model_dir(Path(d) / "model")
        for method, extra in SETTINGS.items():
            got = run_reference(method, extra, model, Path(d) / method)
            if not args.check:
                (HERE / f"{method}.json").write_text(json.dumps(got, indent=1))
                print(f"wrote {HERE / f'{method}.json'}")
                continue
            want = json.loads((HERE / f"{method}.json").read_text())
            bad, worst = compare(want, {"metrics": got["metrics"], "eval": tidy(got["eval"])})
            print(f"{method}: largest share of the tolerance used: " +
                  ", ".join(f"{k} {v:.3f} ({at})" for k, (v, at) in worst.items() if k != "noise") +
                  f"; largest noise metric {worst['noise'][0]:.2e}; {len(bad)} violations")
            for line in bad:
                print("  " + line)
            failed |= bool(bad)
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
