"""Request JSON -> DICOM bytes, as Orthanc's /tools/create-dicom does; pure (no `orthanc`)."""
