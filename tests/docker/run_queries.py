#!/usr/bin/env python3
"""Runs every statement of docs/queries.sql with Spark SQL (pyspark +
delta-spark) against copies of Delta tables claimx-connect wrote.

    run_queries.py QUERIES_SQL TABLE_DIR WORK_DIR [--table NAME=DIR ...]

TABLE_DIR is the tracking table (itel_cabinet_task_tracking); each --table
gives another table of the file by the name of its s3://claimx-lake/NAME
location (e.g. --table itel_cabinet_forms=/data/itel_cabinet_forms). Every
table is copied into WORK_DIR first (OPTIMIZE and VACUUM write to it), and
its s3://claimx-lake/NAME location in the statements is replaced by the copy.
A statement that names a table of the file whose location was not given
(the forms tables, when only the tracking table is at hand) is skipped with
a note, not failed.
Needs the conformance venv (scripts/setup-conformance.sh): pyspark, delta-spark
and the delta jars in .tools/conformance/jars (or CLAIMX_SPARK_JARS).
Prints one line per statement (ok with its row count, FAIL, or skip); exits 1
if any failed.
"""
import argparse
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


LAKE = "s3://claimx-lake/"
TRACKING = "itel_cabinet_task_tracking"


def lake_tables(stmts):
    """The tables the statements register: NAME of each LOCATION 's3://claimx-lake/NAME'."""
    names = []
    for st in stmts:
        for m in re.finditer(r"LOCATION\s+'" + re.escape(LAKE) + r"([A-Za-z0-9_]+)'", st):
            if m.group(1) not in names:
                names.append(m.group(1))
    return names


def names_table(st, name):
    """Whether the statement names the table (as an identifier or in its s3:// location)."""
    return re.search(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])", st) is not None


def prepare(st, locations, tables):
    """Returns the statement with the s3://claimx-lake/NAME of every located
    table replaced by its directory, and the tables (of `tables`, the ones the
    file registers) it names but whose location was not given: a statement
    with any of those is skipped, not run."""
    missing = [n for n in tables if n not in locations and names_table(st, n)]
    for name, path in locations.items():
        st = st.replace(f"'{LAKE}{name}'", f"'{path}'").replace(f"`{LAKE}{name}`", f"`{path}`")
    return st, missing


def parse_tables(specs):
    """NAME=DIR arguments as {NAME: absolute DIR}."""
    out = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_]+", name) or not path:
            raise ValueError(f"--table {spec!r}: want NAME=DIR, NAME as in s3://claimx-lake/NAME")
        if name == TRACKING:
            raise ValueError(f"--table {spec!r}: the tracking table is TABLE_DIR")
        out[name] = os.path.abspath(path)
    return out


def spark_session():
    """The local Spark session with Delta (or the one already running: read_table.py's)."""
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
    return spark


def check_result(st, rows):
    """The data-quality queries must find nothing on a table we wrote."""
    if "HAVING COUNT(*) > 1" in st and rows:
        raise AssertionError(f"duplicate keys: {rows[:5]}")
    if "AS mismatched" in st and rows[0][0] != 0:
        raise AssertionError(f"{rows[0][0]} rows whose partition is not their event date")


def main():
    ap = argparse.ArgumentParser(description="Run docs/queries.sql on Spark SQL against local copies of the tables.")
    ap.add_argument("queries_sql")
    ap.add_argument("table_dir", help="the tracking table (itel_cabinet_task_tracking)")
    ap.add_argument("work_dir")
    ap.add_argument("--table", action="append", default=[], metavar="NAME=DIR",
                    help="another table of the file, by the NAME of its s3://claimx-lake/NAME location (repeatable)")
    args = ap.parse_args()
    try:
        extra = parse_tables(args.table)
    except ValueError as e:
        ap.error(str(e))
    sql_path, work = os.path.abspath(args.queries_sql), os.path.abspath(args.work_dir)
    sources = {TRACKING: os.path.abspath(args.table_dir), **extra}
    locations = {}
    for name, src in sources.items():
        copy = os.path.join(work, name)
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(src, copy)
        locations[name] = copy
    stmts = statements(sql_path)
    tables = [n for n in lake_tables(stmts) if n != TRACKING]
    os.chdir(work)  # spark-warehouse and metastore files land here
    spark = spark_session()
    print(f"spark {spark.version}, table copies {', '.join(f'{n}={p}' for n, p in locations.items())}")
    failed = skipped = 0
    for i, raw in enumerate(stmts, 1):
        st, missing = prepare(raw, locations, tables)
        first = " ".join(st.split())[:90]
        if missing:
            skipped += 1
            print(f"  skip  {i:2d}             {first}\n        names {', '.join(missing)}: no --table {missing[0]}=DIR given")
            continue
        try:
            rows = spark.sql(st).collect()
            check_result(st, rows)
            print(f"  ok    {i:2d} {len(rows):5d} rows  {first}")
        except Exception as e:  # noqa: BLE001 - report every failing statement
            failed += 1
            msg = str(e).strip().splitlines()[0][:300]
            print(f"  FAIL  {i:2d} {first}\n        {msg}")
    spark.stop()
    print(f"queries: {failed} of {len(stmts)} statements failed, {skipped} skipped (tables not given)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
