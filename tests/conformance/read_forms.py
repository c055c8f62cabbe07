#!/usr/bin/env python3
"""Read the forms stream's Delta tables (itel_cabinet_forms,
itel_cabinet_attachments, itel_cabinet_submissions) with one independent
reader and print everything it sees as one JSON document, for
tests/conformance/forms_readers_test.go to compare value by value with what
claimx-connect's own Delta engine reads.

usage:
  read_forms.py --reader deltars|duckdb|spark [--queries QUERIES_SQL] NAME=DIR...

NAME is the table's name (as in docs/queries.sql's s3://claimx-lake/NAME),
DIR its directory. Output:

  {"reader": "...", "versions": {...}, "startup_seconds": 1.2,
   "tables": {NAME: RESULT},
   "queries": [QUERY]}                                      (spark, --queries)

RESULT is {"error": "...", "traceback": "..."} or:
  count    the reader's SELECT COUNT(*) (deltars: rows of the arrow table)
  schema   [{name, type, nullable}] as the reader names types: spark
           simpleString (array<bigint>, map<string,string>, timestamp), deltars
           its Delta schema (array<long>, map<string,string>, timestamp) plus
           "arrow" (the pyarrow type it reads into), duckdb DESCRIBE (BIGINT[],
           MAP(VARCHAR, VARCHAR), TIMESTAMP WITH TIME ZONE)
  key      the column the rows are sorted by (attachment_key, else form_key)
  rows     every row as {column: value}: timestamps ISO-8601 UTC with
           microseconds ("2026-01-05T08:00:00.000001Z"), integers and doubles
           as JSON numbers (doubles in Python's shortest round-trip form),
           arrays as lists, maps as objects, null as null
  seconds  time spent on the table

QUERY (spark with --queries) is one statement of QUERIES_SQL that names one of
the tables of the file other than the tracking table (the forms section), run
with the tables' directories in place of their s3://claimx-lake/NAME
locations (tests/docker/run_queries.py's rules), in file order:
  {index, sql, status: ok|failed|skipped, rows, error, missing}
`skipped` means it names a table not given on the command line.
"""
import argparse
import datetime
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import read_table  # noqa: E402 - the readers' sessions and timestamp helpers


def load_run_queries():
    """tests/docker/run_queries.py: the statement splitting and location rules."""
    spec = importlib.util.spec_from_file_location("run_queries", os.path.join(HERE, "..", "docker", "run_queries.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def key_column(cols):
    for c in ("attachment_key", "form_key"):
        if c in cols:
            return c
    return cols[0]


def sort_rows(rows, key):
    rows.sort(key=lambda r: (r.get(key) is None, str(r.get(key))))
    return rows


def map_as_object(v, where):
    """A map value as a JSON object; pyarrow gives [(key, value)]."""
    if v is None or isinstance(v, dict):
        return v
    out = {}
    for k, x in v:
        if k in out:
            raise ValueError(f"{where}: map key {k!r} twice")
        out[k] = x
    return out


# ------------------------------------------------------------------ spark ---

class Spark:
    name = "spark"

    def __init__(self):
        self.inner = read_table.Spark()
        self.spark = self.inner.spark
        self.versions = self.inner.versions

    def read(self, name, path):
        from pyspark.sql import functions as F
        df = self.spark.read.format("delta").load(path)
        fields = df.schema.fields
        out = {"schema": [{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable} for f in fields]}
        out["count"] = self.spark.sql("SELECT COUNT(*) AS n FROM delta.`" + path + "`").collect()[0]["n"]
        ts = {f.name for f in fields if f.dataType.simpleString() == "timestamp"}
        maps = {f.name for f in fields if f.dataType.simpleString().startswith("map<")}
        sel = [F.unix_micros(F.col(f.name)).alias(f.name) if f.name in ts else F.col(f.name) for f in fields]
        rows = []
        for r in df.select(*sel).collect():
            d = r.asDict(recursive=False)
            for c in ts:
                d[c] = read_table.iso_micros(d[c])
            for c in maps:
                d[c] = map_as_object(d[c], f"{name}.{c}")
            rows.append(d)
        return out, rows

    def queries(self, sql_path, locations):
        """The statements of sql_path naming the given tables, in this session."""
        rq = load_run_queries()
        stmts = rq.statements(sql_path)
        tables = [n for n in rq.lake_tables(stmts) if n != rq.TRACKING]
        out = []
        for i, raw in enumerate(stmts, 1):
            if not any(rq.names_table(raw, n) for n in tables):
                continue  # the tracking table's statements: read_table.py --queries runs them
            st, missing = rq.prepare(raw, locations, tables)
            q = {"index": i, "sql": " ".join(raw.split())}
            if missing:
                q.update(status="skipped", missing=missing)
                out.append(q)
                continue
            t0 = time.time()
            try:
                rows = self.spark.sql(st).collect()
                rq.check_result(st, rows)
                q.update(status="ok", rows=len(rows))
            except Exception as e:  # noqa: BLE001 - reported per statement, the Go test decides
                q.update(status="failed", error=f"{type(e).__name__}: {str(e).strip()[:1500]}")
            q["seconds"] = round(time.time() - t0, 2)
            out.append(q)
        return out


# ---------------------------------------------------------------- deltars ---

def deltars_type(t):
    """A delta-rs schema type as Delta's type string: array<long>, map<string,string>."""
    kind = getattr(t, "type", None)
    if hasattr(t, "element_type"):
        return "array<" + deltars_type(t.element_type) + ">"
    if hasattr(t, "key_type"):
        return "map<" + deltars_type(t.key_type) + "," + deltars_type(t.value_type) + ">"
    if hasattr(t, "fields"):
        return "struct<" + ",".join(f.name + ":" + deltars_type(f.type) for f in t.fields) + ">"
    return str(kind)


class DeltaRS:
    name = "deltars"

    def __init__(self):
        self.inner = read_table.DeltaRS()
        self.versions = self.inner.versions

    def read(self, name, path):
        import deltalake
        import pyarrow as pa
        dt = deltalake.DeltaTable(path)
        table = dt.to_pyarrow_table()
        arrow = {f.name: str(f.type) for f in table.schema}
        out = {"schema": [{"name": f.name, "type": deltars_type(f.type), "nullable": f.nullable,
                           "arrow": arrow.get(f.name)} for f in dt.schema().fields]}
        out["count"] = table.num_rows
        ts = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        maps = [f.name for f in table.schema if pa.types.is_map(f.type)]
        rows = table.to_pylist()
        for r in rows:
            for c in ts:
                r[c] = read_table.plain_dt(r[c])
            for c in maps:
                r[c] = map_as_object(r[c], f"{name}.{c}")
        return out, rows


# ----------------------------------------------------------------- duckdb ---

class DuckDB:
    name = "duckdb"

    def __init__(self):
        self.inner = read_table.DuckDB()  # loads the delta extension the PyPI package ships
        self.con = self.inner.con
        self.versions = self.inner.versions

    def read(self, name, path):
        src = "delta_scan(" + read_table.sql_lit(path) + ")"
        desc = self.con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
        out = {"schema": [{"name": d[0], "type": d[1], "nullable": d[2] == "YES"} for d in desc]}
        out["count"] = self.con.execute(f"SELECT COUNT(*) FROM {src}").fetchone()[0]
        cols = [d[0] for d in desc]
        ts = {d[0] for d in desc if d[1].startswith("TIMESTAMP")}
        # epoch_us: no Python datetime (and no pytz) in between.
        sel = ", ".join(f'epoch_us("{c}") AS "{c}"' if c in ts else f'"{c}"' for c in cols)
        rows = [dict(zip(cols, r)) for r in self.con.execute(f"SELECT {sel} FROM {src}").fetchall()]
        for r in rows:
            for c in ts:
                r[c] = read_table.iso_micros(r[c])
        return out, rows


# ------------------------------------------------------------------ main ---

def jsonable(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def main():
    ap = argparse.ArgumentParser(description="Print what one reader sees in the forms tables, as JSON.")
    ap.add_argument("--reader", required=True, choices=["spark", "deltars", "duckdb"])
    ap.add_argument("--queries", metavar="QUERIES_SQL", help="(spark) run the statements of the file that name these tables")
    ap.add_argument("tables", nargs="+", metavar="NAME=DIR")
    args = ap.parse_args()
    rq = load_run_queries()
    try:
        locations = rq.parse_tables(args.tables)
    except ValueError as e:
        ap.error(str(e))
    if args.queries and args.reader != "spark":
        ap.error("--queries needs --reader spark")

    t0 = time.time()
    reader = {"spark": Spark, "deltars": DeltaRS, "duckdb": DuckDB}[args.reader]()
    res = {"reader": reader.name, "versions": reader.versions, "startup_seconds": round(time.time() - t0, 1), "tables": {}}
    for name, path in locations.items():
        t1 = time.time()
        try:
            r, rows = reader.read(name, path)
            r["key"] = key_column([c["name"] for c in r["schema"]])
            r["rows"] = sort_rows(rows, r["key"])
        except Exception as e:  # noqa: BLE001 - reported per table, so one bad table does not hide the others
            import traceback
            r = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
        r["seconds"] = round(time.time() - t1, 1)
        res["tables"][name] = r
    if args.queries:
        t1 = time.time()
        res["queries"] = reader.queries(os.path.abspath(args.queries), locations)
        res["queries_seconds"] = round(time.time() - t1, 1)
    # Whatever the JVM printed went before; the result is one document on its own line.
    sys.stdout.write("\n")
    json.dump(res, sys.stdout, default=jsonable, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
