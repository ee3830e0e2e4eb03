import pytest

from advanced_rest import settings


def test_no_section_gives_defaults():
    assert settings.from_configuration({}) == settings.Settings()


def test_values_are_read():
    got = settings.from_configuration({
        "AdvancedRest": {"Root": "/ar/", "ServeCoreRoutes": False, "StrictDicom": True, "MaxImagePixels": 1000},
        "DefaultPrivateCreator": "Me",
    })
    assert (got.root, got.serve_core_routes, got.strict_dicom, got.max_image_pixels, got.default_private_creator) \
        == ("/ar", False, True, 1000, "Me")


def test_every_bad_value_is_named_at_once():
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration({"AdvancedRest": {
            "Root": "no-slash", "ServeCoreRoutes": "yes", "MaxImagePixels": True, "Typo": 1}})
    text = str(caught.value)
    for name in ("AdvancedRest.Root", "AdvancedRest.ServeCoreRoutes", "AdvancedRest.MaxImagePixels",
                 "AdvancedRest.Typo"):
        assert name in text


def test_limits_are_read_and_checked():
    got = settings.from_configuration({"HttpThreadsCount": 100, "AdvancedRest": {
        "MaxRequestBytes": 1000, "MaxPendingJobs": 3, "MaxWaitSeconds": 2.5, "LongPollShare": 0.1}})
    assert (got.max_request_bytes, got.max_pending_jobs, got.max_wait_seconds, got.max_waiting_requests) \
        == (1000, 3, 2.5, 10)
    assert settings.from_configuration({}).max_waiting_requests == 10  # 0.2 of Orthanc's 50 HTTP threads
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration({"AdvancedRest": {"MaxSequenceDepth": 40, "MaxElements": 0,
                                                      "LongPollShare": 1.5, "MaxWaitSeconds": True}})
    for name in ("MaxSequenceDepth", "MaxElements", "LongPollShare", "MaxWaitSeconds"):
        assert "AdvancedRest." + name in str(caught.value)


def _postgresql(**extra):
    return dict({"DatabaseServerIdentifier": "replica-a",
                 "PostgreSQL": {"EnableIndex": True, "Host": "db", "Lock": False}}, **extra)


def test_a_postgresql_section_without_its_plugin_leaves_the_plugin_a_single_server():
    """Orthanc's own integration configuration has the section and no such plugin: Orthanc's index is SQLite."""
    got = settings.from_configuration(_postgresql(Plugins=["/usr/share/orthanc/plugins/libOrthancPython.so"]))
    assert got.cluster is False
    assert settings.from_configuration(_postgresql()).cluster is False


@pytest.mark.parametrize("plugins", [
    ["/usr/share/orthanc/plugins/libOrthancPython.so", "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"],
    "/usr/lib/orthanc/libOrthancPostgreSQLIndex.so.4.0",
    ["/opt/plugins/libOrthancPostgreSQL.so"],
], ids=["list", "versioned-file", "one-library"])
def test_the_postgresql_index_plugin_among_the_plugins_makes_a_cluster(plugins):
    got = settings.from_configuration(_postgresql(Plugins=plugins))
    assert (got.cluster, got.replica) == (True, "replica-a")


def test_a_folder_of_plugins_is_looked_into(tmp_path):
    for name in ("libOrthancPython.so", "libOrthancPostgreSQLStorage.so"):
        (tmp_path / name).write_bytes(b"")
    assert settings.from_configuration(_postgresql(Plugins=[str(tmp_path)])).cluster is False
    (tmp_path / "libOrthancPostgreSQLIndex.so").write_bytes(b"")
    assert settings.from_configuration(_postgresql(Plugins=[str(tmp_path)])).cluster is True


def test_the_cluster_asked_for_without_postgresql_is_a_named_mistake():
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration(_postgresql(AdvancedRest={"Cluster": {"Enabled": True}}))
    assert "AdvancedRest.Cluster.Enabled" in str(caught.value)
