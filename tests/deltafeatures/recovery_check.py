#!/usr/bin/env python3
"""Spark (delta-spark 4.0) and delta-rs side of delta's TestSparkRecovery.

One process, one JVM, talking JSON lines with the Go test:

usage: recovery_check.py ROOT

  1. Spark creates ROOT/spark_src, a partitioned table with column mapping
     (a renamed column) and deletion vectors (a DELETE), and prints
     {"keys": [...], "protocol": {...}} on one line.
  2. It reads one line from stdin, the plan:
     {"tables": {name: {"key": col,
                        "sql": [[query with {t}, want_count], ...],
                        "as_of": "yyyy-MM-dd HH:mm:ss.SSS" or null,
                        "append": "VALUES (...)" or null,
                        "delete": predicate or null}}}
     (tables are directories under ROOT).
  3. For every table: Spark reads the keys, the column names, DESCRIBE
     HISTORY (version -> operation), the row counts of the queries and the
     keys TIMESTAMP AS OF the given time; delta-rs reads the keys; then
     Spark appends and deletes as asked and both read the keys again.
     Prints one JSON line {name: {...}}.
"""
import json
import os
import sys
import traceback

from sparksession import spark_session


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def spark_keys(spark, path, key, as_of=None):
    reader = spark.read.format("delta")
    if as_of:
        reader = reader.option("timestampAsOf", as_of)
    df = reader.load(path)
    return sorted(str(r[0]) for r in df.selectExpr(f"CAST(`{key}` AS STRING)").collect())


def deltars_keys(path, key):
    from deltalake import DeltaTable, QueryBuilder
    tbl = QueryBuilder().register("t", DeltaTable(path)).execute(f'SELECT "{key}" FROM t').read_all()
    return sorted(str(v) for v in tbl.column(0).to_pylist())


def create_spark_table(spark, path):
    t = f"delta.`{path}`"
    spark.sql(f"CREATE TABLE {t} (id BIGINT, name STRING, region STRING) USING delta PARTITIONED BY (region) "
              "TBLPROPERTIES ('delta.columnMapping.mode' = 'name', 'delta.enableDeletionVectors' = 'true')")
    values = ", ".join(f"({i}, 'spark-{i}', '{'east' if i % 2 else 'west'}')" for i in range(1, 7))
    spark.sql(f"INSERT INTO {t} VALUES {values}")
    spark.sql(f"DELETE FROM {t} WHERE id = 2")
    spark.sql(f"ALTER TABLE {t} RENAME COLUMN name TO title")
    d = spark.sql(f"DESCRIBE DETAIL {t}").collect()[0].asDict()
    return {"keys": spark_keys(spark, path, "id"),
            "protocol": {"minReaderVersion": d["minReaderVersion"], "minWriterVersion": d["minWriterVersion"],
                         "tableFeatures": sorted(d.get("tableFeatures") or [])}}


def check(spark, root, name, tp):
    path = os.path.abspath(os.path.join(root, name))
    t = f"delta.`{path}`"
    key = tp["key"]
    r = {}
    try:
        r["keys"] = spark_keys(spark, path, key)
        r["columns"] = spark.read.format("delta").load(path).columns
        r["history"] = {str(h["version"]): h["operation"] for h in
                        spark.sql(f"DESCRIBE HISTORY {t}").select("version", "operation").collect()}
        r["sql"] = [spark.sql(q.format(t=t)).count() for q, _ in tp.get("sql") or []]
        if tp.get("as_of"):
            r["as_of_keys"] = spark_keys(spark, path, key, tp["as_of"])
    except Exception as e:  # reported per table; the Go test fails it
        r["spark_error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[:2000]
    try:
        r["deltars_keys"] = deltars_keys(path, key)
    except Exception as e:
        r["deltars_error"] = f"{type(e).__name__}: {e}"[:1000]
    if tp.get("append") or tp.get("delete"):
        try:
            if tp.get("append"):
                spark.sql(f"INSERT INTO {t} {tp['append']}")
            if tp.get("delete"):
                spark.sql(f"DELETE FROM {t} WHERE {tp['delete']}")
            r["after_keys"] = spark_keys(spark, path, key)
            r["after_sql"] = [spark.sql(q.format(t=t)).count() for q, _ in tp.get("sql") or []]
        except Exception as e:
            r["spark_write_error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[:2000]
        try:
            r["deltars_after_keys"] = deltars_keys(path, key)
        except Exception as e:
            r["deltars_after_error"] = f"{type(e).__name__}: {e}"[:1000]
    return r


def main(root):
    spark = spark_session("claimx-recovery")
    emit(create_spark_table(spark, os.path.abspath(os.path.join(root, "spark_src"))))
    line = sys.stdin.readline()
    if not line:
        sys.exit("no plan on stdin")
    plan = json.loads(line)
    emit({name: check(spark, root, name, tp) for name, tp in plan["tables"].items()})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
