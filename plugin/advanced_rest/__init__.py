"""advanced-rest: Orthanc's REST API, extended, as a Python plugin."""

__version__ = "0.3.0"


def register():
    """Read the configuration and serve the plugin's routes; called once by entrypoint.py."""
    # Imported here so that the pure packages can be imported (and tested) without Orthanc.
    from . import app

    app.register()
