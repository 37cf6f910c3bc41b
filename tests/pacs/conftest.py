"""A real Orthanc PACS (Debian's orthanc + orthanc-dicomweb) on loopback ports, and chest radiographs to put in it."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pacs import orthanc
from tests.db.conftest import data_dir, engine
from tests.helpers import skip_unless_available

__all__ = ["data_dir", "engine", "pacs_url", "radiograph", "xray_pixels"]

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


@pytest.fixture()
def pacs_url(tmp_path):
    """The DICOMweb root of a fresh Orthanc with its own storage folder."""
    skip_unless_available(orthanc.available(), "Orthanc with DICOMweb", "apt-get install orthanc orthanc-dicomweb")
    process, url = orthanc.start(tmp_path / "orthanc")
    yield url
    orthanc.stop(process)


def radiograph(pixels: np.ndarray, view: str = "PA", study_uid: str | None = None, modality: str = "CR") -> Dataset:
    """A CR chest radiograph with a patient, a study and a series, as a PACS holds it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Doe^Jane", "PAT-7", "20220101", "F"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20261201", "101010", "ACC1", "1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, "CHEST", view
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def xray_pixels(path) -> np.ndarray:
    """A real X-ray's gray levels on 12 bits."""
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=np.uint16) * 16
