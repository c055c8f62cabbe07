#!/usr/bin/env python3
"""Open a Delta table with delta-rs (the `deltalake` package) and print what it
sees as one JSON document, so Go tests can compare it with what they wrote.

usage: check_table.py TABLE_DIR [--app-id ID ...] [--rows]

Output keys: version, protocol, schema [{name,type,nullable}], partition_columns,
configuration, num_rows, files [{path, size, partition_values, num_records,
min, max, null_count}], txn {appId: version|null}, and with --rows the rows
sorted by every column, with timestamps as ISO strings (UTC, microseconds),
dates as YYYY-MM-DD, decimals as strings and binary as hex.
"""
import argparse
import datetime
import decimal
import json
import os
import sys

import deltalake
import pyarrow as pa


def plain(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--app-id", action="append", default=[])
    ap.add_argument("--rows", action="store_true")
    args = ap.parse_args()

    dt = deltalake.DeltaTable(args.table)
    out = {"version": dt.version()}
    p = dt.protocol()
    out["protocol"] = {"min_reader_version": p.min_reader_version, "min_writer_version": p.min_writer_version}
    md = dt.metadata()
    out["partition_columns"] = list(md.partition_columns)
    out["configuration"] = dict(md.configuration)
    out["schema"] = [
        {"name": f.name, "type": str(f.type.type) if hasattr(f.type, "type") else str(f.type), "nullable": f.nullable}
        for f in dt.schema().fields
    ]
    table = dt.to_pyarrow_table()
    out["num_rows"] = table.num_rows
    out["arrow_schema"] = {f.name: str(f.type) for f in table.schema}

    adds = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    files = []
    for a in adds:
        f = {"path": a.get("path"), "size": a.get("size_bytes"), "num_records": a.get("num_records"),
             "partition_values": {}, "min": {}, "max": {}, "null_count": {}}
        for k, v in a.items():
            if k.startswith("partition."):
                f["partition_values"][k[len("partition."):]] = plain(v)
            elif k.startswith("min."):
                f["min"][k[4:]] = plain(v)
            elif k.startswith("max."):
                f["max"][k[4:]] = plain(v)
            elif k.startswith("null_count."):
                f["null_count"][k[len("null_count."):]] = v
        files.append(f)
    files.sort(key=lambda f: f["path"])
    out["files"] = files
    out["txn"] = {a: dt.transaction_version(a) for a in args.app_id}
    if args.rows:
        rows = [plain(r) for r in table.to_pylist()]
        rows.sort(key=lambda r: json.dumps(r, sort_keys=True, default=str))
        out["rows"] = rows
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
    # Skip the interpreter's teardown: delta-rs's native threads can abort
    # the process there ("terminate called without an active exception")
    # after the result is complete, which a busy CI machine hit.
    sys.stdout.flush()
    os._exit(0)
