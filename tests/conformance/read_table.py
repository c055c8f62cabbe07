#!/usr/bin/env python3
"""Read Delta tables with one independent reader and print what it sees as
one JSON document, for the Go conformance tests to compare with what they
wrote.

usage:
  read_table.py --reader spark|deltars|duckdb SPEC.json
  read_table.py --create-deltars TABLE_DIR ROWS.json

SPEC.json is a list of tables to check in this one process (Spark starts
once):
  [{"name": "...", "path": "/abs/dir",
    "partition": {"year": 2024, "month": 12, "day": 31},   # pruning check
    "lookups": [["project_id", "P-1"], ...],              # equality filters
    "order_by": "event_id"}]

Output: {"reader": ..., "versions": {...}, "tables": {name: RESULT}} where
RESULT is {"error": "..."} or:
  schema       [{name, type, nullable}] as the reader names types
  count        SELECT COUNT(*)
  rows         every row, sorted by order_by; timestamps as ISO-8601 UTC
               with microseconds, integers as numbers, null as null
  agg          COUNT(*), MIN/MAX(event_timestamp), MIN/MAX(assignment_id)
               as the reader answers the aggregate query (Spark: from the
               Delta stats when its metadata-only optimisation applies)
  agg_scan     the same computed by a full scan of the data
  agg_plan     (spark) whether the aggregate plan read files or was answered
               from the log (LocalTableScan); (deltars) the same values
               computed from the add actions' stats
  pruning      {files, rows, total_files, detail}: data files the reader
               scanned for a filter on the partition columns, rows returned
  lookups      [count of rows matching each equality filter]
  history      [{version, operation, parameters, metrics}] newest first
               (spark, deltars): commitInfo's operationParameters and
               operationMetrics as the reader reports them
  txns         (spark, deltars; when the spec names "txn_app_ids") the txn
               actions of the snapshot, app id -> version

  --queries QUERIES_SQL TABLE_DIR WORK_DIR (spark): after the tables, every
  statement of QUERIES_SQL through tests/docker/run_queries.py in the same
  Spark session; "queries": {exit_code, output} in the result. With
  --table NAME=DIR (repeatable) the statements on that table of the file run
  too (its s3://claimx-lake/NAME location replaced); without, they are
  skipped.
"""
import argparse
import datetime
import json
import os
import re
import sys
import time

AGG_COLS = ("event_timestamp", "assignment_id")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def iso_micros(us):
    if us is None:
        return None
    return (EPOCH + datetime.timedelta(microseconds=int(us))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain_dt(v):
    """A datetime from pyarrow (aware, UTC) as ISO-8601 UTC micros."""
    if v is None:
        return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=datetime.timezone.utc)
    d = v.astimezone(datetime.timezone.utc) - EPOCH
    return iso_micros(d // datetime.timedelta(microseconds=1))


def sql_lit(v):
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def agg_of_rows(rows):
    out = {"count": len(rows)}
    for c in AGG_COLS:
        vals = [r[c] for r in rows if r.get(c) is not None]
        out["min_" + c] = min(vals) if vals else None
        out["max_" + c] = max(vals) if vals else None
    return out


# ------------------------------------------------------------------ spark ---

class Spark:
    name = "spark"

    def __init__(self):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ["TZ"] = "UTC"
        time.tzset()
        from pyspark.sql import SparkSession
        import pyspark
        jars = os.environ.get("CLAIMX_SPARK_JARS", "")
        b = (SparkSession.builder.master("local[2]").appName("claimx-conformance")
             .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
             .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.default.parallelism", "2")
             .config("spark.databricks.delta.snapshotPartitions", "2")
             # Plans are inspected after execution: no adaptive re-planning.
             .config("spark.sql.adaptive.enabled", "false"))
        if jars:
            b = b.config("spark.jars", jars)
        self.spark = b.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")
        self.versions = {"pyspark": pyspark.__version__, "spark": self.spark.version}
        try:
            import importlib.metadata as md
            self.versions["delta-spark"] = md.version("delta-spark")
        except Exception:
            pass

    def check(self, t):
        from pyspark.sql import functions as F
        spark = self.spark
        path = t["path"]
        ref = "delta.`" + path + "`"
        df = spark.read.format("delta").load(path)
        out = {"schema": [{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable}
                          for f in df.schema.fields]}
        ts_cols = [f.name for f in df.schema.fields if f.dataType.simpleString() == "timestamp"]
        out["count"] = spark.sql(f"SELECT COUNT(*) AS n FROM {ref}").collect()[0]["n"]
        sel = [F.unix_micros(F.col(c)).alias(c) if c in ts_cols else F.col(c) for c in df.columns]
        rows = [r.asDict() for r in df.select(*sel).orderBy(t.get("order_by", "event_id")).collect()]
        for r in rows:
            for c in ts_cols:
                r[c] = iso_micros(r[c])
        out["rows"] = rows

        agg_sql = (f"SELECT COUNT(*) AS count, MIN(event_timestamp) AS min_event_timestamp, "
                   f"MAX(event_timestamp) AS max_event_timestamp, MIN(assignment_id) AS min_assignment_id, "
                   f"MAX(assignment_id) AS max_assignment_id FROM {ref}")
        count_sql = f"SELECT COUNT(*) AS count, MIN(assignment_id) AS min_assignment_id, MAX(assignment_id) AS max_assignment_id FROM {ref}"

        def run_agg(sql):
            q = spark.sql(sql)
            r = q.select(*[F.unix_micros(F.col(c)).alias(c) if "timestamp" in c else F.col(c) for c in q.columns]).collect()[0].asDict()
            for c in r:
                if "timestamp" in c:
                    r[c] = iso_micros(r[c])
            plan = q._jdf.queryExecution().executedPlan().toString()
            return r, plan

        conf_key = "spark.databricks.delta.optimizeMetadataQuery.enabled"
        spark.conf.set(conf_key, "true")
        agg, plan_all = run_agg(agg_sql)
        stats_only, plan_count = run_agg(count_sql)
        spark.conf.set(conf_key, "false")
        agg_scan, _ = run_agg(agg_sql)
        spark.conf.set(conf_key, "true")
        out["agg"] = agg
        out["agg_scan"] = agg_scan
        out["agg_plan"] = {
            # COUNT/MIN/MAX(assignment_id) alone: Delta answers it from the
            # log's stats when the plan has no file scan.
            "count_min_max_long_from_stats": "LocalTableScan" in plan_count and "FileScan" not in plan_count
            and "Scan parquet" not in plan_count,
            "count_min_max_long": stats_only,
            "with_timestamps_from_stats": "LocalTableScan" in plan_all and "Scan parquet" not in plan_all,
            "plan_count": plan_count[:2000],
        }

        p = t.get("partition")
        if p:
            cond = " AND ".join(f"{k} = {sql_lit(v)}" for k, v in sorted(p.items()))
            q = spark.sql(f"SELECT * FROM {ref} WHERE {cond}")
            n = q.count()
            q2 = spark.sql(f"SELECT event_id FROM {ref} WHERE {cond}")
            q2.collect()
            plan = q2._jdf.queryExecution().executedPlan()
            leaves = plan.collectLeaves()
            files_read = None
            detail = []
            for i in range(leaves.size()):
                leaf = leaves.apply(i)
                s = leaf.toString()
                detail.append(s[:1500])
                m = leaf.metrics()
                if m.contains("numFiles"):
                    files_read = (files_read or 0) + int(m.apply("numFiles").value())
            total = spark.sql(f"SELECT event_id FROM {ref}")
            total.collect()
            tl = total._jdf.queryExecution().executedPlan().collectLeaves()
            total_files = 0
            for i in range(tl.size()):
                m = tl.apply(i).metrics()
                if m.contains("numFiles"):
                    total_files += int(m.apply("numFiles").value())
            files = sorted(os.path.basename(f) for f in q.inputFiles())
            out["pruning"] = {"files": files_read, "rows": n, "total_files": total_files,
                              "file_names": files, "partition_filters_in_plan": any("PartitionFilters: [" in d and "PartitionFilters: []" not in d for d in detail),
                              "detail": detail}

        # DataFrame filters, not SQL text: Spark SQL literals treat a
        # backslash as an escape.
        out["lookups"] = [df.where(F.col(c) == F.lit(v)).count() for c, v in t.get("lookups", [])]
        h = spark.sql(f"DESCRIBE HISTORY {ref}").select("version", "operation", "operationParameters", "operationMetrics").collect()
        out["history"] = [{"version": r["version"], "operation": r["operation"],
                           "parameters": dict(r["operationParameters"] or {}),
                           "metrics": dict(r["operationMetrics"] or {})} for r in h]
        if t.get("txn_app_ids") is not None:
            out["txns"] = self.txns(path)
        return out

    def txns(self, path):
        """The snapshot's txn actions (app id -> version) as Delta Lake sees
        them: not in SQL, so through the JVM DeltaLog."""
        try:
            jvm = self.spark._jvm
            dl = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(self.spark._jsparkSession, path)
            try:
                snap = dl.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty())
            except Exception:  # noqa: BLE001 - another update() signature: the snapshot the reads above loaded
                snap = dl.unsafeVolatileSnapshot()
            it = snap.transactions().iterator()
            out = {}
            while it.hasNext():
                kv = it.next()
                out[kv._1()] = int(kv._2())
            return out
        except Exception as e:  # noqa: BLE001 - reported, the Go test decides
            return {"error": f"{type(e).__name__}: {str(e)[:500]}"}

    def run_queries(self, sql, table, work, extra_tables=()):
        """Runs tests/docker/run_queries.py (docs/queries.sql) in this Spark
        session: its SparkSession.builder.getOrCreate() returns this session.
        It stops the session at its end, so this runs last."""
        import contextlib
        import importlib.util
        import io
        here = os.path.dirname(os.path.abspath(__file__))
        spec = importlib.util.spec_from_file_location("run_queries", os.path.join(here, "..", "docker", "run_queries.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        buf = io.StringIO()
        argv, cwd, code = sys.argv, os.getcwd(), None
        sys.argv = ["run_queries.py", sql, table, work] + [a for t in extra_tables for a in ("--table", t)]
        # Its prints are captured; whatever the JVM writes to fd 1 goes to
        # stderr, so stdout stays one JSON document.
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            with contextlib.redirect_stdout(buf):
                mod.main()
        except SystemExit as e:
            code = e.code
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            sys.argv = argv
            os.chdir(cwd)
        return {"exit_code": code, "output": buf.getvalue()}


# ---------------------------------------------------------------- deltars ---

class DeltaRS:
    name = "deltars"

    def __init__(self):
        import deltalake
        import pyarrow
        self.versions = {"deltalake": deltalake.__version__, "pyarrow": pyarrow.__version__}

    def check(self, t):
        import deltalake
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds
        dt = deltalake.DeltaTable(t["path"])
        out = {"schema": [{"name": f.name, "type": getattr(f.type, "type", str(f.type)), "nullable": f.nullable}
                          for f in dt.schema().fields]}
        table = dt.to_pyarrow_table()
        out["count"] = table.num_rows
        ts_cols = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        rows = table.to_pylist()
        for r in rows:
            for c in ts_cols:
                r[c] = plain_dt(r[c])
        rows.sort(key=lambda r: r[t.get("order_by", "event_id")])
        out["rows"] = rows
        agg = {"count": table.num_rows}
        for c in AGG_COLS:
            mm = pc.min_max(table[c]).as_py()
            conv = plain_dt if c in ts_cols else (lambda v: v)
            agg["min_" + c], agg["max_" + c] = conv(mm["min"]), conv(mm["max"])
        out["agg"] = agg
        out["agg_scan"] = agg_of_rows(rows)

        # The same aggregate from the add actions' stats, as a reader that
        # trusts them would answer it (timestamps at millisecond precision).
        adds = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
        st = {"count": sum(a["num_records"] for a in adds)}
        for c in AGG_COLS:
            mins = [a.get("min." + c) for a in adds if a.get("min." + c) is not None]
            maxs = [a.get("max." + c) for a in adds if a.get("max." + c) is not None]
            conv = plain_dt if c in ts_cols else (lambda v: v)
            st["min_" + c] = conv(min(mins)) if mins else None
            st["max_" + c] = conv(max(maxs)) if maxs else None
        out["agg_plan"] = {"from_stats": st, "files_with_stats": sum(1 for a in adds if a.get("num_records") is not None),
                           "files": len(adds)}

        p = t.get("partition")
        if p:
            filters = [(k, "=", str(v)) for k, v in sorted(p.items())]
            files = dt.file_uris(partition_filters=filters)
            part = dt.to_pyarrow_table(partitions=filters)
            dset = dt.to_pyarrow_dataset()
            expr = None
            for k, v in sorted(p.items()):
                e = ds.field(k) == v
                expr = e if expr is None else expr & e
            frags = list(dset.get_fragments(filter=expr))
            out["pruning"] = {"files": len(files), "rows": part.num_rows, "total_files": len(dt.file_uris()),
                              "file_names": sorted(os.path.basename(f) for f in files),
                              "dataset_fragments": len(frags),
                              "dataset_rows": dset.to_table(filter=expr).num_rows}
        lk = []
        for c, v in t.get("lookups", []):
            lk.append(dt.to_pyarrow_dataset().to_table(filter=ds.field(c) == v).num_rows)
        out["lookups"] = lk
        out["history"] = [{"version": h.get("version"), "operation": h.get("operation"),
                           "parameters": h.get("operationParameters"), "metrics": h.get("operationMetrics")}
                          for h in dt.history()]
        if t.get("txn_app_ids") is not None:
            out["txns"] = {a: dt.transaction_version(a) for a in t["txn_app_ids"]}
        return out


# ----------------------------------------------------------------- duckdb ---

class DuckDB:
    name = "duckdb"

    def __init__(self):
        import duckdb
        import duckdb_extension_delta
        self.con = duckdb.connect()
        # DuckDB would download the extension; the PyPI package ships it.
        ext_dir = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions")
        found = [os.path.join(r, f) for r, _, fs in os.walk(ext_dir) for f in fs if f.endswith(".duckdb_extension")]
        if not found:
            raise RuntimeError("no delta.duckdb_extension in " + ext_dir)
        self.con.execute("SET autoinstall_known_extensions = false")
        self.con.execute("SET autoload_known_extensions = false")
        self.con.execute(f"LOAD '{found[0]}'")
        self.versions = {"duckdb": duckdb.__version__, "delta_extension": os.path.basename(os.path.dirname(found[0]))}

    def check(self, t):
        con = self.con
        src = "delta_scan(" + sql_lit(t["path"]) + ")"
        desc = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
        out = {"schema": [{"name": d[0], "type": d[1], "nullable": d[2] == "YES"} for d in desc]}
        ts_cols = [d[0] for d in desc if d[1].startswith("TIMESTAMP")]
        cols = [d[0] for d in desc]
        out["count"] = con.execute(f"SELECT COUNT(*) FROM {src}").fetchone()[0]
        sel = ", ".join(f'epoch_us("{c}") AS "{c}"' if c in ts_cols else f'"{c}"' for c in cols)
        cur = con.execute(f'SELECT {sel} FROM {src} ORDER BY "{t.get("order_by", "event_id")}"')
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        for r in rows:
            for c in ts_cols:
                r[c] = iso_micros(r[c])
        out["rows"] = rows
        a = con.execute(f"SELECT COUNT(*), epoch_us(MIN(event_timestamp)), epoch_us(MAX(event_timestamp)), "
                        f"MIN(assignment_id), MAX(assignment_id) FROM {src}").fetchone()
        out["agg"] = {"count": a[0], "min_event_timestamp": iso_micros(a[1]), "max_event_timestamp": iso_micros(a[2]),
                      "min_assignment_id": a[3], "max_assignment_id": a[4]}
        out["agg_scan"] = agg_of_rows(rows)
        p = t.get("partition")
        if p:
            cond = " AND ".join(f'"{k}" = {sql_lit(v)}' for k, v in sorted(p.items()))
            n = con.execute(f"SELECT COUNT(*) FROM {src} WHERE {cond}").fetchone()[0]
            con.execute("PRAGMA enable_profiling = 'json'")
            prof = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"duckdb-profile-{os.getpid()}.json")
            con.execute(f"PRAGMA profiling_output = '{prof}'")
            con.execute(f"SELECT event_id FROM {src} WHERE {cond}").fetchall()
            con.execute("PRAGMA disable_profiling")
            with open(prof) as f:
                ptxt = f.read()
            os.remove(prof)
            m = re.search(r'"Total Files Read"\s*:\s*"?(\d+)', ptxt)
            files = sorted(os.path.basename(r[0]) for r in con.execute(
                f"SELECT DISTINCT filename FROM delta_scan({sql_lit(t['path'])}, filename=true) WHERE {cond}").fetchall())
            out["pruning"] = {"files": int(m.group(1)) if m else None, "rows": n, "file_names": files,
                              "total_files": con.execute(f"SELECT COUNT(DISTINCT filename) FROM delta_scan({sql_lit(t['path'])}, filename=true)").fetchone()[0],
                              "detail": [ptxt[:3000]] if not m else []}
        out["lookups"] = [con.execute(f'SELECT COUNT(*) FROM {src} WHERE "{c}" = {sql_lit(v)}').fetchone()[0]
                          for c, v in t.get("lookups", [])]
        return out


# ------------------------------------------------------------------ main ---

def create_deltars(path, rows_file):
    """Write a partitioned table with delta-rs from {"rows": [...]} (the
    tracking table's columns; timestamps as ISO strings)."""
    import deltalake
    import pyarrow as pa
    with open(rows_file) as f:
        doc = json.load(f)
    ts = pa.timestamp("us", tz="UTC")
    fields = []
    for c in doc["schema"]:
        typ = {"string": pa.string(), "long": pa.int64(), "integer": pa.int32(), "timestamp": ts}[c["type"]]
        fields.append(pa.field(c["name"], typ, nullable=c["nullable"]))
    schema = pa.schema(fields)
    cols = {}
    for fl in fields:
        vals = [r.get(fl.name) for r in doc["rows"]]
        if pa.types.is_timestamp(fl.type):
            vals = [None if v is None else datetime.datetime.fromisoformat(v.replace("Z", "+00:00")) for v in vals]
        cols[fl.name] = pa.array(vals, type=fl.type)
    table = pa.Table.from_pydict(cols, schema=schema)
    deltalake.write_deltalake(path, table, partition_by=doc["partition_by"], mode="error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reader", choices=["spark", "deltars", "duckdb"])
    ap.add_argument("--create-deltars", nargs=2, metavar=("TABLE_DIR", "ROWS_JSON"))
    ap.add_argument("--queries", nargs=3, metavar=("QUERIES_SQL", "TABLE_DIR", "WORK_DIR"),
                    help="(spark) after the tables, run tests/docker/run_queries.py in the same session")
    ap.add_argument("--table", action="append", default=[], metavar="NAME=DIR",
                    help="(with --queries) another table of QUERIES_SQL by the NAME of its s3://claimx-lake/NAME location")
    ap.add_argument("spec", nargs="?")
    args = ap.parse_args()
    if args.create_deltars:
        create_deltars(*args.create_deltars)
        return
    with open(args.spec) as f:
        spec = json.load(f)
    t0 = time.time()
    reader = {"spark": Spark, "deltars": DeltaRS, "duckdb": DuckDB}[args.reader]()
    res = {"reader": reader.name, "versions": reader.versions, "startup_seconds": round(time.time() - t0, 1), "tables": {}}
    for t in spec:
        t1 = time.time()
        try:
            r = reader.check(t)
        except Exception as e:  # reported per table, so one bad table does not hide the others
            import traceback
            r = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
        r["seconds"] = round(time.time() - t1, 1)
        res["tables"][t["name"]] = r
    if args.queries:
        if args.reader != "spark":
            ap.error("--queries needs --reader spark")
        t1 = time.time()
        res["queries"] = reader.run_queries(*args.queries, extra_tables=args.table)
        res["queries"]["seconds"] = round(time.time() - t1, 1)
    json.dump(res, sys.stdout, default=str)


if __name__ == "__main__":
    main()
