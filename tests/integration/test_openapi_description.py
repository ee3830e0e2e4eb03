"""GET {Root}/openapi.json describes every route the plugin serves, and its examples are accepted."""
import json


def test_the_description_lists_the_plugins_routes(plugin):
    answer = plugin.get("/advanced-rest/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path, method in (("/tools/create-dicom", "post"), ("/advanced-rest/tools/create-dicom", "post"),
                         ("/jobs", "get"), ("/jobs/{id}", "get"), ("/jobs/{id}/{name}", "post"),
                         ("/advanced-rest/jobs/changes", "get"), ("/advanced-rest/metrics", "get"),
                         ("/tools/metrics-prometheus", "get"), ("/advanced-rest/system", "get"),
                         ("/advanced-rest/openapi.json", "get")):
        assert method in paths.get(path, {}), (path, method)


def test_every_example_is_accepted(plugin):
    document = plugin.get("/advanced-rest/openapi.json").json()
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            documented = set(operation["responses"])
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            for name, example in body.get("examples", {}).items():
                answer = plugin.request(method.upper(), path, data=json.dumps(example["value"]))
                assert answer.status_code == 200, (path, name, answer.text)
                checked += 1
            if method == "get" and "{" not in path:
                params = {p["name"]: p["example"] for p in operation.get("parameters", []) if "example" in p}
                answer = plugin.get(path, params=params, allow_redirects=False)
                assert str(answer.status_code) in documented, (path, answer.status_code)
                checked += 1
    job = plugin.post("/tools/create-dicom", data=json.dumps({"Tags": {}, "Asynchronous": True})).json()["ID"]
    for path, params in (("/jobs/%s" % job, {}), ("/jobs/%s/wait" % job, {"timeout": 5})):
        assert plugin.get(path, params=params).status_code == 200
    assert checked >= 10
