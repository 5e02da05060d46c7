#!/usr/bin/env python3
"""A promotion's throughput (run through scripts/bench_promote.sh [SCALE] [RUNS]).

The PNI sample is synced from PostgreSQL into "dev" tables of a fresh dynalite (not measured); then,
side by side in each run:
  1. the raw ceiling of copying those items (examples/raw_ceiling: a minimal concurrent BatchWriteItem
     writer copying the dev tables into fresh tables, asking for ReturnConsumedCapacity=INDEXES as
     ddbsync does; and a raw parallel Scan);
  2. a promotion of the dev tables into empty "prod" tables (every lesson and passage given its new
     ID, every passage's lesson_id rewritten and checked against the lessons);
  3. a no-change promotion (reads dev, diffs prod, writes nothing).
Prints a Markdown table of medians.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import RELEASE, ROOT, TOOLS, free_port, psql, timed, wait_port  # noqa: E402

PROMOTE = """exclude_from_hash = ["created_at", "updated_at"]
[tables.lessons]
partition_key = "lesson_id"
id = "lesson_id"
[tables.passages]
partition_key = "passage_id"
id = "passage_id"
references = { lesson_id = "lessons" }
[tables.topics]
partition_key = "category"
sort_key = "topic"
"""


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    state = tempfile.mkdtemp(prefix="ddbsync-bench-promote-")
    os.chmod(state, 0o755)
    pg_port = free_port()
    subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "start", os.path.join(state, "pg"), str(pg_port)], check=True)
    dynalite = None
    results = {k: [] for k in ["raw_write", "raw_scan", "promote", "nochange"]}
    try:
        psql(pg_port, "postgres", "-c", "CREATE DATABASE pni")
        envs = os.path.join(state, "envs")
        os.makedirs(os.path.join(envs, "mappings"))
        shutil.copy(os.path.join(ROOT, "envs/mappings/pni.toml"), os.path.join(envs, "mappings"))
        with open(os.path.join(envs, "mappings", "promote.toml"), "w") as f:
            f.write(PROMOTE)
        for run in range(runs):
            psql(pg_port, "pni", "-v", f"scale={scale}", "-f", os.path.join(ROOT, "scripts/pni/schema.sql"),
                 "-f", os.path.join(ROOT, "scripts/pni/load.sql"))
            ddb_port = free_port()
            dynalite = subprocess.Popen([os.path.join(TOOLS, "dynalite/node_modules/.bin/dynalite"), "--port", str(ddb_port),
                                         "--createTableMs", "0", "--deleteTableMs", "0"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(ddb_port)
            endpoint = f"http://127.0.0.1:{ddb_port}"
            common = f'[target]\nregion = "us-east-1"\nendpoint_url = "{endpoint}"\n[sync]\nscan_segments = 4\nmax_in_flight = 8\n'
            with open(os.path.join(envs, "dev.toml"), "w") as f:
                f.write(f'mappings = "mappings/pni.toml"\ntable_suffix = "-dev"\n[source]\nhost = "127.0.0.1"\n'
                        f'port = {pg_port}\ndbname = "pni"\nuser = "postgres"\nsslmode = "disable"\n{common}')
            with open(os.path.join(envs, "prod.toml"), "w") as f:
                f.write(f'mappings = "mappings/promote.toml"\ntable_suffix = "-prod"\n[source]\nkind = "dynamodb"\n'
                        f'table_template = "{{table}}-dev"\nendpoint_url = "{endpoint}"\n{common}')
            env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", DDBSYNC_ENVS_DIR=envs)
            ddbsync = os.environ.get("DDBSYNC_BENCH_BIN", os.path.join(RELEASE, "ddbsync"))
            timed([ddbsync, "--json", "sync", "dev"], env)

            def promote():
                secs, rss, cpu, out = timed([ddbsync, "--json", "sync", "prod"], env)
                total = json.loads(out)["total"]
                items = total["created"] + total["updated"] + total["unchanged"]
                return {"secs": secs, "rss": rss, "cpu": cpu, "items": items, "writes": total["created"] + total["updated"]}

            raw = json.loads(subprocess.run([os.path.join(RELEASE, "examples", "raw_ceiling"), endpoint,
                                             "lessons-dev,passages-dev,topics-dev", "8", "4"],
                                            check=True, capture_output=True, text=True).stdout)
            results["raw_write"].append(raw["write_capacity_items_per_s"])
            results["raw_scan"].append(raw["scan_items_per_s"])
            results["promote"].append(promote())
            results["nochange"].append(promote())
            dynalite.terminate()
            dynalite.wait()
            dynalite = None
            print(f"run {run + 1}/{runs} done", file=sys.stderr)
    finally:
        if dynalite:
            dynalite.terminate()
        subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "stop", os.path.join(state, "pg")])
        shutil.rmtree(state, ignore_errors=True)

    med = statistics.median
    raw_write, raw_scan = med(results["raw_write"]), med(results["raw_scan"])
    items = results["promote"][0]["items"]
    print(f"PNI scale {scale}: {items} items promoted per run; medians of {runs} runs; dynalite 4, 8 writes in "
          f"flight, 4 scan segments\n")
    print("| phase | items/s | ratio to raw ceiling | seconds | ddbsync CPU s | writes issued | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| raw copy ceiling (BatchWriteItem, ReturnConsumedCapacity=INDEXES) | {raw_write:,.0f} | 1.00 | "
          f"{items / raw_write:.2f} | – | {items} | – |")
    print(f"| raw parallel Scan ceiling | {raw_scan:,.0f} | 1.00 | {items / raw_scan:.2f} | – | 0 | – |")
    for name, key, ceiling in [("promotion into empty tables", "promote", raw_write),
                               ("no-change promotion", "nochange", raw_scan)]:
        rows = results[key]
        rate = med([r["items"] / r["secs"] for r in rows])
        writes = ", ".join(map(str, sorted({r["writes"] for r in rows})))
        print(f"| {name} | {rate:,.0f} | {rate / ceiling:.2f} | {med([r['secs'] for r in rows]):.2f} | "
              f"{med([r['cpu'] for r in rows]):.2f} | {writes} | {med([r['rss'] for r in rows]):.1f} |")


if __name__ == "__main__":
    main()
