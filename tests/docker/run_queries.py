#!/usr/bin/env python3
"""Runs every statement of docs/queries.sql with Spark SQL (pyspark +
delta-spark) against a copy of a Delta table claimx-connect wrote.

    run_queries.py QUERIES_SQL TABLE_DIR WORK_DIR

The table is copied into WORK_DIR first (OPTIMIZE and VACUUM write to it), and
the s3:// LOCATION of the CREATE TABLE statement is replaced by that copy.
Needs the conformance venv (scripts/setup-conformance.sh): pyspark, delta-spark
and the delta jars in .tools/conformance/jars (or CLAIMX_SPARK_JARS).
Prints one line per statement with its row count; exits 1 if any failed.
"""
import glob
import os
import re
import shutil
import sys
import time


def statements(path):
    """Splits the file into statements: comment lines dropped, `;` at a line end ends one."""
    out, cur = [], []
    for line in open(path):
        s = line.rstrip("\n")
        if s.strip().startswith("--") or not s.strip():
            continue
        cur.append(s)
        if s.rstrip().endswith(";"):
            out.append("\n".join(cur).rstrip().rstrip(";"))
            cur = []
    if cur:
        out.append("\n".join(cur))
    return out


def main():
    sql_path, table, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    copy = os.path.join(work, "itel_cabinet_task_tracking")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(table, copy)
    os.chdir(work)  # spark-warehouse and metastore files land here
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["TZ"] = "UTC"
    time.tzset()
    from pyspark.sql import SparkSession
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    jars = os.environ.get("CLAIMX_SPARK_JARS") or ",".join(sorted(glob.glob(os.path.join(repo, ".tools", "conformance", "jars", "*.jar"))))
    b = (SparkSession.builder.master("local[2]").appName("claimx-queries")
         .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
         .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
         .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.default.parallelism", "2"))
    if jars:
        b = b.config("spark.jars", jars)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark {spark.version}, table copy {copy}")
    failed = 0
    for i, st in enumerate(statements(sql_path), 1):
        st = re.sub(r"LOCATION\s+'s3://[^']*'", f"LOCATION '{copy}'", st)
        st = st.replace("delta.`s3://claimx-lake/itel_cabinet_task_tracking`", f"delta.`{copy}`")
        first = " ".join(st.split())[:90]
        try:
            rows = spark.sql(st).collect()
            # The data-quality queries must find nothing on a table we wrote.
            if "HAVING COUNT(*) > 1" in st and rows:
                raise AssertionError(f"duplicate event_ids: {rows[:5]}")
            if "AS mismatched" in st and rows[0][0] != 0:
                raise AssertionError(f"{rows[0][0]} rows whose partition is not their event date")
            print(f"  ok    {i:2d} {len(rows):5d} rows  {first}")
        except Exception as e:  # noqa: BLE001 - report every failing statement
            failed += 1
            msg = str(e).strip().splitlines()[0][:300]
            print(f"  FAIL  {i:2d} {first}\n        {msg}")
    spark.stop()
    print(f"queries: {failed} of {len(statements(sql_path))} statements failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
