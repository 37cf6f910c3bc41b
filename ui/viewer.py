"""The X-ray viewer of the Review and Adjudication pages: large, zoom and pan, window / level, heat map.

Not a page itself (the router lists pages explicitly); pages call :func:`show_xray`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from PIL import Image

from core.images import ImageLoadError, apply_window, load_image
from service.store import Store
from ui.charts import VIEWER_CONFIG, xray_figure
from ui.common import HEAT_LEGEND, predictor_or_stop

if TYPE_CHECKING:
    from core.inference import Predictor

HEAT_MODES = ["off", "side by side", "overlay"]


def show_stored_xray(path: Path, file_name: str, key: str, engine: Store, explain_label: str | None) -> None:
    """A stored case image under its uploaded name, in the viewer.

    Args:
        explain_label: the class whose Grad-CAM the heat-map control shows (the model in force
            computes it on demand); ``None`` hides the control (a blind read).
    """
    st.text(file_name)  # user text: plain, never Markdown
    try:
        image = load_image(path, name=file_name)
    except ImageLoadError as error:
        st.error(f"Stored image unavailable: {error}")
        return
    heat_map = None
    if explain_label is not None:
        label = explain_label

        def heat_map() -> np.ndarray:
            predictor = predictor_or_stop(engine)
            return _cached_heat_map(str(path), _modified(path), predictor.version, label, image, predictor)

    show_xray(image, key, heat_map)


def _modified(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(show_spinner="Computing the heat map…", max_entries=64)
def _cached_heat_map(
    path: str, modified: int, version: str, label: str, _image: Image.Image, _predictor: Predictor
) -> np.ndarray:
    """Grad-CAM of a stored image, once per image file, model version and class (not on every viewer rerun).

    The key holds the stored file (path and modification time) and the model version, so another
    model or a changed file computes a new map; the image and model themselves are not hashed.
    """
    from core.explain import gradcam  # imported on first use: it pulls in torch and grad-cam

    return gradcam(_predictor, _image, label)


def show_xray(image: Image.Image, key: str, heat_map: Callable[[], np.ndarray] | None = None) -> None:
    """Draw the X-ray at its stored resolution with window / level controls and, when given, the heat map.

    Args:
        image: the decoded X-ray (DICOM arrives at its native pixel size).
        key: widget-key prefix, unique per page.
        heat_map: computes the Grad-CAM map on demand (only when the reviewer turns it on);
            ``None`` hides the heat-map control (a blind read).
    """
    controls = st.columns([2, 2, 3])
    level = controls[0].slider("Level (brightness)", 0, 255, 128, key=f"{key}_level")
    width = controls[1].slider("Window (contrast)", 1, 256, 256, key=f"{key}_window")
    mode = "off"
    if heat_map is not None:
        mode = controls[2].radio("Heat map", HEAT_MODES, horizontal=True, key=f"{key}_heat")
    view = apply_window(image, level, width) if (level, width) != (128, 256) else image.convert("L")
    st.caption(f"{image.width} × {image.height} px · scroll to zoom, drag to pan, double-click to reset")
    if mode == "off" or heat_map is None:
        st.plotly_chart(xray_figure(view), config=VIEWER_CONFIG, key=f"{key}_plain")
        return
    from core.explain import overlay  # imported on first use: it pulls in torch and grad-cam

    opacity = st.slider("Heat-map opacity", 0.0, 1.0, 0.4, 0.05, key=f"{key}_opacity")
    st.caption(HEAT_LEGEND)
    blended = overlay(view.convert("RGB"), heat_map(), opacity)
    if mode == "overlay":
        st.plotly_chart(xray_figure(blended, "Grad-CAM overlay"), config=VIEWER_CONFIG, key=f"{key}_overlay")
        return
    left, right = st.columns(2)
    with left:
        st.plotly_chart(xray_figure(view, "X-ray"), config=VIEWER_CONFIG, key=f"{key}_left")
    with right:
        st.plotly_chart(xray_figure(blended, "Grad-CAM"), config=VIEWER_CONFIG, key=f"{key}_right")
