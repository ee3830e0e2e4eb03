"""The plugin's routes and settings on a real Orthanc: own routes, core routes, configuration."""
import json

BODY = json.dumps({"Tags": {"PatientName": "Routes^Test"}})
UNKNOWN_TAG = json.dumps({"Tags": {"NoSuchTag": "x"}})


def test_own_route_is_always_served(plugin):
    answer = plugin.post("/advanced-rest/tools/create-dicom", data=BODY)
    assert answer.status_code == 200
    assert plugin.get(answer.json()["Path"]).json()["ParentSeries"] == answer.json()["ParentSeries"]


def test_system_route_names_the_versions(plugin):
    info = plugin.get("/advanced-rest/system").json()
    assert info["Name"] == "advanced-rest"
    assert info["PythonPlugin"] == plugin.get("/plugins/python").json()["Version"]


def test_core_route_is_the_plugins_when_serving_core_routes(plugin):
    # The core answers 500 for an unknown tag name; the plugin answers 400.
    assert plugin.post("/tools/create-dicom", data=UNKNOWN_TAG).status_code == 400


def test_other_methods_are_refused_with_allow(plugin):
    answer = plugin.get("/tools/create-dicom")
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"


def test_serve_core_routes_off_leaves_the_core_route_to_the_core(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"ServeCoreRoutes": False, "Root": "/ext"}})
    assert server.post("/tools/create-dicom", data=UNKNOWN_TAG).status_code == 500
    assert server.post("/ext/tools/create-dicom", data=UNKNOWN_TAG).status_code == 400
    assert server.post("/advanced-rest/tools/create-dicom", data=BODY).status_code == 404


def test_bad_configuration_is_logged_and_orthanc_keeps_running(orthanc_factory):
    server = orthanc_factory(config={"AdvancedRest": {"Root": "no-slash", "MaxImagePixels": "many"}})
    assert server.get("/system").status_code == 200
    assert server.post("/advanced-rest/tools/create-dicom", data=BODY).status_code == 404
    log = server.log_text()
    assert "AdvancedRest.Root" in log and "AdvancedRest.MaxImagePixels" in log


def test_image_pixel_limit_is_configurable(orthanc_factory):
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (100, 100)).save(out, "PNG")
    body = json.dumps({"Tags": {}, "Content": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()})
    server = orthanc_factory(config={"AdvancedRest": {"MaxImagePixels": 5000}})
    before = len(server.get("/instances").json())
    answer = server.post("/tools/create-dicom", data=body)
    assert answer.status_code == 400 and "MaxImagePixels" in answer.json()["Details"]
    assert len(server.get("/instances").json()) == before


def test_forged_png_dimensions_fail_cleanly(plugin):
    import base64
    import io
    import struct
    import zlib

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (4, 4)).save(out, "PNG")
    data = bytearray(out.getvalue())
    data[16:24] = struct.pack(">II", 60000, 60000)  # claims 3.6 gigapixels
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    body = json.dumps({"Tags": {}, "Content": "data:image/png;base64," + base64.b64encode(bytes(data)).decode()})
    answer = plugin.post("/tools/create-dicom", data=body, timeout=10)
    assert answer.status_code == 400
    assert plugin.get("/system").status_code == 200
