"""Rewrite ``tests/rl/reference/{gen_params,token}.json``: 3 training steps and the held-out table of
the tiny model, in the settings of ``test_behaviour_preserved_against_the_first_trainer``.

    python tests/rl/reference/make_reference.py

Only after a change that alters what training computes on purpose (say which in the commit).
"""

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ (tiny_models)

from tiny_models import make_tiny_model_dir, run_metrics, tiny_train_overrides  # noqa: E402

from spgg_jax.train import Trainer, load_config  # noqa: E402

SETTINGS = {
    "gen_params": {"gen_params.controls": "temperature,top_p,top_k,max_new_tokens,repetition_penalty,presence_penalty"},
    "token": {"batch": 2, "token.group_size": 2, "token.epochs": 1},
}

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        model = make_tiny_model_dir(Path(d) / "model")
        for method, extra in SETTINGS.items():
            run = Path(d) / method
            out = Trainer(load_config(None, tiny_train_overrides(model, run, 3, method=method, eval_size=4,
                                                                 **extra))).run()
            ev = [{k: v for k, v in r.items() if k != "seconds"} for r in out["eval"]["rows"]]
            (HERE / f"{method}.json").write_text(json.dumps({"metrics": run_metrics(run), "eval": ev}, indent=1))
            print(f"wrote {HERE / f'{method}.json'}")
