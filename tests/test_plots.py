"""Every PNG the project writes reads without the code: legends inside the figure, a title saying
what was run, one quantity per panel where scales differ, integer steps, no offset tick labels."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from spgg_jax.game import report  # noqa: E402


@pytest.fixture
def saved(monkeypatch):
    """The figures saved during the test (``savefig`` is wrapped to keep them)."""
    figs = []
    original = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        figs.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figs


def _check_readable(fig) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # pyplot.close left the figure without a drawing canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for leg in legends:
        ext = leg.get_window_extent(renderer)
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1 and ext.y0 >= box.y0 - 1 and ext.y1 <= box.y1 + 1, \
            f"legend {[t.get_text() for t in leg.get_texts()]} outside the figure"
    assert fig._suptitle is not None and fig._suptitle.get_text(), "no title saying what was run"
    for ax in fig.axes:
        if ax.axison:
            assert ax.yaxis.get_offset_text().get_text() == "", f"offset tick labels on {ax.get_title()!r}"


def _row(**kw):
    n = kw.pop("n", 3)
    row = {"reward": "mac_spgg", "n": n, "q": list(np.linspace(0.2, 1.0, n)), "rewards": [0.1] * n,
           "welfare": 1.0, "final_score": 0.6, "threshold_met": True, "any_free_rider": False, "unique": True,
           "good": True, "gamma": 0.5, "rho": 1.8, "B": 0.6, "P": 1.5}
    row.update(kw)
    return row


META = {"reward": "mac_spgg", "grid": 11, "base": {"n": 3}}


def test_sweep_figures_are_readable(tmp_path, saved):
    groups = {
        "1d_gamma": [_row(gamma=g, welfare=4 * g, final_score=0.6 + 0.2 * g, unique=g != 0.5) for g in (0, 0.5, 1)],
        "map_gamma_rho": [_row(gamma=g, rho=r, any_free_rider=g < 0.3, threshold_met=r > 1)
                          for g in (0.0, 0.5, 1.0) for r in (0.0, 1.5, 3.0)],
    }
    files = report.write_report(groups, tmp_path, META)
    assert {"profiles", "welfare", "maps", "csv", "summary"} <= set(files)
    assert len(saved) == 3
    for fig in saved:
        _check_readable(fig)
        assert "mac_spgg" in fig._suptitle.get_text() and "n=3" in fig._suptitle.get_text()
    welfare = saved[1]
    for ax in welfare.axes:  # W and S have different scales: never on one axis
        labels = " ".join(line.get_label() for line in ax.get_lines())
        assert not ("welfare" in labels and "final score" in labels)
    profile_ax = saved[0].axes[0]
    assert all(float(t).is_integer() for t in profile_ax.get_xticks()), "positions get fractional ticks"
    # the map's cells are centred on the solved grid values: 3 x 3 games, edges half a step beyond
    mesh = saved[2].axes[0].collections[0]
    assert mesh.get_array().size == 9
    np.testing.assert_allclose(saved[2].axes[0].get_xlim(), (-0.25, 1.25))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["fraction_unique"] == 0.916667  # 11 of 12 unique, rounded to 6 significant digits


def test_sweep_writes_only_the_figures_its_shape_fits(tmp_path, saved):
    files = report.write_report({"grid": [_row(gamma=g, rho=r, B=b) for g in (0, 1) for r in (1, 2) for b in (0.5, 0.6)]},
                                tmp_path, META)
    assert not saved and set(files) == {"csv", "summary"}


def _fake_run(run_dir, steps=3):
    run_dir.mkdir()
    rows = []
    for s in range(1, steps + 1):
        row = {"step": s, "accuracy": 0.3 + 0.05 * s, "threshold_met": 0.3 + 0.05 * s, "free_riding": 0.0,
               "entropy": -5.5 + 0.01 * s, "approx_kl": 0.01 * s, "clip_frac": 0.2}
        for a in (1, 2, 3):
            row[f"reward/agent{a}"] = -1.0 + 0.1 * s
            row[f"tokens/agent{a}"] = 20.0 + a
            row[f"mode/temperature/agent{a}"] = 0.7
            row[f"mode/max_new_tokens/agent{a}"] = 31.9973 + 1e-5 * s * a  # float noise around a constant
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "config.json").write_text(json.dumps({"method": "gen_params", "task": "basic_arithmetic", "batch": 16,
                                                      "team": {"agents": [{}, {}, {}], "reward": "mac_spgg"}}))


def test_learning_curves_are_readable(tmp_path, saved):
    from spgg_jax.rl.metrics import plot_run

    _fake_run(tmp_path / "run")
    out = plot_run(tmp_path / "run")
    assert out.stat().st_size > 1000
    (fig,) = saved
    _check_readable(fig)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.axison}
    for title, ax in panels.items():
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks), f"fractional steps on {title!r}"
        lines = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert not ("entropy" in lines and "approx_kl" in lines), "entropy shares an axis with the KL"
    acc = next(ax for t, ax in panels.items() if t.startswith("team accuracy"))
    assert acc.get_ylim()[0] <= 0 and acc.get_ylim()[1] >= 1  # a rate shows its whole range
    tokens = next(ax for t, ax in panels.items() if t.startswith("max_new_tokens"))
    assert np.ptp(tokens.get_ylim()) > 1  # not a zoom into 1e-5 noise


def test_game_learning_curves_are_readable(tmp_path, saved):
    from spgg_jax.rl.game_learners import GameRLConfig
    from spgg_jax.rl.game_report import _plot_learning

    cfg = GameRLConfig(reward="mac_spgg", n=3, steps=20, batch=8)
    runs = [{"seed": s, "gamma": g} for g in (0.3, 0.9) for s in (0, 1)]
    q = np.broadcast_to(np.linspace(0.2, 1.0, 3), (4, 20, 3)).copy()
    spne = [{"q": [0.2, 1.0, 1.0]}] * 4
    _plot_learning(tmp_path / "lc.png", cfg, runs, {"q_mean": q}, spne, ["gamma"])
    (fig,) = saved
    _check_readable(fig)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "equilibrium (SPNE)" in labels and "min-max over seeds" in labels
    assert "20 steps" in fig._suptitle.get_text()
