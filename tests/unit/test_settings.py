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


@pytest.mark.parametrize("threads, share, stores", [
    (None, None, 12),  # the default: a quarter of Orthanc's 50 HTTP threads
    (100, 0.1, 10),
    (2, 0.25, 1),  # a share of a few threads is still one
    (50, 0, 0),  # 0: always through the SDK
], ids=["default", "tenth-of-100", "at-least-one", "off"])
def test_the_loopback_store_share_is_a_number_of_http_threads(threads, share, stores):
    config = {} if threads is None else {"HttpThreadsCount": threads}
    if share is not None:
        config["AdvancedRest"] = {"LoopbackStoreShare": share}
    assert settings.from_configuration(config).loopback_stores == stores
    assert settings.Settings().loopback_stores == 12


@pytest.mark.parametrize("share", [1, 1.5, -0.1, True, "0.5"])
def test_a_bad_loopback_store_share_is_named(share):
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration({"AdvancedRest": {"LoopbackStoreShare": share}})
    assert "AdvancedRest.LoopbackStoreShare" in str(caught.value)


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


# ---- the README's tables of options are the declared options ----------------------------------------

import json
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
# Declaration table -> the README heading the table of options follows.
TABLES = {"Configuration": "## Configuration", "Limits": "### Limits",
          "Cluster": "## Several Orthanc on one PostgreSQL (the cluster)", "Webhooks": "## Webhooks",
          "Retries": "## Automatic retries"}


def _rows(heading, text=None):
    """{option name: default cell} of the first table of options after `heading` in the README."""
    text = text or README.read_text(encoding="utf-8")
    lines = text[text.index("\n" + heading + "\n"):].splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\|[^|]*option[^|]*\| default \|", line))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[re.fullmatch(r"`([A-Za-z]+)`", cells[0]).group(1)] = cells[1]
    return rows


def _shown(value):
    """A default as the README shows it: JSON, strings bare (but the empty one), 60.0 as 60."""
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_readme_table_lists_every_declared_option_with_its_default(table):
    rows = _rows(TABLES[table])
    declared = {option.name.rsplit(".", 1)[-1]: option for option in settings.OPTIONS if option.table == table}
    assert sorted(rows) == sorted(declared), "README table %r vs settings.OPTIONS" % table
    for name, option in declared.items():
        cell = rows[name]
        if option.orthanc is not None:  # defaults to Orthanc's own option: the cell names it
            assert "`%s`" % option.orthanc in cell, (name, cell)
        else:
            assert cell.startswith("`%s`" % _shown(option.default)), (name, cell, _shown(option.default))


def test_settings_defaults_are_the_declared_ones():
    defaults = settings.Settings()
    for option in settings.OPTIONS:
        if option.attribute is not None:
            assert getattr(defaults, option.attribute) == option.default, option.name
    assert settings.from_configuration({}) == defaults


def test_a_stray_row_or_a_wrong_default_is_caught():
    text = "\n## Configuration\n\n| option | default | meaning |\n|---|---|---|\n| `Root` | `/x` | p |\n| `Nope` | `1` | q |\n"
    rows = _rows("## Configuration", text)
    assert rows == {"Root": "`/x`", "Nope": "`1`"}
    assert not rows["Root"].startswith("`%s`" % _shown(settings.OPTION["Root"].default))


def test_trusted_origins_are_checked_and_kept_in_lower_case():
    read = settings.from_configuration({"AdvancedRest": {"TrustedOrigins": ["https://Viewer.example.org:8443"]}})
    assert read.trusted_origins == ("https://viewer.example.org:8443",)
    with pytest.raises(settings.SettingsError, match="TrustedOrigins.*'https://viewer.example.org/app'"):
        settings.from_configuration({"AdvancedRest": {"TrustedOrigins": ["https://viewer.example.org/app"]}})


# ---- AdvancedRest.Retries ---------------------------------------------------------------------------------

def test_a_retry_policy_is_read_with_its_defaults():
    got = settings.from_configuration({"AdvancedRest": {"Retries": [
        {"Types": ["DicomModalityStore", "OrthancPeerStore"], "MaxAttempts": 7}]}})
    assert got.retries == (settings.RetryPolicy(types=("DicomModalityStore", "OrthancPeerStore"), max_attempts=7),)
    policy = got.retries[0]
    assert policy.retries("OrthancPeerStore", 9) and not policy.retries("OrthancPeerStore", 8)
    assert not policy.retries("Archive", 9) and got.max_retrying_jobs == 1000


@pytest.mark.parametrize("policies, named", [
    ([{"Types": []}], "Retries[0].Types must name at least one job type"),
    ([{"Types": ["A"], "Codes": [9]}], "Retries[0].Codes is not a known option"),
    ([{"Types": ["A"], "ErrorCodes": ["9"]}], "Retries[0].ErrorCodes must be"),
    ([{"Types": ["A"]}, {"Types": ["A"]}], "Retries[1].Types: A is already AdvancedRest.Retries[0]'s"),
    ([{"Types": ["A"], "MaxAttempts": 0}], "Retries[0].MaxAttempts must be at least 1"),
    ({"Types": ["A"]}, "AdvancedRest.Retries must be a list of policies"),
], ids=["no type", "unknown option", "codes not numbers", "a type twice", "no attempt", "not a list"])
def test_a_bad_retry_policy_is_named(policies, named):
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration({"AdvancedRest": {"Retries": policies}})
    assert named in str(caught.value)
