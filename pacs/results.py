"""The AI result as DICOM, built with ``highdicom``: a TID 1500 measurement report, a secondary capture, a review SR.

- :func:`result_sr`: a Comprehensive 3D SR measurement report (TID 1500) with one measurement
  group: the qualitative evaluation "Pneumonia: present / absent", P(PNEUMONIA) and the threshold,
  the out-of-domain flag, and the algorithm's identification (name, version, parameters). Its
  evidence is the source instance.
- :func:`overlay_sc`: a secondary capture of the Grad-CAM overlay with "AI output — not for
  diagnosis" burned in, in the source's study, referencing it.
- :func:`review_sr`: a second SR recording the reviewer's decision about the AI result
  (accepted / rejected / corrected, the final label, who), with the first SR as its evidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

MANUFACTURER = "pneumonia-xray-review"
BANNER = "AI output — not for diagnosis"
PNEUMONIA = ("233604007", "SCT", "Pneumonia")
CHEST_XRAY = ("399208008", "SCT", "Plain chest X-ray")
SCHEME = "99PXR"
"""Private coding scheme for the concepts no standard one names."""
PROBABILITY = ("P_PNEUMONIA", SCHEME, "Calibrated probability of pneumonia")
THRESHOLD = ("THRESHOLD", SCHEME, "Decision threshold on the probability")
OUT_OF_DOMAIN = ("OUT_OF_DOMAIN", SCHEME, "Image outside the training images")
AI_DECISION = ("AI_RESULT_DECISION", SCHEME, "Reviewer decision about the AI result")
DECISIONS = {
    "accepted": ("ACCEPTED", SCHEME, "AI result accepted"),
    "rejected": ("REJECTED", SCHEME, "AI result rejected"),
    "corrected": ("CORRECTED", SCHEME, "AI result corrected"),
}
FINAL_LABEL = ("FINAL_LABEL", SCHEME, "Final label")
SR_SERIES_NUMBER, SC_SERIES_NUMBER, REVIEW_SERIES_NUMBER = 9001, 9002, 9003


def _code(triple: tuple[str, str, str]) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(*triple)


def _algorithm(model_version: str, threshold: float) -> Any:
    import highdicom as hd

    return hd.sr.AlgorithmIdentification(
        name=model_version.split("@")[0], version=model_version, parameters=[f"threshold={threshold:.4f}"]
    )


def result_sr(
    source: Dataset,
    label: str,
    p_pneumonia: float,
    threshold: float,
    model_version: str,
    out_of_domain: bool | None = None,
) -> Dataset:
    """The TID 1500 measurement report of one prediction, referencing ``source``."""
    import highdicom as hd

    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="pneumonia classification"),
        finding_type=_code(PNEUMONIA),
        algorithm_id=_algorithm(model_version, threshold),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                _code(PNEUMONIA), codes.SCT.Present if label == "PNEUMONIA" else codes.SCT.Absent
            ),
            *(
                [
                    hd.sr.QualitativeEvaluation(
                        _code(OUT_OF_DOMAIN), codes.SCT.Present if out_of_domain else codes.SCT.Absent
                    )
                ]
                if out_of_domain is not None
                else []
            ),
        ],
        measurements=[
            hd.sr.Measurement(_code(PROBABILITY), float(p_pneumonia), hd.sr.CodedConcept("1", "UCUM", "no units")),
            hd.sr.Measurement(_code(THRESHOLD), float(threshold), hd.sr.CodedConcept("1", "UCUM", "no units")),
        ],
    )
    return _measurement_report(
        source, _device_context(model_version), group, SR_SERIES_NUMBER, "AI result: pneumonia (not for diagnosis)"
    )


def _measurement_report(evidence: Dataset, context: Any, group: Any, series_number: int, description: str) -> Dataset:
    """A TID 1500 measurement report of one group, in a new series, with ``evidence`` referenced."""
    import highdicom as hd

    report = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=_code(CHEST_XRAY), imaging_measurements=[group]
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[evidence],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=description,
    )


def _device_context(model_version: str) -> Any:
    import highdicom as hd

    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(), name=model_version, manufacturer_name=MANUFACTURER
            ),
        )
    )


def overlay_sc(source: Dataset, overlay: Image.Image) -> Dataset:
    """A secondary capture of the heat-map overlay with the banner burned in, in the source's study."""
    import highdicom as hd

    picture = overlay.convert("RGB")
    draw = ImageDraw.Draw(picture)
    size = max(12, picture.width // 28)
    font = ImageFont.load_default(size=size)
    box = draw.textbbox((0, 0), BANNER, font=font)
    draw.rectangle((0, 0, box[2] + 2 * size // 2, box[3] + size // 2), fill=(0, 0, 0))
    draw.text((size // 2, size // 4), BANNER, font=font, fill=(255, 255, 0))
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=np.asarray(picture, dtype=np.uint8),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=("L", "F"),  # a frontal film: rows run to the left, columns to the feet
        series_instance_uid=generate_uid(),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
    )
    image.SeriesDescription = "AI heat map (not for diagnosis)"
    image.BurnedInAnnotation = "YES"
    image.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the banner has an em dash
    image.ImageComments = BANNER
    return image


def review_sr(first_sr: Dataset, decision: str, final_label: str, reviewer: str, model_version: str) -> Dataset:
    """An SR recording a reviewer's decision about the AI result (IHE AIRAI's accept / reject / correct).

    Raises:
        ValueError: an unknown decision.
    """
    import highdicom as hd

    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="review of the AI result"),
        finding_type=_code(PNEUMONIA),
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(_code(AI_DECISION), _code(DECISIONS[decision])),
            hd.sr.QualitativeEvaluation(
                _code(FINAL_LABEL), codes.SCT.Present if final_label == "PNEUMONIA" else codes.SCT.Absent
            ),
        ],
    )
    context = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(reviewer)),
        )
    )
    return _measurement_report(
        first_sr, context, group, REVIEW_SERIES_NUMBER, f"Review of the AI result ({model_version})"
    )


def _person_name(name: str) -> str:
    """A reviewer's name as a DICOM person name (the caret and backslash are separators there)."""
    cleaned = "".join(" " if c in "^\\=" else c for c in name).strip()[:63] or "unknown"
    return cleaned + "^"  # one component: the family-name field, marked as such


def sr_findings(sr: Dataset) -> dict[str, Any]:
    """What an SR says, read back: the referenced SOP Instance UIDs and each qualitative evaluation's meaning.

    Used by tests and by anyone checking what was pushed.
    """
    referenced = [
        item.ReferencedSOPInstanceUID
        for study in getattr(sr, "CurrentRequestedProcedureEvidenceSequence", [])
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    ]
    evaluations: dict[str, str] = {}
    numbers: dict[str, float] = {}

    def walk(items: Any) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
            if item.ValueType == "CODE":
                evaluations[name] = item.ConceptCodeSequence[0].CodeMeaning
            elif item.ValueType == "NUM":
                numbers[name] = float(item.MeasuredValueSequence[0].NumericValue)
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return {"referenced": referenced, "evaluations": evaluations, "numbers": numbers}
