"""Predict: upload X-rays, see NORMAL/PNEUMONIA with calibrated probabilities and a heat map; each is logged."""

from __future__ import annotations

import streamlit as st

from core.explain import gradcam, overlay
from core.images import ImageLoadError
from db.actions import predict_and_log
from pages.common import page_header, active_threshold, database_error_message, engine_or_stop, predictor_or_stop

UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm"]

page_header("Predict")
predictor = predictor_or_stop()
engine = engine_or_stop()
try:
    threshold = active_threshold(engine, predictor)
except Exception as error:
    st.error(database_error_message(error))
    st.stop()
st.caption(f"Model `{predictor.version}` · threshold {threshold:.3f} on calibrated P(PNEUMONIA). "
           "Every prediction is stored for review.")

files = st.file_uploader("Chest X-rays (PNG, JPEG or DICOM)", type=UPLOAD_TYPES, accept_multiple_files=True)
show_heatmap = st.toggle("Show Grad-CAM heat map", value=True)
opacity = st.slider("Heat-map opacity", 0.0, 1.0, 0.4, 0.05, disabled=not show_heatmap)

# Streamlit reruns this script on every interaction: log each upload once per session.
logged: dict[str, object] = st.session_state.setdefault("logged_uploads", {})

for upload in files or []:
    st.divider()
    data = upload.getvalue()
    key = f"{upload.file_id}:{len(data)}"
    if key not in logged:
        try:
            logged[key] = predict_and_log(engine, predictor, data, upload.name, threshold=threshold)
        except ImageLoadError as error:
            logged[key] = str(error)
        except Exception as error:  # database failure: nothing was stored
            st.error(f"{upload.name}: {database_error_message(error)}")
            continue
    entry = logged[key]
    if isinstance(entry, str):
        st.error(f"Could not use this file: {entry}")
        continue
    result = entry.result
    image = entry.image
    left, right = st.columns([1, 1])
    with left:
        if show_heatmap:
            cams = st.session_state.setdefault("heatmaps", {})
            if key not in cams:
                cams[key] = gradcam(predictor, image, result.label)
            st.image(overlay(image, cams[key], opacity), caption=f"{upload.name} · Grad-CAM for {result.label}")
        else:
            st.image(image, caption=upload.name)
    with right:
        st.subheader(f"Prediction: {result.label}")
        st.metric("Confidence", f"{result.confidence:.4f}")
        st.write(f"NORMAL: {result.probabilities['NORMAL']:.4f}")
        st.write(f"PNEUMONIA: {result.probabilities['PNEUMONIA']:.4f}")
        st.caption(f"Model `{entry.model_version}` · threshold {result.threshold:.3f} · "
                   f"logged as prediction #{entry.prediction_id}")
        st.page_link("pages/review.py", label=f"Review prediction #{entry.prediction_id}",
                     icon=":material/rate_review:", query_params={"prediction": str(entry.prediction_id)})
