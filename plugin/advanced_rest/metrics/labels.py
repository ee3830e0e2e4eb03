"""Bounded label values: anything outside these sets is counted as "other".

No request can make the number of series grow: every label takes its value from a
fixed set here, or from the plugin's own route table.
"""
OTHER = "other"

CONTENT_TYPES = {
    "image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/x-portable-arbitrarymap": "pam",
    "application/pdf": "pdf", "model/stl": "stl", "model/obj": "obj", "model/mtl": "mtl",
    "application/octet-stream": "raw",
}
STATUSES = frozenset({"200", "400", "401", "403", "404", "405", "409", "413", "415", "500", "503"})
METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
JOB_STATES = frozenset({"Pending", "Running", "Success", "Failure", "Paused", "Retry"})
JOB_TYPES = frozenset({
    "CreateDicom", "Archive", "Media", "DicomModalityStore", "DicomMoveScu", "OrthancPeerStore",
    "ResourceModification", "MergeStudy", "SplitStudy", "StorageCommitmentScp", "DicomGetScu",
    "DeleteResources", "Transcoding", "DicomWebStowClient", "DicomWebStowClientJob",
})
ORIGINS = frozenset({"RestApi", "DicomProtocol", "Plugins", "Lua", "WebDav", "Unknown"})  # Origin metadata
MODALITIES = frozenset({
    "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CR", "CT", "CTPROTOCOL", "DG", "DOC", "DX", "ECG", "EPS", "ES",
    "FID", "GM", "HC", "HD", "IO", "IOL", "IVOCT", "IVUS", "KER", "KO", "LEN", "LS", "M3D", "MG", "MR", "NM",
    "OAM", "OCT", "OP", "OPM", "OPT", "OPTBSV", "OPTENF", "OPV", "OSS", "OT", "PLAN", "PR", "PT", "PX", "REG",
    "RESP", "RF", "RG", "RTDOSE", "RTIMAGE", "RTPLAN", "RTRECORD", "RTSTRUCT", "RWV", "SEG", "SM", "SMR", "SR",
    "SRF", "STAIN", "TG", "US", "VA", "XA", "XC",
})
TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2": "implicit-le",
    "1.2.840.10008.1.2.1": "explicit-le",
    "1.2.840.10008.1.2.1.99": "deflated",
    "1.2.840.10008.1.2.2": "explicit-be",
    "1.2.840.10008.1.2.4.50": "jpeg-baseline",
    "1.2.840.10008.1.2.4.51": "jpeg-extended",
    "1.2.840.10008.1.2.4.57": "jpeg-lossless",
    "1.2.840.10008.1.2.4.70": "jpeg-lossless-sv1",
    "1.2.840.10008.1.2.4.80": "jpeg-ls-lossless",
    "1.2.840.10008.1.2.4.81": "jpeg-ls",
    "1.2.840.10008.1.2.4.90": "jpeg2000-lossless",
    "1.2.840.10008.1.2.4.91": "jpeg2000",
    "1.2.840.10008.1.2.4.201": "htj2k-lossless",
    "1.2.840.10008.1.2.4.203": "htj2k",
    "1.2.840.10008.1.2.4.100": "mpeg2",
    "1.2.840.10008.1.2.4.102": "mpeg4",
    "1.2.840.10008.1.2.4.107": "hevc",
    "1.2.840.10008.1.2.5": "rle",
}


def bounded(value, allowed):
    """`value` when it is in `allowed` (a set, or a dict mapping to the label), else "other"."""
    if isinstance(allowed, dict):
        return allowed.get(value, OTHER)
    return value if value in allowed else OTHER
