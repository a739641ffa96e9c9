"""MetricsWriter resume: a truncated last line is dropped with a warning; a bad middle line is an
error naming the file and the line."""

import json

import pytest

from spgg_jax.rl.metrics import MetricsWriter, read_metrics


def _write(tmp_path, text):
    (tmp_path / "metrics.jsonl").write_text(text)


def test_truncated_last_line_dropped_with_warning(tmp_path):
    _write(tmp_path, json.dumps({"step": 1, "r": 0.5}) + "\n" + json.dumps({"step": 2}) + "\n" + '{"step": 3, "r"')
    with pytest.warns(RuntimeWarning, match=r"metrics\.jsonl: dropping the truncated last line 3"):
        w = MetricsWriter(tmp_path, resume_step=2, tensorboard=False)
    w.write(3, {"r": 1.0})
    w.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_rows_after_resume_step_dropped(tmp_path):
    _write(tmp_path, "".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4)))
    MetricsWriter(tmp_path, resume_step=2, tensorboard=False).close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


@pytest.mark.parametrize("bad", ['{"step": 2', "[1, 2]", "garbage"])
def test_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path, bad):
    _write(tmp_path, json.dumps({"step": 1}) + "\n" + bad + "\n" + json.dumps({"step": 3}) + "\n")
    with pytest.raises(ValueError, match=r"metrics\.jsonl: line 2 is not a JSON object") as e:
        MetricsWriter(tmp_path, resume_step=3, tensorboard=False)
    assert "\n" not in str(e.value)
