"""Metrics page: model versions compared, promoted and rolled back, on a real SQLite file."""

from __future__ import annotations

import json
import shutil

import streamlit as st

from core.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from tests.pages.conftest import open_page


def _versions(folder, tiny_checkpoint):
    """Two checkpoints, each with a held-out report on the same 6 images (raw logit margins stored)."""
    folder.mkdir()
    shutil.copy(tiny_checkpoint, folder / "first.pth")
    model, meta = load_checkpoint(tiny_checkpoint)
    save_checkpoint(folder / "second.pth", model, CheckpointMeta(**{**meta.to_dict(), "temperature": 0.7}))
    for name, margins in (("first", [-2, -1, 0.5, 1, 2, -0.5]), ("second", [-2, -1.5, 1, 1.5, 2, 0.2])):
        predictions = [
            {"path": f"{i}.png", "label": int(i >= 3), "p_pneumonia": 0.5, "logit_margin": m}
            for i, m in enumerate(margins)
        ]
        (folder / f"{name}.json").write_text(json.dumps({"predictions": predictions}))


def test_compare_promote_and_roll_back(app_env, monkeypatch, tiny_checkpoint, tmp_path):
    from service import model_versions
    from service.store import open_store

    _versions(tmp_path / "models", tiny_checkpoint)
    monkeypatch.setenv("PNEUMONIA_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(tmp_path / "models" / "first.pth"))
    st.cache_resource.clear()
    at = open_page("metrics")
    assert not at.exception
    names = at.selectbox(key="version_a").options
    assert len(names) == 2 and at.selectbox(key="version_a").value.endswith("first.pth")
    assert at.selectbox(key="version_b").value.endswith("second.pth")
    assert not any(b.label == "Promote" for b in at.button)  # offered only after a comparison
    assert any("compare it first" in i.value for i in at.info)
    at.button(key="compare_versions").click().run()
    assert not at.exception
    assert any("Paired difference B - A" in m.value for m in at.markdown)
    # no reviewed cases held out here: the comparison cannot support promotion, so it needs an override
    assert any("Promotion not offered: 0 held-out reviewed case(s)" in w.value for w in at.warning)
    at.text_input(key="promote_name").input("Dr Lead")
    at.text_area(key="promote_reason").input("validated elsewhere")
    next(b for b in at.button if b.label == "Promote").click().run()
    assert not at.exception and any("tick the override" in t.value for t in at.text)
    engine = open_store()
    assert not model_versions.promotion_history(engine)  # nothing promoted without the override
    at.checkbox(key="promote_override").check()
    next(b for b in at.button if b.label == "Promote").click().run()
    assert not at.exception and any("promoted; it is in use" in s.value for s in at.success)
    assert model_versions.checkpoint_in_force(engine)[0].name == "second.pth"
    logged = model_versions.promotion_history(engine)[0].reason
    assert logged.startswith("OVERRIDE (not offered: 0 held-out reviewed case(s)") and logged.endswith(
        "validated elsewhere"
    )
    again = open_page("metrics")  # the page now serves the promoted version
    assert any(
        c.value.startswith(f"Model `{model_versions.promotion_history(engine)[0].version}`") for c in again.caption
    )
    again.text_input(key="rollback_name").input("Dr Back")
    next(b for b in again.button if b.label == "Roll back to the previous version").click().run()
    assert not again.exception and any("Rolled back" in s.value for s in again.success)
    history = model_versions.promotion_history(engine)
    assert history[0].promoted_by == "Dr Back" and history[0].checkpoint_path.endswith("first.pth")
    st.cache_resource.clear()
