import json
import shutil

import pytest

from core.metrics import confusion_rates
from tests.helpers import REPO_ROOT
from tests.pages.conftest import open_page


def _report():
    return json.loads((REPO_ROOT / "models" / "best_model.json").read_text())


def test_renders_report_figures(app_env):
    at = open_page("metrics")
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert {
        "Accuracy",
        "ROC-AUC",
        "Sensitivity",
        "Specificity",
        "PPV",
        "NPV",
        "ECE before",
        "ECE after",
    } <= set(labels)
    report = _report()
    assert next(m.value for m in at.metric if m.label == "Images") == str(report["n_images"])
    caption = next(c.value for c in at.caption if "Bootstrap 95 % intervals" in c.value)
    low, high = report["confidence_intervals"]["accuracy"]
    assert f"of {report['n_patients']} patients" in caption and f"Accuracy {low:.3f}-{high:.3f}" in caption
    assert any("pediatric" in m.value.lower() for m in at.markdown)


def test_threshold_slider_recomputes_operating_point(app_env):
    at = open_page("metrics")
    report = _report()
    labels = [p["label"] for p in report["predictions"]]
    scores = [p["p_pneumonia"] for p in report["predictions"]]
    at.slider(key="shipped_threshold").set_value(0.999).run()
    assert not at.exception
    expected = confusion_rates(labels, scores, 0.999)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Sensitivity"] == f"{expected['sensitivity']:.3f}"
    assert shown["Specificity"] == f"{expected['specificity']:.3f}"
    at.number_input(key="shipped_prevalence").set_value(10.0).run()
    expected = confusion_rates(labels, scores, 0.999, 0.10)
    assert {m.label: m.value for m in at.metric}["PPV"] == f"{expected['ppv']:.3f}"


def test_save_threshold_is_logged_with_who_and_metrics(app_env):
    from db.engine import make_engine, session_scope
    from db.models import ThresholdChange

    at = open_page("metrics")
    at.slider(key="shipped_threshold").set_value(0.6).run()
    form_inputs = [t for t in at.text_input if t.label == "Your name"]
    form_inputs[0].input("Dr Threshold")
    next(b for b in at.button if b.label == "Save threshold").click().run()
    assert not at.exception and any("saved" in s.value for s in at.success)
    with session_scope(make_engine()) as session:
        change = session.query(ThresholdChange).one()
        assert change.changed_by == "Dr Threshold" and change.threshold == pytest.approx(0.6)
        assert {"sensitivity", "specificity"} <= set(change.metrics)
    # The page now starts from the saved operating point.
    again = open_page("metrics")
    assert again.slider(key="shipped_threshold").value == pytest.approx(0.6)


def test_save_threshold_without_name_is_refused(app_env):
    at = open_page("metrics")
    next(b for b in at.button if b.label == "Save threshold").click().run()
    assert not at.exception and at.error[0].value == "Not saved: the input was refused."
    assert any("must not be empty" in t.value for t in at.text)


def test_evaluate_another_folder(app_env, tmp_path, monkeypatch):
    from tests.helpers import make_image_folder

    folder = make_image_folder(tmp_path / "eval", per_class=4, size=48)
    monkeypatch.setenv("PNEUMONIA_EVAL_ROOTS", str(tmp_path))
    (folder / "NORMAL" / "IM-0042-0001.png").write_text("broken")
    at = open_page("metrics")
    at.text_input(key="eval_folder").input(str(folder)).run()
    next(b for b in at.button if b.label == "Evaluate").click().run()
    assert not at.exception
    assert any(w.value == "Skipped 1 unreadable image(s):" for w in at.warning)
    assert any("IM-0042-0001.png" in t.value for t in at.text)
    assert any(m.label == "Images" and m.value == "8" for m in at.metric)


def test_folders_outside_the_roots_are_refused_alike(app_env, tmp_path, monkeypatch):
    """A missing folder, an existing one outside the roots, and ../ tricks get the same message."""
    from core.data import FOLDER_REFUSED

    monkeypatch.setenv("PNEUMONIA_EVAL_ROOTS", str(tmp_path / "allowed"))
    (tmp_path / "allowed").mkdir()
    answers = []
    for folder in ("/no/such/folder", "/etc", str(tmp_path / "allowed" / ".." / "..")):
        at = open_page("metrics")
        at.text_input(key="eval_folder").input(folder).run()
        next(b for b in at.button if b.label == "Evaluate").click().run()
        assert not at.exception and [e.value for e in at.error] == ["Could not evaluate that folder."]
        answers.append([t.value for t in at.text if "folder" in t.value])
    assert answers == [[FOLDER_REFUSED]] * 3


def test_links_inside_an_evaluation_root_cannot_lead_out_of_it(app_env, tmp_path, monkeypatch):
    import shutil

    from tests.helpers import make_image_folder

    outside = make_image_folder(tmp_path / "outside", per_class=3, size=48)
    root = tmp_path / "allowed"
    folder = make_image_folder(root / "eval", per_class=2, size=48)
    shutil.rmtree(folder / "PNEUMONIA")
    (folder / "PNEUMONIA").symlink_to(outside / "PNEUMONIA", target_is_directory=True)  # a linked class folder
    (folder / "NORMAL" / "one.png").symlink_to(next((outside / "NORMAL").iterdir()))  # and one linked file
    (root / "escape").symlink_to(outside, target_is_directory=True)  # the folder itself a link out
    monkeypatch.setenv("PNEUMONIA_EVAL_ROOTS", str(root))
    for chosen, words in ((folder, "4 image(s) in this folder link to files outside it"), (root / "escape", None)):
        at = open_page("metrics")
        at.text_input(key="eval_folder").input(str(chosen)).run()
        next(b for b in at.button if b.label == "Evaluate").click().run()
        assert not at.exception and [e.value for e in at.error] == ["Could not evaluate that folder."]
        if words:
            assert any(words in t.value for t in at.text)
        assert "folder_report" not in at.session_state  # nothing was scored


def test_missing_checkpoint_says_what_to_do(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(tmp_path / "gone.pth"))
    at = open_page("metrics")
    assert not at.exception
    assert any("could not be loaded" in e.value for e in at.error)
    assert any("gone.pth" in t.value for t in at.text)
    assert any("training.train" in i.value for i in at.info)


def test_missing_report_says_how_to_make_one(app_env, monkeypatch, tmp_path):
    checkpoint = tmp_path / "model.pth"
    shutil.copy(REPO_ROOT / "models" / "best_model.pth", checkpoint)
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(checkpoint))
    at = open_page("metrics")
    assert not at.exception and any("training.evaluate" in w.value for w in at.warning)


def test_robustness_section_from_the_stored_report(app_env, monkeypatch, tmp_path):
    checkpoint = tmp_path / "model.pth"
    shutil.copy(REPO_ROOT / "models" / "best_model.pth", checkpoint)
    report = _report()
    report["stress"] = {
        "zoom_in_20": {
            "accuracy": 0.8,
            "sensitivity": 1.0,
            "specificity": 0.4,
            "roc_auc": 0.99,
            "ece": 0.1,
            "drop": {"accuracy": 0.168, "sensitivity": -0.04, "specificity": 0.595, "roc_auc": 0.009, "ece": -0.088},
        },
    }
    checkpoint.with_suffix(".json").write_text(json.dumps(report))
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(checkpoint))
    at = open_page("metrics")
    assert not at.exception
    table = next(d.value for d in at.dataframe if "zoom_in_20" in d.value.index)
    assert table.loc["zoom_in_20", "specificity"] == "0.400 (-0.595)"
    assert table.loc["zoom_in_20", "ECE"] == "0.100 (+0.088)"


def test_shipped_report_carries_its_stress_tests(app_env):
    from core.shifts import STRESS_SET

    stored = _report()
    assert set(stored["stress"]) == set(STRESS_SET)
    at = open_page("metrics")
    assert not at.exception
    table = next(d.value for d in at.dataframe if "combined" in d.value.index)
    assert table.loc["noise_8", "specificity"].startswith(f"{stored['stress']['noise_8']['specificity']:.3f} (")


def test_report_without_stress_says_how_to_add_it(app_env, monkeypatch, tmp_path):
    checkpoint = tmp_path / "model.pth"
    shutil.copy(REPO_ROOT / "models" / "best_model.pth", checkpoint)
    report = {k: v for k, v in _report().items() if k != "stress"}
    checkpoint.with_suffix(".json").write_text(json.dumps(report))
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(checkpoint))
    at = open_page("metrics")
    assert not at.exception and any("--stress" in i.value for i in at.info)


def _log_shipped(count, flagged):
    from core.hashing import file_sha256
    from db import repository
    from db.engine import init_db, make_engine, session_scope
    from tests.helpers import png_bytes

    engine = init_db(make_engine())
    sha = file_sha256(REPO_ROOT / "models" / "best_model.pth")
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, sha, "best_model.pth", "efficientnet_lite0")
        for i in range(count):
            image = repository.store_image(session, png_bytes(i), f"m{i}.png", None)
            repository.log_prediction(
                session,
                image=image,
                model=model,
                p_pneumonia=0.9,
                threshold=0.77,
                predicted_label="PNEUMONIA",
                out_of_domain=flagged,
                domain_score=5.0 if flagged else -1.0,
            )


def test_monitoring_section_shows_windows_and_names_the_alarm(app_env):
    _log_shipped(40, flagged=True)
    at = open_page("metrics")
    assert not at.exception
    assert any(h.value == "Site monitoring (no labels needed)" for h in at.header)
    alarms = [w.value for w in at.warning if w.value.startswith("Alarm: out of domain: 100.0% of 40 flagged")]
    assert alarms and "audit sample" in alarms[0]


def test_monitoring_section_with_no_predictions_says_so(app_env):
    at = open_page("metrics")
    assert not at.exception
    assert any(i.value.startswith("No predictions by efficientnet_lite0@") for i in at.info)
