"""service.reader_mrmc: blind and aided reads as MRMC ratings, the complete block, and the analysis."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from service import reader_mrmc, reviews
from service.reader_study import Identity, record_blind_read
from tests.db.conftest import add_prediction
from tests.helpers import run_main

CONFIDENCES = ("high", "medium", "low", "unsure")


def _read(engine, case: int, reader: str, blind: tuple[str, str], aided: tuple[str, str], model_label: str) -> None:
    first = record_blind_read(engine, case, Identity(reader, False), *blind)
    call, confidence = aided
    agrees = call == model_label
    reviews.submit_review(engine, case, reader, agrees, None if agrees else call, confidence, blind_read_id=first.id)


def _study(engine, readers=("Dr A", "Dr B", "Dr C"), cases=24, seed=0):
    """``cases`` images with their truth; each reader reads blind (noisy), then aided (closer to the truth)."""
    rng = np.random.default_rng(seed)
    ids, truths = [], []
    for k in range(cases):
        truth = "PNEUMONIA" if k % 2 else "NORMAL"
        p = 0.8 if k % 3 else 0.3  # the model is right on two cases in three
        case = add_prediction(engine, seed=100 + k, p=p, original_label=truth)
        ids.append(case)
        truths.append(truth)
        for reader in readers:
            blind_call = truth if rng.uniform() < 0.7 else ("NORMAL" if truth == "PNEUMONIA" else "PNEUMONIA")
            aided_call = truth if rng.uniform() < 0.9 else blind_call
            _read(
                engine,
                case,
                reader,
                (blind_call, str(rng.choice(CONFIDENCES))),
                (aided_call, str(rng.choice(CONFIDENCES))),
                "PNEUMONIA" if p >= 0.5 else "NORMAL",
            )
    return ids, truths


def test_each_call_and_confidence_is_one_rating_of_pneumonia(engine):
    case = add_prediction(engine, seed=1, p=0.9, original_label="PNEUMONIA")
    for reader in ("Dr A", "Dr B"):
        _read(engine, case, reader, ("NORMAL", "high"), ("PNEUMONIA", "medium"), "PNEUMONIA")
    ratings = reader_mrmc.reader_study_ratings(engine)
    assert ratings.readers == ["Dr A", "Dr B"] and ratings.cases == [case]
    by_modality = {(r["reader"], r["modality"]): r["rating"] for r in ratings.rows}
    assert by_modality == {("Dr A", "unaided"): 1, ("Dr A", "aided"): 7, ("Dr B", "unaided"): 1, ("Dr B", "aided"): 7}
    assert all(r["truth"] == 1 for r in ratings.rows)
    assert list(csv.DictReader(io.StringIO(ratings.csv_text())))[0].keys() == {
        "reader",
        "case",
        "modality",
        "truth",
        "rating",
    }
    assert [v for k, v in sorted(reader_mrmc.RATING_SCALE.items(), key=lambda kv: kv[1])] == list(range(1, 9))


def test_only_complete_blocks_with_a_reference_and_a_blind_read_count(engine):
    ids, _ = _study(engine, readers=("Dr A", "Dr B"), cases=10)
    no_truth = add_prediction(engine, seed=7, p=0.9)  # no adjudication, no label it came with: no reference
    for reader in ("Dr A", "Dr B"):
        _read(engine, no_truth, reader, ("NORMAL", "low"), ("PNEUMONIA", "low"), "PNEUMONIA")
    not_blind = add_prediction(engine, seed=8, p=0.9, original_label="PNEUMONIA")
    reviews.submit_review(engine, not_blind, "Dr A", True)  # an aided call without a blind read first
    partial = ids[:3]  # a third reader who read three cases only: the block is larger without them
    for case in partial:
        _read(engine, case, "Dr C", ("NORMAL", "low"), ("NORMAL", "low"), "NORMAL")
    ratings = reader_mrmc.reader_study_ratings(engine)
    assert ratings.readers == ["Dr A", "Dr B"] and ratings.cases == sorted(ids)
    assert ratings.left_out == "1 reader(s) and 0 case(s) outside the block every reader read"


def test_the_analysis_compares_aided_with_unaided_with_readers_and_cases_random(engine):
    _study(engine)
    analysis = reader_mrmc.reader_study_analysis(engine)
    auc = analysis["auc"]
    assert auc["n_readers"] == 3 and auc["n_cases"] == 24 and auc["n_abnormal"] == 12
    assert auc["modalities"]["aided"]["auc"] > auc["modalities"]["unaided"]["auc"]  # aided reads are closer to truth
    first = auc["comparisons"][0]
    assert first["method"] == "OR RRRC" and first["modalities"] == ["unaided", "aided"]
    assert first["ci"][0] <= first["difference"] <= first["ci"][1] and 0 <= first["p_value"] <= 1
    assert {"sensitivity", "specificity"} <= set(analysis)


def test_too_few_readers_is_one_clear_line(engine):
    _study(engine, readers=("Dr A",), cases=4)
    with pytest.raises(ValueError, match="at least two readers who each read the same cases"):
        reader_mrmc.reader_study_analysis(engine)


def test_the_command_analyses_the_store(engine, data_dir, monkeypatch):
    _study(engine)
    monkeypatch.setenv("DATABASE_URL", str(engine.url))
    result = run_main("training.mrmc", "--from-store")
    assert result.returncode == 0, result.stderr
    assert "3 readers x 24 cases (12 abnormal) x 2 modalities" in result.stdout
    assert "OR RRRC unaided - aided" in result.stdout
