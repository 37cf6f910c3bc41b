"""Site monitoring without labels: windows, alarms on streams with a known shift, none on an in-domain one."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import update

from core.checkpoint import CheckpointMeta
from core.operating_point import OperatingPoint
from db.engine import session_scope
from db.models import Prediction
from service.monitoring import estimated_intervals, expected_rates, monitor, parse_window
from tests.db.conftest import add_prediction
from tests.helpers import run_main

SHA = "f" * 64  # the model version tests.db.conftest.add_prediction logs under
POINT = OperatingPoint(threshold=0.5, temperature=1.0)
CUT = 1.6


def _reference_meta(rng):
    margins = np.concatenate([rng.normal(3, 1.5, 700), rng.normal(-3, 1.5, 300)])  # 70 % pneumonia
    scores = rng.normal(0, 0.8, 1000)
    meta = CheckpointMeta("resnet18", 224, [0.5] * 3, [0.5] * 3)
    meta.domain = {"reference_margins": margins.tolist(), "reference_scores": scores.tolist(), "cut": CUT}
    return meta


def _log_stream(engine, rng, count, seed0, margin_mix=0.7, score_shift=0.0):
    for i in range(count):
        margin = rng.normal(3, 1.5) if rng.random() < margin_mix else rng.normal(-3, 1.5)
        p = float(1 / (1 + np.exp(-margin)))
        score = float(rng.normal(score_shift, 0.8))
        add_prediction(engine, seed=seed0 + i, p=p, out_of_domain=score > CUT, domain_score=score)


def test_an_in_domain_stream_raises_no_alarm(engine):
    rng = np.random.default_rng(0)
    meta = _reference_meta(rng)
    _log_stream(engine, rng, 150, 0)
    report = monitor(engine, meta, SHA, POINT)
    assert len(report.windows) == 1 and report.windows[0].count == 150 and report.windows[0].tested
    assert report.alarms == []
    sens = report.windows[0].estimated_sensitivity
    assert sens[1] <= report.reference["estimated_sensitivity"] <= sens[2] + 0.02


def test_a_shifted_stream_alarms_naming_the_figure_and_window(engine):
    rng = np.random.default_rng(1)
    meta = _reference_meta(rng)
    _log_stream(engine, rng, 120, 0, score_shift=2.5)  # features drift: many images out of domain
    report = monitor(engine, meta, SHA, POINT)
    texts = [a["alarm"] for a in report.alarms]
    assert any(t.startswith("out of domain:") for t in texts) and any(t.startswith("feature drift:") for t in texts)
    assert all(report.windows[0].start.strftime("%Y-%m-%d") in t for t in texts)
    assert all("audit sample" in a["recommendation"] for a in report.alarms)


def test_a_change_of_case_mix_alarms_on_the_pneumonia_share(engine):
    rng = np.random.default_rng(2)
    meta = _reference_meta(rng)
    _log_stream(engine, rng, 150, 0, margin_mix=0.3)  # 30 % pneumonia where held-out had 70 %
    texts = [a["alarm"] for a in monitor(engine, meta, SHA, POINT).alarms]
    assert any(t.startswith("PNEUMONIA share:") for t in texts)
    assert not any(t.startswith("out of domain:") for t in texts)


def test_windows_split_by_time_and_small_ones_are_not_tested(engine):
    rng = np.random.default_rng(3)
    meta = _reference_meta(rng)
    _log_stream(engine, rng, 40, 0)
    _log_stream(engine, rng, 10, 100)
    old = datetime.now(UTC) - timedelta(days=10)
    with session_scope(engine) as session:
        session.execute(update(Prediction).where(Prediction.id <= 40).values(created_at=old))
    report = monitor(engine, meta, SHA, POINT, window=timedelta(days=7))
    assert [w.count for w in report.windows] == [40, 10]
    assert [w.tested for w in report.windows] == [True, False]
    since = monitor(engine, meta, SHA, POINT, since=datetime.now(UTC) - timedelta(days=1))
    assert [w.count for w in since.windows] == [10]


def test_expected_rates_are_what_calibrated_probabilities_imply():
    p = np.array([0.9, 0.8, 0.3, 0.1])
    called = p >= 0.5
    sensitivity, specificity = expected_rates(p, called)
    assert sensitivity == pytest.approx(1.7 / 2.1) and specificity == pytest.approx(1.6 / 1.9)
    sens, spec = estimated_intervals(np.full(400, 0.5), np.arange(400) < 200)
    assert sens[1] < 0.5 < sens[2] and spec[1] < 0.5 < spec[2]


def test_window_text_is_parsed_or_refused():
    assert parse_window("7d") == timedelta(days=7) and parse_window("24h") == timedelta(hours=24)
    for bad in ("", "0d", "7 weeks", "-1d"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_the_command_prints_json_with_alarms_and_refuses_bad_options_in_one_line(data_dir):
    result = run_main("db", "monitor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["windows"] == [] and report["alarms"] == [] and report["reference"]["images"] > 500
    bad = run_main("db", "monitor", "--window", "soon")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error:")
