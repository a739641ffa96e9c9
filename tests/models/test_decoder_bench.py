"""``spgg bench forward`` on a tiny HF directory: runs end to end and checks the weights agree."""

from __future__ import annotations

import argparse
import json

import pytest

from spgg_jax.bench import forward as bench_forward
from spgg_jax.cli.bench import BENCHMARKS


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_forward.add_arguments(parser)
    return parser.parse_args(argv)


def test_forward_benchmark_is_registered():
    assert BENCHMARKS["forward"][0] == "spgg_jax.bench.forward"


@pytest.mark.torch
def test_bench_forward_on_hf_dir(tiny_hf, capsys):
    m = tiny_hf("qwen2")
    rc = bench_forward.run(_args(["--model", m.path, "--batch", "2", "--seq-len", "8",
                                  "--warmup", "1", "--repeats", "1", "--json"]))
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["logits_max_abs_diff"] < 1e-4
    assert out["jax_tokens_per_s"] > 0 and out["torch_tokens_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["jax_tokens_per_s"] / out["torch_tokens_per_s"])


def test_bench_forward_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="--batch"):
        bench_forward.run(_args(["--model", str(tmp_path), "--batch", "0"]))
    with pytest.raises(SystemExit):  # --model and --shape are exclusive
        _args(["--model", "x", "--shape", "gpt2"])
