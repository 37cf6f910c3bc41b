"""Work where radiologists work: pull studies from a PACS over DICOMweb, push the AI result back as DICOM.

An adapter on top of the use cases (``service``): :mod:`pacs.client` talks DICOMweb
(``dicomweb-client``), :mod:`pacs.results` builds the DICOM results (``highdicom``),
:mod:`pacs.pull` joins them with the prediction and review use cases, :mod:`pacs.orthanc`
starts a local Orthanc for tests and ``make pacs``.
"""
