"""The DICOMweb adapter: QIDO-RS searches, WADO-RS retrieval and STOW-RS storage through ``dicomweb-client``.

Every failure (an unreachable server, a refused request, a reply that is not DICOM) becomes one
:class:`PacsError` with a one-line message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom.dataset import Dataset

RADIOGRAPHS = ("CR", "DX")
"""Modalities pulled: computed and digital radiography."""
LATERAL_VIEWS = {"LL", "RL", "LATERAL", "LAT"}


class PacsError(RuntimeError):
    """The PACS could not be reached or refused a request; the message is one line."""


@dataclass(frozen=True)
class InstanceRef:
    """One instance found by a search."""

    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str
    view: str


def settings_url() -> str | None:
    """``$DICOMWEB_URL`` (the DICOMweb root, e.g. ``http://pacs:8042/dicom-web``) or ``None``."""
    return os.environ.get("DICOMWEB_URL") or None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _value(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


class PacsClient:
    """A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS)."""

    def __init__(self, url: str | None = None, user: str | None = None, password: str | None = None):
        """Connect lazily to ``url`` (default ``$DICOMWEB_URL``; ``$DICOMWEB_USER`` / ``$DICOMWEB_PASSWORD``).

        Raises:
            PacsError: no URL configured.
        """
        from dicomweb_client.api import DICOMwebClient
        from dicomweb_client.session_utils import create_session_from_user_pass

        self.url = url or settings_url()
        if not self.url:
            raise PacsError(
                "no PACS configured: set DICOMWEB_URL to the DICOMweb root (e.g. http://pacs:8042/dicom-web)"
            )
        user = user or os.environ.get("DICOMWEB_USER")
        password = password or os.environ.get("DICOMWEB_PASSWORD")
        session = create_session_from_user_pass(user, password or "") if user else None
        self._client = DICOMwebClient(url=self.url.rstrip("/"), session=session)

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as error:  # requests, HTTP and decoding errors come in many types
            raise PacsError(f"PACS {self.url}: {what} failed ({_one_line(error)})") from None

    def find_radiographs(self, since: date | None = None, study_uid: str | None = None) -> Iterator[InstanceRef]:
        """Every CR / DX instance (of one study, or of studies dated from ``since``), frontal and lateral alike."""
        for modality in RADIOGRAPHS:
            filters: dict[str, Any] = {"Modality": modality}
            if study_uid:
                filters["StudyInstanceUID"] = study_uid
            if since:
                filters["StudyDate"] = f"{since:%Y%m%d}-"
            series = self._call("the series search", self._client.search_for_series, search_filters=filters)
            for item in series:
                study, series_uid = _value(item, "0020000D"), _value(item, "0020000E")
                instances = self._call(
                    "the instance search",
                    self._client.search_for_instances,
                    study_instance_uid=study,
                    series_instance_uid=series_uid,
                    fields=["00185101"],
                )
                for instance in instances:
                    yield InstanceRef(
                        study, series_uid, _value(instance, "00080018"), modality, _value(instance, "00185101")
                    )

    def retrieve(self, ref: InstanceRef) -> Dataset:
        """The instance (WADO-RS)."""
        return self._call(
            f"retrieving instance {ref.sop_uid}",
            self._client.retrieve_instance,
            study_instance_uid=ref.study_uid,
            series_instance_uid=ref.series_uid,
            sop_instance_uid=ref.sop_uid,
        )

    def store(self, datasets: list[Dataset]) -> None:
        """Store instances (STOW-RS); a refusal of any is a :class:`PacsError`."""
        reply = self._call("storing results", self._client.store_instances, datasets=datasets)
        failed = getattr(reply, "FailedSOPSequence", None)
        if failed:
            raise PacsError(f"PACS {self.url}: refused {len(failed)} of {len(datasets)} instance(s)")

    def search_instances(self, study_uid: str, modality: str) -> list[dict[str, Any]]:
        """The instances of one modality in a study (QIDO-RS JSON)."""
        series = self._call(
            "the series search",
            self._client.search_for_series,
            search_filters={"StudyInstanceUID": study_uid, "Modality": modality},
        )
        found: list[dict[str, Any]] = []
        for item in series:
            found += self._call(
                "the instance search",
                self._client.search_for_instances,
                study_instance_uid=study_uid,
                series_instance_uid=_value(item, "0020000E"),
            )
        return found

    def retrieve_uid(self, study_uid: str, series_uid: str, sop_uid: str) -> Dataset:
        """One instance by its UIDs."""
        return self.retrieve(InstanceRef(study_uid, series_uid, sop_uid, "", ""))
