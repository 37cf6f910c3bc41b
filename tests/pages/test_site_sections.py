"""Metrics page: 'On reviewed cases' and 'Propose a site operating point', on a real SQLite file."""

from __future__ import annotations

import io

import numpy as np
import pytest

from core.inference import Predictor
from service import known_models, predictions, reviews, store
from tests.helpers import REPO_ROOT, xray_like
from tests.pages.conftest import open_page


def _review_cases(n: int, wrong_normals: bool) -> None:
    """Log ``n`` generated X-rays with the shipped model and review them.

    The truth follows the model's ranking (top half PNEUMONIA); with
    ``wrong_normals`` the model's threshold is far too low for this "site".
    """
    engine = store.open_store()
    predictor = Predictor.from_checkpoint(REPO_ROOT / "models" / "best_model.pth", "cpu")
    images = [xray_like(seed, seed % 2 == 1, 224) for seed in range(n)]
    margins = np.diff(predictor.logits([i.convert("RGB") for i in images]).numpy(), axis=1)[:, 0]
    cut = np.quantile(margins, 0.5 if wrong_normals else 0.0)
    for seed, (image, margin) in enumerate(zip(images, margins, strict=True)):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        logged = predictions.predict_and_log(engine, predictor, buffer.getvalue(), f"site{seed}.png")
        truth = "PNEUMONIA" if margin > cut else "NORMAL"
        agrees = logged.result.label == truth
        # Generated images lie outside the training images: the reviewer confirms each is usable.
        reviews.submit_review(
            engine, logged.prediction_id, "Dr Site", agrees, None if agrees else truth, domain_confirmed=True
        )


def _table(at, first_column: str):
    return next(d.value for d in at.dataframe if list(d.value.columns)[:1] == [first_column])


def test_no_reviewed_cases_says_so(app_env):
    at = open_page("metrics")
    assert not at.exception and not at.error
    assert any("No resolved reviewed cases" in i.value for i in at.info)


def test_reviewed_cases_figures_and_shift_warning(app_env):
    _review_cases(40, wrong_normals=True)
    at = open_page("metrics")
    assert not at.exception and not at.error
    table = _table(at, "reviewed cases")
    assert list(table.columns) == ["reviewed cases", "held-out split"]
    assert table.loc["cases", "reviewed cases"].startswith("40 (20 NORMAL / 20 PNEUMONIA)")
    assert any(c.value.startswith("Used: 40 resolved reviewed case(s) chosen at random") for c in at.caption)
    assert any(w.value.startswith("Differs beyond the interval: specificity on reviewed cases") for w in at.warning)


def test_propose_preview_and_save_a_site_point(app_env):
    from db.engine import make_engine, session_scope
    from db.models import ThresholdChange

    _review_cases(40, wrong_normals=True)
    at = open_page("metrics")
    at.number_input(key="site_min").set_value(10).run()
    at.selectbox(key="site_goal").set_value("sensitivity>=0.95").run()  # the sample rule: 20 positives suffice
    at.button(key="site_preview").click().run()
    assert not at.exception and not at.error
    assert any("(proposed, not saved)" in m.value for m in at.markdown)  # a preview never says "saved"
    preview = _table(at, "in force now")
    assert list(preview.columns) == ["in force now", "proposed (cross-validated)"]
    assert preview.loc["sensitivity, lower bound", "proposed (cross-validated)"].endswith("(90% one-sided)")
    at.text_input(key="site_name").input("Dr Lead")
    save = next(b for b in at.button if b.label == "Save site operating point")
    save.click().run()  # no reason
    assert [e.value for e in at.error] == ["Not saved: the input was refused."]
    assert any("a reason is required" in t.value for t in at.text)
    problems = [w.value for w in at.warning if w.value.startswith("Speaks against saving")]
    at.text_area(key="site_reason").input("site calibration after 40 reviews")
    if problems:  # refused unless overridden explicitly, and the override is recorded
        next(b for b in at.button if b.label == "Save site operating point").click().run()
        assert any("refused:" in t.value for t in at.text)
        at.checkbox(key="site_override").check()
    next(b for b in at.button if b.label == "Save site operating point").click().run()
    assert not at.exception and any("Site operating point saved" in s.value for s in at.success)
    with session_scope(make_engine()) as session:
        change = session.query(ThresholdChange).one()
        assert change.changed_by == "Dr Lead" and change.temperature is not None
        assert len(change.metrics["review_ids"]) == 40
        assert change.metrics["override"] == bool(problems)
        assert change.reason.startswith("OVERRIDE (") == bool(problems)
    again = open_page("metrics")
    assert any("saved site operating point" in c.value for c in again.caption)
    assert again.slider(key="shipped_threshold").value == pytest.approx(round(change.threshold, 3))

    # Restore the checkpoint's own point: one logged action, with a reason.
    again.text_input(key="restore_name").input("Dr Lead")
    assert again.selectbox(key="restore_choice").value == "the checkpoint's own point"
    restore = next(b for b in again.button if b.label == "Restore this point")
    restore.click().run()
    assert any("a reason is required" in t.value for t in again.text)
    again.text_area(key="restore_reason").input("back to the validated point")
    next(b for b in again.button if b.label == "Restore this point").click().run()
    assert any("in force again" in s.value for s in again.success)
    with session_scope(make_engine()) as session:
        latest = session.query(ThresholdChange).order_by(ThresholdChange.id.desc()).first()
        assert latest.goal.startswith("restored: ") and latest.reason == "back to the validated point"
    shipped = Predictor.from_checkpoint(REPO_ROOT / "models" / "best_model.pth", "cpu").meta.threshold
    final = open_page("metrics")
    assert final.slider(key="shipped_threshold").value == pytest.approx(round(shipped, 3))
    # ... and the site point saved before it can come back the same way.
    earlier = next(o for o in final.selectbox(key="restore_choice").options if o.startswith(f"#{change.id}:"))
    final.selectbox(key="restore_choice").set_value(earlier)
    final.text_input(key="restore_name").input("Dr Lead")
    final.text_area(key="restore_reason").input("the site point after all")
    next(b for b in final.button if b.label == "Restore this point").click().run()
    assert any(f"Restored #{change.id}:" in s.value for s in final.success)
    assert open_page("metrics").slider(key="shipped_threshold").value == pytest.approx(round(change.threshold, 3))


def test_propose_with_too_few_cases_is_refused(app_env):
    _review_cases(12, wrong_normals=True)
    at = open_page("metrics")
    at.button(key="site_preview").click().run()
    assert not at.exception
    assert any("need at least 20 resolved reviewed cases of each class" in e.value for e in at.error)


def test_a_goal_with_confidence_on_too_few_positives_is_no_change_with_how_many_more(app_env):
    _review_cases(40, wrong_normals=True)
    at = open_page("metrics")
    at.number_input(key="site_min").set_value(10).run()
    assert at.selectbox(key="site_goal").value == "sensitivity>=0.95@0.90"  # the default goal
    at.button(key="site_preview").click().run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("no change: 20 reviewed PNEUMONIA case(s) cannot show sensitivity >= 0.95")
    assert error.endswith("review at least 25 more (45 in all)")
    assert not any(b.label == "Save site operating point" for b in at.button)  # nothing to save


def test_after_saving_the_held_out_split_shows_both_points_and_warns_where_a_goal_is_missed(app_env):
    from core.operating_point import OperatingPoint

    engine = store.open_store()
    predictor = Predictor.from_checkpoint(REPO_ROOT / "models" / "best_model.pth", "cpu")
    at = open_page("metrics")
    assert not any(d.value.columns.tolist() == ["checkpoint's point", "in force (saved)"] for d in at.dataframe)
    strict = OperatingPoint(threshold=0.995, temperature=predictor.point.temperature, goal="sensitivity>=0.95@0.9")
    known_models.save_operating_point(engine, predictor, strict, "Dr Lead", {}, "too strict on purpose")
    at = open_page("metrics")
    assert not at.exception
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["checkpoint's point", "in force (saved)"])
    assert table.loc["cases", "in force (saved)"].startswith("745 (")
    before, after = (float(table.loc["sensitivity", c].split()[0]) for c in table.columns)
    assert after < before
    warned = [w.value for w in at.warning if w.value.startswith("On the held-out split at the point in force")]
    assert warned and all("is below the goal 0.95" in w for w in warned)
