"""Shared package for the pneumonia chest X-ray dashboard.

Data loading, transforms, the model factory, checkpoints, inference, metrics
and explanations live here; ``training/``, ``db/`` and the Streamlit pages all
import from this package and nowhere else for model logic.
"""

__version__ = "0.1.0"
