"""Orthanc's `PythonScript` points here: put the package on sys.path and register it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import advanced_rest  # noqa: E402  (needs the path above)

advanced_rest.register()
