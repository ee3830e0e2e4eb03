"""The cluster harness itself: a PostgreSQL server of the tests, and replicas on one database and storage."""
import os

import pytest

PATIENT = {"PatientID": "cluster-harness", "PatientName": "Harness^Cluster"}


def create_instance(server, **tags):
    """Return the Orthanc ID of a new instance made with create-dicom on server."""
    answer = server.post("/tools/create-dicom", json={"Tags": {**PATIENT, **tags}})
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def test_postgres_database_takes_password_logins(postgres_database):
    assert postgres_database.query("SELECT current_user, current_database()") == [
        (postgres_database.user, postgres_database.name)]
    assert postgres_database.psql("SELECT 1 + 1").strip() == "2"


def test_replicas_share_index_and_storage(cluster):
    a, b = cluster.replicas
    instance = create_instance(a, SeriesDescription="stored on A")
    on_b = b.get(f"/instances/{instance}/tags?simplify")
    assert on_b.status_code == 200, on_b.text
    assert on_b.json()["SeriesDescription"] == "stored on A"
    # B reads the file A wrote: one storage folder.
    assert b.get(f"/instances/{instance}/file").content == a.get(f"/instances/{instance}/file").content
    assert any(files for _, _, files in os.walk(cluster.storage_dir))
    # One index: Orthanc's own table in the cluster's database holds the instance once.
    assert cluster.postgres.query("SELECT count(*) FROM resources WHERE publicid = %s", (instance,)) == [(1,)]


def test_each_replica_has_its_own_identifier(cluster):
    identifiers = [replica.identifier for replica in cluster]
    assert identifiers == ["replica-a", "replica-b"]
    for replica in cluster:
        assert replica.config()["DatabaseServerIdentifier"] == replica.identifier
        system = replica.get("/system").json()
        if "DatabaseServerIdentifier" in system:  # 1.13.0 reports it, 1.10.1 does not
            assert system["DatabaseServerIdentifier"] == replica.identifier
        # The index is PostgreSQL's, not SQLite's (no index file in the replica's own folder).
        assert not os.path.exists(os.path.join(replica.index_dir, "index"))


def test_killed_replica_leaves_the_other_answering(cluster):
    a, b = cluster.replicas
    before = create_instance(a, SeriesDescription="before the kill")
    a.kill()
    assert b.get("/system").status_code == 200
    assert b.get(f"/instances/{before}").status_code == 200
    during = create_instance(b, SeriesDescription="while A is dead")
    a.start()
    assert a.get(f"/instances/{during}").status_code == 200


@pytest.mark.cluster(replicas=3, config={"PostgreSQL": {"IndexConnectionsCount": 2}})
def test_marker_sets_replicas_and_config(cluster):
    assert [r.identifier for r in cluster] == ["replica-a", "replica-b", "replica-c"]
    assert all(r.config()["PostgreSQL"]["IndexConnectionsCount"] == 2 for r in cluster)
    assert all(r.config()["PostgreSQL"]["Lock"] is False for r in cluster)
