"""Feedback page section: does reading with the AI beat reading without it? (MRMC, Obuchowski-Rockette)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from service import reader_mrmc, store
from service.store import Store
from ui.common import show_store_error, user_text_table


def _aided_minus_unaided(record: dict[str, Any]) -> dict[str, Any]:
    """The random-readers random-cases comparison, turned round to aided - unaided."""
    first = next(c for c in record["comparisons"] if c["method"] == "OR RRRC")
    sign = -1.0 if first["modalities"] == ["unaided", "aided"] else 1.0
    low, high = sorted(sign * value for value in first["ci"])
    return {
        "difference": sign * first["difference"],
        "low": low,
        "high": high,
        "p": first["p_value"],
        "df": first["df"],
    }


def mrmc_section(engine: Store) -> None:
    """Unaided vs aided reading, readers and cases random: the difference in AUC, sensitivity and specificity."""
    st.subheader("Does the AI help? Unaided vs aided (MRMC)")
    try:
        ratings = reader_mrmc.reader_study_ratings(engine)  # one read of the store for the table and the CSV
        analysis = reader_mrmc.analyse_block(ratings)
    except store.StoreUnavailable as error:
        show_store_error(error)
        return
    except ValueError as error:
        st.info(str(error))
        return
    rows = []
    for endpoint in ("auc", "sensitivity", "specificity"):
        record = analysis[endpoint]
        change = _aided_minus_unaided(record)
        rows.append(
            {
                "figure": endpoint.replace("auc", "AUC"),
                "unaided": f"{record['modalities']['unaided'][endpoint]:.3f}",
                "aided": f"{record['modalities']['aided'][endpoint]:.3f}",
                "aided - unaided (95 % CI)": (
                    f"{change['difference']:+.3f} ({change['low']:+.3f} to {change['high']:+.3f})"
                ),
                "p": f"{change['p']:.3f}",
                "df": f"{change['df']:.1f}",
            }
        )
    st.dataframe(rows, hide_index=True, key="mrmc_table")
    auc = analysis["auc"]
    st.caption(
        f"{auc['n_readers']} readers x {auc['n_cases']} cases ({auc['n_abnormal']} PNEUMONIA), each read blind, then "
        "with the model's output. Obuchowski-Rockette analysis with Hillis' degrees of freedom, readers and cases "
        f"random (python -m training.mrmc). Ratings: {analysis['rating_scale']}. Reference: {analysis['reference']}. "
        f"{analysis['left_out']}."
    )
    user_text_table(
        [
            {
                "reader": name,
                "unaided AUC": f"{auc['modalities']['unaided']['readers'][name]:.3f}",
                "aided AUC": f"{auc['modalities']['aided']['readers'][name]:.3f}",
            }
            for name in ratings.readers
        ],
        key="mrmc_readers",
    )
    st.download_button(
        "Download the ratings (CSV for python -m training.mrmc --input)",
        ratings.csv_text(),
        file_name="reader_study_ratings.csv",
        mime="text/csv",
        key="mrmc_download",
    )
