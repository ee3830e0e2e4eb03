"""The OpenAPI description covers every route the plugin registers."""
from advanced_rest import openapi


def test_paths_name_their_parameters():
    assert openapi.path_of(r"/advanced\-rest/jobs/([^/]+)/([^/]+)") == "/advanced-rest/jobs/{id}/{name}"


def test_every_route_of_the_plugin_is_described():
    # What app.register registers with the default settings (own root and the core's routes).
    own = r"/advanced\-rest"
    registered = [(own + "/system", ["GET"]), (own + "/metrics", ["GET"]), (own + "/openapi.json", ["GET"])]
    for root in (own, ""):
        registered.append((root + "/tools/create-dicom", ["POST"]))
        registered += [(root + "/jobs", ["GET"]), (root + "/jobs/([^/]+)", ["DELETE", "GET"]),
                       (root + "/jobs/([^/]+)/([^/]+)", ["DELETE", "GET", "POST"])]
    registered += [(own + "/jobs/changes", ["GET"]), ("/tools/metrics-prometheus", ["GET"])]
    document = openapi.document(registered, "/advanced-rest")
    assert len(document["paths"]) == len(registered)
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["summary"] and operation["responses"], path
