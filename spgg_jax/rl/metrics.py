"""Metrics to files people can plot: JSONL (one object per step) and TensorBoard event files.

Only the main process (``jax.process_index() == 0``) writes. On resume, lines after the restored
step are dropped so the file matches an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsWriter:
    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        self.main = jax.process_index() == 0
        self._tb = None
        if not self.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            rows, dropped = metrics_rows(self.path)
            if dropped is not None:
                warnings.warn(f"{self.path}: dropping the truncated last line {dropped[0]} "
                              f"({dropped[1][:60]!r}...)", RuntimeWarning, stacklevel=2)
            kept = [line for _, line, row in rows if row.get("step", 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        if tensorboard:
            from tensorboardX import SummaryWriter

            # a resume (from step 0 too, when every checkpoint was set aside) drops the later events
            purge = resume_step + 1 if resume_step is not None else None
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        if not self.main:
            return
        row = {"step": int(step), **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def metrics_rows(path: str | Path) -> tuple[list[tuple[int, str, dict]], tuple[int, str] | None]:
    """(line number, line, row) of each row of an existing ``metrics.jsonl``, and the (line number,
    text) of a truncated last line (a crash mid-write), which is left out (``None`` when there is
    none). A bad line elsewhere is an error naming the file and the line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    out = []
    dropped = None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}, not an object")
        except ValueError as err:
            if i == last:
                dropped = (i + 1, line)
                continue
            raise ValueError(f"{path}: line {i + 1} is not a JSON object ({err}): "
                             f"{line[:80]!r}") from None
        out.append((i + 1, line, row))
    return out, dropped


def last_metrics_step(run_dir: str | Path) -> tuple[int, tuple[int, str] | None]:
    """The largest ``step`` of a run's complete metrics rows (0 when there is no file or no row), and
    the truncated last line :func:`metrics_rows` left out (or ``None``); reads only."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return 0, None
    rows, dropped = metrics_rows(path)
    steps = [row.get("step") for _, _, row in rows]
    return max((s for s in steps if isinstance(s, int) and not isinstance(s, bool)), default=0), dropped


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir} (is it a training run directory?)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


#: Metrics that are shares in [0, 1]: their panels show the whole range.
RATES = ("accuracy", "free_riding", "threshold_met", "nothing")


def _readable_y(ax, y, rate: bool) -> None:
    """Plain tick labels (no "+3.1997e1" offset); rates on [0, 1]; a near-constant series gets a
    visible span instead of a zoom into float noise."""
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    if rate:
        ax.set_ylim(-0.03, 1.03)
        return
    y = y[np.isfinite(y)]
    if y.size and np.ptp(y) < 1e-3 * max(1.0, float(np.abs(y).max())):
        mid, half = float(y.mean()), 0.05 * max(1.0, abs(float(y.mean())))
        ax.set_ylim(mid - half, mid + half)


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """PNG learning curves of a run, one quantity per panel: rewards, accuracy, free riding, tokens, the
    generation parameters, entropy, KL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}/metrics.jsonl is empty")
    steps = np.array([r["step"] for r in rows])

    def series(key):
        return np.array([r.get(key) if r.get(key) is not None else np.nan for r in rows], float)

    def keys(prefix):
        return sorted({k for r in rows for k in r if k.startswith(prefix)})

    temperature = keys("mode/temperature/agent") or keys("gen/temperature/agent")
    panels = [
        ("reward per agent", keys("reward/agent")),
        ("team accuracy (final answer)", ["accuracy"]),
        ("free riding (share of agents at <= 5% of the token budget)", ["free_riding"]),
        ("contributes nothing (empty, no answer, or a bare copy of a predecessor's)", keys("nothing/agent")),
        ("generated tokens per agent", keys("tokens/agent")),
        ("temperature per agent (policy mode)" if keys("mode/temperature/agent") else "temperature per agent (sampled)",
         temperature),
        ("max_new_tokens per agent (policy mode)", keys("mode/max_new_tokens/agent")),
        ("policy entropy (nats; a density's entropy, may be < 0)", [k for k in ("entropy",) if any(k in r for r in rows)]),
        ("approximate KL per update", [k for k in ("approx_kl", "kl_ref") if any(k in r for r in rows)]),
    ]
    panels = [(t, ks) for t, ks in panels if ks]
    cols = 4
    rows_n = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.3 * rows_n), squeeze=False)
    for ax, (title, ks) in zip(axes.ravel(), panels):
        for k in ks:
            y = series(k)
            ax.plot(steps, y, label=k.split("/")[-1] if "/" in k else k, alpha=0.5)
            if len(y) >= 5:  # a moving average makes noisy RL curves readable
                w = max(2, len(y) // 10)
                sm = np.convolve(np.nan_to_num(y), np.ones(w) / w, mode="valid")
                ax.plot(steps[w - 1:], sm, color=ax.lines[-1].get_color(), lw=2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        _readable_y(ax, np.concatenate([series(k) for k in ks]), rate=ks[0].split("/")[0] in RATES)
        if len(ks) > 1:  # one series: the title names it
            ax.legend(fontsize=7, loc="best")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    cfg_path = Path(run_dir) / "config.json"
    if cfg_path.is_file():
        c = json.loads(cfg_path.read_text())
        team = c.get("team", {})
        n = len(team.get("agents", [])) if isinstance(team, dict) else "?"
        fig.suptitle(f"{c.get('method')} on {c.get('task')}: {n} agents, reward {team.get('reward')}, final "
                     f"{team.get('final')}, effort {team.get('effort')}; {c.get('batch')} problems per step "
                     "(thin: per step, thick: moving average)", fontsize=10)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "learning_curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
