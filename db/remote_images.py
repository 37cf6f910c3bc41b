"""The PACS as the shared image store (``IMAGE_STORE=dicomweb``): every stored image also lives in the PACS.

Each image is wrapped as a DICOM Secondary Capture whose Study, Series and SOP Instance UIDs derive
from the image's SHA-256 (so any replica finds it from the database row alone) and whose private
element keeps the original file's bytes (so what comes back hashes the same). It is stored with
STOW-RS inside the transaction that logs it (a refusal fails the transaction: nothing is half
saved) and read back with WADO-RS into the local folder, which becomes a cache. The local folder
stays the default store (``IMAGE_STORE=folder``).
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

PRIVATE_GROUP = 0x0099
PRIVATE_CREATOR = "PNEUMONIA_REVIEW_IMAGE"
ORIGINAL_ELEMENT = 0x10
LENGTH_ELEMENT = 0x11
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
UID_ROOT = "1.2.826.0.1.3680043.8.498."
"""pydicom's UID root, under which ``generate_uid`` derives UIDs from the hash."""


class RemoteImageStoreError(OSError):
    """The PACS that holds the images cannot be reached or refused a request; one line."""


def enabled() -> bool:
    """True when ``$IMAGE_STORE`` is ``dicomweb`` (``$DICOMWEB_URL`` names the PACS)."""
    return os.environ.get("IMAGE_STORE", "folder").strip().lower() == "dicomweb"


def uids(sha256: str) -> tuple[str, str, str]:
    """The Study, Series and SOP Instance UIDs of an image, derived from its hash."""
    from pydicom.uid import generate_uid

    return tuple(
        generate_uid(UID_ROOT, entropy_srcs=[PRIVATE_CREATOR, part, sha256]) for part in ("study", "series", "sop")
    )  # type: ignore[return-value]


def _client() -> Any:
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    url = os.environ.get("DICOMWEB_URL")
    if not url:
        raise RemoteImageStoreError("IMAGE_STORE=dicomweb needs DICOMWEB_URL (the PACS's DICOMweb root)")
    user = os.environ.get("DICOMWEB_USER")
    session = create_session_from_user_pass(user, os.environ.get("DICOMWEB_PASSWORD", "")) if user else None
    return DICOMwebClient(url=url.rstrip("/"), session=session)


def _one_line(what: str, error: BaseException) -> RemoteImageStoreError:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return RemoteImageStoreError(f"the image store (PACS) {what} failed ({text})")


def wrap(data: bytes, sha256: str) -> Any:
    """The Secondary Capture that carries ``data`` (pixels for PACS viewers, the file's bytes in a private element)."""
    import numpy as np
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    study, series, sop = (UID(u) for u in uids(sha256))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UID(SECONDARY_CAPTURE), sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("image.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = SECONDARY_CAPTURE, sop, study, series
    ds.PatientName, ds.PatientID = "Image store^Pneumonia review", f"IMG-{sha256[:16]}"
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.StudyDate = ds.StudyTime = ""
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SeriesDescription = "Pneumonia review image store"
    try:
        with Image.open(io.BytesIO(data)) as picture:
            pixels = np.asarray(picture.convert("L"), dtype=np.uint8)
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels.tobytes()
    except (OSError, ValueError):
        pass  # not a picture Pillow reads (kept as bytes only)
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(ORIGINAL_ELEMENT, "OB", data)
    block.add_new(LENGTH_ELEMENT, "UL", len(data))  # DICOM pads odd-length values to an even length
    return ds


def put(data: bytes, sha256: str) -> None:
    """Store the image in the PACS (a no-op when it is there already: its UIDs come from its hash).

    Raises:
        RemoteImageStoreError: unreachable or refused.
    """
    client = _client()
    study, series, sop = uids(sha256)
    try:
        if client.search_for_instances(search_filters={"SOPInstanceUID": sop, "StudyInstanceUID": study}):
            return
        reply = client.store_instances(datasets=[wrap(data, sha256)])
    except Exception as error:  # requests and HTTP errors come in many types
        raise _one_line("store", error) from None
    if getattr(reply, "FailedSOPSequence", None):
        raise RemoteImageStoreError("the image store (PACS) refused the image")


def fetch(sha256: str) -> bytes:
    """The image's original bytes from the PACS, checked against the hash.

    Raises:
        RemoteImageStoreError: unreachable, missing, or not the image the hash names.
    """
    client = _client()
    study, series, sop = uids(sha256)
    try:
        dataset = client.retrieve_instance(study_instance_uid=study, series_instance_uid=series, sop_instance_uid=sop)
        block = dataset.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
        data = bytes(block[ORIGINAL_ELEMENT].value)[: int(block[LENGTH_ELEMENT].value)]
    except Exception as error:  # requests, HTTP and a dataset without the element
        raise _one_line(f"read of image {sha256[:12]}", error) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RemoteImageStoreError(f"the image store (PACS) returned other bytes for image {sha256[:12]}")
    return data
