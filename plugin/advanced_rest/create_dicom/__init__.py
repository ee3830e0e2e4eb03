"""The create-dicom feature: its route, its job, and storing all of a request's files or none."""
