#!/usr/bin/env python3
"""Spark (delta-spark 4.0) side of delta's TestSparkTableFeatures.

usage:
  spark_features.py create OUT_DIR
      Spark creates one small table per table feature under OUT_DIR (the
      way Databricks, Fabric and Spark users make them: table properties,
      ALTER TABLE, DELETE) and prints {table: {"protocol": ..., "keys": [...]}}.
  spark_features.py check PLAN_JSON
      PLAN_JSON is {"root": dir, "tables": {name: {"key": col,
      "delete": sql-predicate-or-null, "sql": [[query, want_count], ...]}}}.
      For every table: run the DELETE (Spark writes deletion vectors where
      the table has them), then read it with Spark (every row as to_json),
      delta-rs and DuckDB (the key column), DESCRIBE DETAIL, the row ids of
      row-tracking tables, and count the rows of each check query. Prints
      one JSON document.
"""
import json
import os
import sys
import traceback

from delta.tables import DeltaTable, IdentityGenerator
from sparksession import spark_session


BASE = "id BIGINT, name STRING, amount DOUBLE, ts TIMESTAMP"


def rows(lo, hi):
    return ", ".join(
        f"({i}, 'spark-{i}', {i}.5, TIMESTAMP '2024-05-{1 + i % 28:02d} 10:00:00')" for i in range(lo, hi))


# name -> list of SQL statements; {t} is the table's location as delta.`path`.
TABLES = {
    "deletion_vectors": [
        f"CREATE TABLE {{t}} ({BASE}) USING delta TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
        f"INSERT INTO {{t}} VALUES {rows(1, 6)}",
        f"INSERT INTO {{t}} VALUES {rows(6, 11)}",
        "DELETE FROM {t} WHERE id IN (2, 7)",
    ],
    "column_mapping_name": [
        "CREATE TABLE {t} (id BIGINT, name STRING, info STRUCT<a: INT, b: STRING>, tags ARRAY<STRING>) USING delta "
        "TBLPROPERTIES ('delta.columnMapping.mode' = 'name', 'delta.minReaderVersion' = '2', 'delta.minWriterVersion' = '5')",
        "INSERT INTO {t} VALUES (1, 'spark-1', named_struct('a', 1, 'b', 'x'), array('p', 'q')), (2, 'spark-2', NULL, array())",
        "ALTER TABLE {t} RENAME COLUMN name TO title",
        "ALTER TABLE {t} ADD COLUMNS (extra STRING)",
        "INSERT INTO {t} VALUES (3, 'spark-3', named_struct('a', 3, 'b', NULL), NULL, 'e3')",
    ],
    "column_mapping_id": [
        "CREATE TABLE {t} (id BIGINT, name STRING, info STRUCT<a: INT, b: STRING>, tags ARRAY<STRING>) USING delta "
        "TBLPROPERTIES ('delta.columnMapping.mode' = 'id')",
        "INSERT INTO {t} VALUES (1, 'spark-1', named_struct('a', 1, 'b', 'x'), array('p', 'q'))",
        "ALTER TABLE {t} RENAME COLUMN name TO title",
        "ALTER TABLE {t} ADD COLUMNS (extra STRING)",
        "INSERT INTO {t} VALUES (3, 'spark-3', named_struct('a', 3, 'b', NULL), NULL, 'e3')",
    ],
    "timestamp_ntz": [
        "CREATE TABLE {t} (id BIGINT, local TIMESTAMP_NTZ) USING delta",
        "INSERT INTO {t} VALUES (1, TIMESTAMP_NTZ '2024-05-06 10:11:12.345678'), (2, NULL)",
    ],
    "v2_checkpoint": [
        f"CREATE TABLE {{t}} ({BASE}) USING delta TBLPROPERTIES ('delta.checkpointPolicy' = 'v2', 'delta.checkpointInterval' = '2')",
        f"INSERT INTO {{t}} VALUES {rows(1, 3)}",
        f"INSERT INTO {{t}} VALUES {rows(3, 5)}",
        f"INSERT INTO {{t}} VALUES {rows(5, 7)}",
    ],
    "clustering": [
        "CREATE TABLE {t} (id BIGINT, name STRING, region STRING) USING delta CLUSTER BY (region)",
        "INSERT INTO {t} VALUES (1, 'spark-1', 'east'), (2, 'spark-2', 'west')",
    ],
    "row_tracking": [
        f"CREATE TABLE {{t}} ({BASE}) USING delta TBLPROPERTIES ('delta.enableRowTracking' = 'true')",
        f"INSERT INTO {{t}} VALUES {rows(1, 4)}",
        f"INSERT INTO {{t}} VALUES {rows(4, 7)}",
    ],
    "in_commit_timestamps": [
        f"CREATE TABLE {{t}} ({BASE}) USING delta TBLPROPERTIES ('delta.enableInCommitTimestamps' = 'true')",
        f"INSERT INTO {{t}} VALUES {rows(1, 4)}",
    ],
    "vacuum_protocol_check": [
        f"CREATE TABLE {{t}} ({BASE}) USING delta",
        f"INSERT INTO {{t}} VALUES {rows(1, 3)}",
        "ALTER TABLE {t} SET TBLPROPERTIES ('delta.feature.vacuumProtocolCheck' = 'supported')",
    ],
    "type_widening": [
        "CREATE TABLE {t} (id BIGINT, n INT) USING delta TBLPROPERTIES ('delta.enableTypeWidening' = 'true')",
        "INSERT INTO {t} VALUES (1, 100), (2, 200)",
        "ALTER TABLE {t} ALTER COLUMN n TYPE BIGINT",
        "INSERT INTO {t} VALUES (3, 5000000000)",
    ],
    "variant": [
        "CREATE TABLE {t} (id BIGINT, v VARIANT) USING delta",
        "INSERT INTO {t} SELECT 1, parse_json('{{\"k\": 1, \"l\": [1, 2]}}')",
    ],
    "check_constraints": [
        "CREATE TABLE {t} (id BIGINT, amount DOUBLE, status STRING) USING delta",
        "INSERT INTO {t} VALUES (1, 1.5, 'a')",
        "ALTER TABLE {t} ADD CONSTRAINT valid CHECK (amount > 0 AND status IN ('a', 'b'))",
    ],
    # Generated and identity columns need the DeltaTable builder for a
    # path-only table (CREATE TABLE delta.`path` refuses them).
    "generated_columns": [
        lambda spark, path: (DeltaTable.create(spark).location(path)
                             .addColumn("id", "BIGINT").addColumn("ts", "TIMESTAMP")
                             .addColumn("day", "DATE", generatedAlwaysAs="CAST(ts AS DATE)")
                             .addColumn("yr", "INT", generatedAlwaysAs="year(ts)")
                             .partitionedBy("day").execute()),
        "INSERT INTO {t} (id, ts) VALUES (1, TIMESTAMP '2024-05-06 23:30:00')",
    ],
    "identity_columns": [
        lambda spark, path: (DeltaTable.create(spark).location(path)
                             .addColumn("id", "BIGINT", generatedAlwaysAs=IdentityGenerator(start=10, step=5))
                             .addColumn("name", "STRING").execute()),
        "INSERT INTO {t} (name) VALUES ('spark-1'), ('spark-2')",
    ],
    "nested": [
        "CREATE TABLE {t} (id BIGINT, s STRUCT<a: INT, b: STRUCT<c: STRING, d: ARRAY<INT>>>, "
        "arr ARRAY<STRUCT<x: BIGINT, y: STRING>>, m MAP<STRING, BIGINT>, aa ARRAY<ARRAY<INT>>) USING delta",
        "INSERT INTO {t} VALUES (1, named_struct('a', 1, 'b', named_struct('c', 'deep', 'd', array(1, NULL, 3))), "
        "array(named_struct('x', 1, 'y', 'one'), NULL), map('k', 1, 'n', NULL), array(array(1), array(), NULL)), "
        "(2, NULL, NULL, NULL, NULL)",
    ],
    # What a new Databricks SQL / Unity Catalog table gets by default on
    # recent runtimes: deletion vectors, row tracking, in-commit timestamps
    # and v2 checkpoints.
    "databricks_like": [
        f"CREATE TABLE {{t}} ({BASE}) USING delta TBLPROPERTIES ('delta.enableDeletionVectors' = 'true', "
        "'delta.enableRowTracking' = 'true', 'delta.enableInCommitTimestamps' = 'true', 'delta.checkpointPolicy' = 'v2')",
        f"INSERT INTO {{t}} VALUES {rows(1, 6)}",
        "DELETE FROM {t} WHERE id = 3",
    ],
}


def detail(spark, path):
    d = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").collect()[0].asDict()
    return {"minReaderVersion": d["minReaderVersion"], "minWriterVersion": d["minWriterVersion"],
            "tableFeatures": sorted(d.get("tableFeatures") or [])}


def row_ids(spark, path, key):
    """{key: row id} of a row-tracking table: ids must survive rewrites."""
    df = spark.read.format("delta").load(path).selectExpr(f"CAST(`{key}` AS STRING)", "_metadata.row_id")
    return {k: rid for k, rid in df.collect()}


def create(out):
    spark = spark_session("claimx-features")
    res = {}
    for name, stmts in TABLES.items():
        path = os.path.abspath(os.path.join(out, name))
        for s in stmts:
            if callable(s):
                s(spark, path)
            else:
                spark.sql(s.format(t=f"delta.`{path}`"))
        res[name] = {"protocol": detail(spark, path)}
        if "rowTracking" in res[name]["protocol"]["tableFeatures"]:
            res[name]["row_ids"] = row_ids(spark, path, "id")
    print(json.dumps(res))


def check(plan_path):
    with open(plan_path) as f:
        plan = json.load(f)
    spark = spark_session("claimx-features")
    out = {}
    for name, tp in plan["tables"].items():
        path = os.path.abspath(os.path.join(plan["root"], name))
        t = f"delta.`{path}`"
        r = {}
        try:
            if tp.get("delete"):
                spark.sql(f"DELETE FROM {t} WHERE {tp['delete']}")
            df = spark.read.format("delta").load(path)
            r["rows"] = [row[0] for row in df.selectExpr("to_json(struct(*))").collect()]
            r["protocol"] = detail(spark, path)
            r["sql"] = [spark.sql(q.format(t=t)).count() for q, _ in tp.get("sql") or []]
            if "rowTracking" in r["protocol"]["tableFeatures"]:
                r["row_ids"] = row_ids(spark, path, tp["key"])
        except Exception as e:  # reported per table; the Go test fails it
            r["spark_error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[:2000]
        key = tp["key"]
        try:
            from deltalake import DeltaTable, QueryBuilder
            # delta-rs's SQL engine (DataFusion on delta-kernel), which
            # knows deletion vectors and v2 checkpoints; to_pyarrow_table
            # refuses both.
            tbl = QueryBuilder().register("t", DeltaTable(path)).execute(f'SELECT "{key}" FROM t').read_all()
            r["deltars_keys"] = sorted(str(v) for v in tbl.column(0).to_pylist())
        except Exception as e:
            r["deltars_error"] = f"{type(e).__name__}: {e}"[:1000]
        try:
            import duckdb
            import duckdb_extension_delta
            con = duckdb.connect()
            # The extension from its PyPI wheel: DuckDB would download it.
            ext_dir = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions")
            found = [os.path.join(r, f) for r, _, fs in os.walk(ext_dir) for f in fs if f.endswith(".duckdb_extension")]
            con.execute(f"LOAD '{found[0]}'")
            vals = con.execute(f"SELECT \"{key}\" FROM delta_scan('{path}')").fetchall()
            r["duckdb_keys"] = sorted(str(v[0]) for v in vals)
        except Exception as e:
            r["duckdb_error"] = f"{type(e).__name__}: {e}"[:1000]
        out[name] = r
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("create", "check"):
        sys.exit(__doc__)
    (create if sys.argv[1] == "create" else check)(sys.argv[2])
