"""Giving memory back to the system after a large request.

glibc keeps freed heap memory for later allocations; after a request of hundreds of megabytes
that memory would stay counted in Orthanc's resident size until the process ends. malloc_trim
hands it back. It costs a few milliseconds, so it runs only after large requests.
"""
import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

LARGE_REQUEST = 16 * 1024 * 1024  # bytes of body from which memory is given back afterwards


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        return None


_TRIM = _malloc_trim()


def give_back():
    """Return freed heap memory to the system (glibc); a no-op elsewhere."""
    if _TRIM is not None:
        try:
            _TRIM(0)
        except Exception:
            logger.debug("malloc_trim failed", exc_info=True)
