"""The plugin's jobs shared by several Orthanc servers on one PostgreSQL (the cluster).

    replica.py   Cluster: one replica's view: queries, moves (compare-and-set on each job's row,
                 decided by jobs/decisions.py as one server decides), its workers' claims and
                 moves, leases, takeovers, identity, the reporting role, a single server's jobs moved in
    feed.py      the change feed, written by the moves in their own transactions
    peers.py     the core jobs of every replica, listed and acted on from any replica
    sql.py       every statement, named, the schema as numbered migrations, the advisory locks
    database.py  Database: one replica's connections and notifications; connection settings,
                 bounded sessions, errors as 503

Imported only when the cluster is on (psycopg is not needed otherwise).
"""
