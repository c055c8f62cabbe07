#!/usr/bin/env python3
"""Open a Delta table with Apache Spark + Delta Lake (pip: delta-spark) and
print what Spark sees as one JSON document, so Go tests can compare it with
what they wrote.

usage: check_spark.py TABLE_DIR [--append-rows N]

Output keys: version, schema [{name,type,nullable}], num_rows, rows (sorted,
timestamps as UTC ISO strings with microseconds, dates YYYY-MM-DD, decimals
as strings, binary as hex), count_star (COUNT(*), which Spark may answer
from the file stats), min_max {column: [min, max]} for numeric, date and
timestamp columns (aggregates Spark may also answer from stats), and with
--append-rows N Spark appends N copies of the first row before reading, to
check Spark can write to the table too.
"""
import argparse
import datetime
import decimal
import json
import os
import sys
import tempfile

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession


def plain(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--append-rows", type=int, default=0)
    args = ap.parse_args()
    builder = (SparkSession.builder.master("local[1]").appName("claimx-check")
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               # Keep Spark's scratch directories out of the caller's cwd.
               .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="claimx-spark-wh-"))
               .config("spark.sql.shuffle.partitions", "1"))
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    path = os.path.abspath(args.table)
    if args.append_rows:
        first = spark.read.format("delta").load(path).limit(1)
        df = first
        for _ in range(args.append_rows - 1):
            df = df.union(first)
        df.write.format("delta").mode("append").save(path)
    df = spark.read.format("delta").load(path)
    out = {}
    out["schema"] = [{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable} for f in df.schema.fields]
    rows = [{k: plain(v) for k, v in r.asDict().items()} for r in df.collect()]
    rows.sort(key=lambda r: json.dumps(r, sort_keys=True, default=str))
    out["rows"] = rows
    out["num_rows"] = len(rows)
    out["count_star"] = spark.sql(f"SELECT COUNT(*) AS c FROM delta.`{path}`").collect()[0]["c"]
    mm = {}
    for f in df.schema.fields:
        t = f.dataType.simpleString()
        if t in ("int", "bigint", "smallint", "tinyint", "double", "float", "date", "timestamp") or t.startswith("decimal"):
            r = spark.sql(f"SELECT MIN(`{f.name}`) AS lo, MAX(`{f.name}`) AS hi FROM delta.`{path}`").collect()[0]
            mm[f.name] = [plain(r["lo"]), plain(r["hi"])]
    out["min_max"] = mm
    h = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    out["version"] = max(r["version"] for r in h)
    out["operations"] = {str(r["version"]): r["operation"] for r in h}
    json.dump(out, sys.stdout, default=str)
    spark.stop()


if __name__ == "__main__":
    main()
