"""Orthanc's `PythonScript` points here: put the package on sys.path and register it."""
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import advanced_rest

    advanced_rest.register()
except Exception:  # a missing dependency must not stop Orthanc from starting
    sys.stderr.write("advanced-rest: NOT LOADED (are plugin/requirements.txt installed on PYTHONPATH?)\n")
    traceback.print_exc()
