"""Predict: upload X-rays, see NORMAL/PNEUMONIA with calibrated probabilities and a heat map; each is logged."""

from __future__ import annotations

import streamlit as st

from service import predictions, store
from ui.common import HEAT_LEGEND, engine_or_stop, page_header, predictor_or_stop, show_problem, show_store_error

UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm"]

page_header("Predict")
# The upload box first: on a first visit the store opens and the model loads (page_header's warm-up) meanwhile.
files = st.file_uploader("Chest X-rays (PNG, JPEG or DICOM)", type=UPLOAD_TYPES, accept_multiple_files=True)
show_heatmap = st.toggle("Show Grad-CAM heat map", value=True)
opacity = st.slider("Heat-map opacity", 0.0, 1.0, 0.4, 0.05, disabled=not show_heatmap)
engine = engine_or_stop()
predictor = predictor_or_stop(engine)
if predictor.domain_problem:
    st.warning(f"No out-of-domain check for this model: {predictor.domain_problem}")
st.caption(
    f"Model `{predictor.version}` · {predictor.point.describe()} on calibrated P(PNEUMONIA). "
    "Every prediction is stored for review."
)

# Streamlit reruns this script on every interaction: log each upload once per session.
logged: dict[str, object] = st.session_state.setdefault("logged_uploads", {})

# Every call is drawn first; the heat maps (torch + Grad-CAM, the slow part) fill in afterwards.
pending_maps: list[tuple[object, str, predictions.LoggedPrediction]] = []
for upload in files or []:
    st.divider()
    data = upload.getvalue()
    key = f"{upload.file_id}:{len(data)}"
    if key not in logged:
        try:
            logged[key] = predictions.predict_and_log(engine, predictor, data, upload.name)
        except predictions.ImageLoadError as error:
            logged[key] = str(error)
        except (store.StoreUnavailable, store.ValidationError) as error:  # nothing was stored
            st.text(upload.name)
            show_store_error(error)
            continue
    entry = logged[key]
    if isinstance(entry, str):
        show_problem("Could not use this file.", entry)
        continue
    assert isinstance(entry, predictions.LoggedPrediction)
    result = entry.result
    left, right = st.columns([1, 1])
    with right:
        if result.out_of_domain:  # the call is still shown, behind the warning and marked as such
            st.warning(
                f"Out of domain: {result.warning} (score {result.domain_score:.2f}). Treat the call below as "
                "unreliable (for reference only); a reviewer can mark the image as not a usable chest X-ray."
            )
        st.subheader(f"Prediction: {result.label}")
        st.metric("P(PNEUMONIA)", f"{result.p_pneumonia:.3f}", help="Calibrated probability of pneumonia")
        st.write(result.decision)
        st.caption(f"Model `{entry.model_version}` · logged as prediction #{entry.prediction_id}")
        st.page_link(
            "pages/review.py",
            label=f"Review prediction #{entry.prediction_id}",
            icon=":material/rate_review:",
            query_params={"prediction": str(entry.prediction_id)},
        )
    with left:
        st.text(upload.name)  # user text: shown as plain text, never Markdown
        slot = st.empty()
        slot.image(entry.image)
    if show_heatmap:
        pending_maps.append((slot, key, entry))

if pending_maps:
    from core.explain import gradcam, overlay  # imported on first use: it pulls in torch and grad-cam

    cams = st.session_state.setdefault("heatmaps", {})
    st.caption(HEAT_LEGEND)
    for slot, key, entry in pending_maps:
        if key not in cams:
            cams[key] = gradcam(predictor, entry.image, entry.result.label)
        slot.image(overlay(entry.image, cams[key], opacity), caption=f"Grad-CAM for {entry.result.label}")
