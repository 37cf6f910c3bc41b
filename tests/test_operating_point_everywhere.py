"""A saved operating point (threshold + calibration) reaches every entry point.

Saved once in a real SQLite review database, then used by ``core.predict`` (with
and without ``--log``), ``training.evaluate``, folder evaluation and the
Predict page: each must call and calibrate the image the same way.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import text

from core.data import scan_image_folder
from core.evaluation import build_report, score_records
from core.inference import Predictor
from core.operating_point import OperatingPoint
from service import known_models, predictions, store
from tests.helpers import make_image_folder, png_bytes, xray_like


@pytest.fixture()
def saved(tmp_path, monkeypatch, tiny_checkpoint):
    """A review database (via $DATABASE_URL) holding a site operating point for the tiny model.

    The threshold is chosen so the saved point flips the call of ``image`` compared
    with the checkpoint's own operating point.
    """
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'reviews.db'}")
    monkeypatch.delenv("IMAGE_STORE_DIR", raising=False)
    image = tmp_path / "case.png"
    xray_like(5, True, 96).save(image)
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    margin = float(np.diff(predictor.logits([xray_like(5, True, 96).convert("RGB")]).numpy())[0, 0])
    point = OperatingPoint(threshold=0.5, temperature=0.8, bias=0.3)
    p = float(point.p_pneumonia_from_margin(np.array([margin]))[0])
    own = predictor.predict([xray_like(5, True, 96).convert("RGB")])[0]
    threshold = (p + 1) / 2 if own == "PNEUMONIA" else p / 2  # the saved point calls it the other way
    engine = store.open_store()
    saved_point = OperatingPoint(threshold=threshold, temperature=0.8, bias=0.3, goal="test")
    change = known_models.save_operating_point(engine, predictor, saved_point, "Dr Site", {"why": "test"})
    expected = "NORMAL" if own == "PNEUMONIA" else "PNEUMONIA"
    return {
        "engine": engine,
        "image": image,
        "threshold": threshold,
        "p": p,
        "label": expected,
        "checkpoint": tiny_checkpoint,
        "change": change,
    }


def test_core_predict_without_log_uses_the_saved_point(saved, capsys):
    from service.predict_cli import get_args_parser, main

    code = main(
        get_args_parser().parse_args(
            [str(saved["image"]), "--json", "--checkpoint", str(saved["checkpoint"]), "--device", "cpu"]
        )
    )
    assert code == 0
    row = json.loads(capsys.readouterr().out)
    assert row["prediction"] == saved["label"] and row["operating_point"] == "database"
    assert row["threshold"] == pytest.approx(saved["threshold"])
    assert row["probabilities"]["PNEUMONIA"] == pytest.approx(saved["p"], abs=1e-5)


def test_core_predict_log_stores_what_was_shown(saved, capsys):
    from service.predict_cli import get_args_parser, main

    code = main(
        get_args_parser().parse_args(
            [str(saved["image"]), "--json", "--log", "--checkpoint", str(saved["checkpoint"]), "--device", "cpu"]
        )
    )
    assert code == 0
    row = json.loads(capsys.readouterr().out)
    with saved["engine"].connect() as connection:
        stored = connection.execute(text("SELECT predicted_label, threshold, p_pneumonia, channel FROM predictions"))
        label, threshold, p, channel = stored.one()
    assert (label, channel) == (saved["label"], "cli") and row["prediction"] == label
    assert threshold == pytest.approx(saved["threshold"]) and p == pytest.approx(saved["p"], abs=1e-5)


def test_training_evaluate_reports_the_point_it_used(saved, tmp_path):
    from tests.helpers import run_main

    folder = make_image_folder(tmp_path / "eval", per_class=3, size=64)
    out = tmp_path / "report.json"
    common = [
        "--checkpoint",
        saved["checkpoint"],
        "--data-dir",
        folder,
        "--output",
        out,
        "--bootstrap",
        "0",
        "--workers",
        "0",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert run_main("training.evaluate", *common).returncode == 0
    report = json.loads(out.read_text())
    assert report["threshold"] == pytest.approx(saved["threshold"])
    assert report["operating_point"] == {
        "threshold": pytest.approx(saved["threshold"]),
        "temperature": 0.8,
        "bias": 0.3,
        "origin": "database",
        "goal": "test",
        "change_id": saved["change"],
    }
    # --checkpoint-operating-point ignores the database
    assert run_main("training.evaluate", *common, "--checkpoint-operating-point").returncode == 0
    assert json.loads(out.read_text())["operating_point"]["origin"] == "checkpoint"


def test_folder_evaluation_and_logging_use_the_point_in_force(saved, tmp_path):
    predictor = known_models.predictor_in_force(saved["engine"], Predictor.from_checkpoint(saved["checkpoint"], "cpu"))
    folder = make_image_folder(tmp_path / "eval", per_class=2, size=64)
    scored, _ = score_records(predictor, scan_image_folder(folder))
    report = build_report(predictor, scored, str(folder), bootstrap=0)
    assert report["threshold"] == pytest.approx(saved["threshold"])
    assert report["operating_point"]["origin"] == "database"
    logged = predictions.predict_and_log(saved["engine"], predictor, saved["image"].read_bytes(), "case.png")
    assert logged.result.label == saved["label"] and logged.result.threshold == pytest.approx(saved["threshold"])


def test_predict_page_uses_the_saved_point(saved, monkeypatch):
    import streamlit as st

    from tests.pages.conftest import open_page

    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(saved["checkpoint"]))
    st.cache_resource.clear()
    at = open_page("predict")
    at.file_uploader[0].upload("case.png", saved["image"].read_bytes(), "image/png").run()
    assert not at.exception and not at.error
    shown = [s.value for s in at.subheader if s.value.startswith("Prediction:")]
    assert shown == [f"Prediction: {saved['label']}"]
    assert any(f"threshold {saved['threshold']:.3f}" in c.value for c in at.caption)
    st.cache_resource.clear()


def test_without_a_database_the_checkpoint_point_is_used(tmp_path, monkeypatch, tiny_checkpoint, capsys):
    from service.predict_cli import get_args_parser, main

    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    image = tmp_path / "x.png"
    image.write_bytes(png_bytes(3, 96))
    assert main(get_args_parser().parse_args([str(image), "--json", "--checkpoint", str(tiny_checkpoint)])) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["operating_point"] == "checkpoint" and row["threshold"] == 0.5
    assert not (tmp_path / "empty" / "reviews.db").exists()  # a plain prediction creates no database
