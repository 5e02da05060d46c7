#!/usr/bin/env python3
"""What splitting a sync into shards costs on the source side (BENCHMARKS.md, "Sharded runs").

scripts/bench_shards.py [SCALE] [RUNS]: on local PostgreSQL + dynalite at PNI scale SCALE, loads
the tables once unsharded, then for 1, 2 and 4 shards started at once (`sync --shard K/N`):
  - a no-change resync: every shard reads the whole source, builds and hashes every row and keeps
    its own (the source side's cost, multiplied by N) and Scans the whole table (scan mode);
  - a full load into fresh tables: the writes split N ways;
  - the same two in tables whose diff reads the hash index (`diff = "index"`): each shard Queries
    only the buckets of its range.
Reports the wall time (the slowest shard), the CPU seconds of all shards together, the rows each
shard read from PostgreSQL, PostgreSQL's own time for the queries, and the write units. Medians of
RUNS runs. Needs the release binary (scripts/bench.sh builds it) and scripts/setup.sh's servers.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, RELEASE, TOOLS, free_port, psql, wait_port  # noqa: E402


def run_shards(count, prefix, env, run_id):
    """Starts `count` shards at once; returns (wall seconds, summed CPU seconds, reports)."""
    started = time.perf_counter()
    children = []
    for k in range(count):
        args = [os.path.join(RELEASE, "ddbsync"), "--json", "sync", prefix]
        if count > 1:
            args += ["--shard", f"{k}/{count}", "--run-id", run_id]
        children.append(subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", *args], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    cpu, reports = 0.0, []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            sys.exit(f"shard failed:\n{err}")
        _, user, system = err.strip().splitlines()[-1].split()
        cpu += float(user) + float(system)
        reports.append(json.loads(out))
    return time.perf_counter() - started, cpu, reports


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    state = tempfile.mkdtemp(prefix="ddbsync-bench-shards-")
    os.chmod(state, 0o755)
    pg_port = free_port()
    subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "start", os.path.join(state, "pg"), str(pg_port)],
                   check=True)
    dynalite = None
    results = {}
    try:
        psql(pg_port, "postgres", "-c", "CREATE DATABASE pni")
        envs = os.path.join(state, "envs")
        os.makedirs(os.path.join(envs, "mappings"))
        shutil.copy(os.path.join(ROOT, "envs/mappings/pni.toml"), os.path.join(envs, "mappings"))
        # The same tables with diff = "index".
        with open(os.path.join(ROOT, "envs/mappings/pni.toml")) as f:
            indexed = "".join(line + ('diff = "index"\n' if line.startswith("partition_key") else "")
                              for line in f.read().splitlines(keepends=True))
        with open(os.path.join(envs, "mappings", "pni-index.toml"), "w") as f:
            f.write(indexed)
        for run in range(runs):
            psql(pg_port, "pni", "-v", f"scale={scale}", "-f", os.path.join(ROOT, "scripts/pni/schema.sql"),
                 "-f", os.path.join(ROOT, "scripts/pni/load.sql"))
            ddb_port = free_port()
            dynalite = subprocess.Popen([os.path.join(TOOLS, "dynalite/node_modules/.bin/dynalite"), "--port",
                                         str(ddb_port), "--createTableMs", "0", "--deleteTableMs", "0"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(ddb_port)
            for n, (mode, mappings) in [(n, m) for n in [1, 2, 4] for m in [("s", "pni"), ("i", "pni-index")]]:
                with open(os.path.join(envs, f"{mode}{n}.toml"), "w") as f:
                    f.write(f'''mappings = "mappings/{mappings}.toml"
table_prefix = "{mode}{n}-"
[source]
host = "127.0.0.1"
port = {pg_port}
dbname = "pni"
user = "postgres"
sslmode = "disable"
[target]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:{ddb_port}"
[sync]
scan_segments = 4
max_in_flight = 8
''')
            env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", DDBSYNC_ENVS_DIR=envs)
            rows = None
            for n in [1, 2, 4]:
                full_secs, full_cpu, full = run_shards(n, f"s{n}", env, f"full-{run}")
                total = lambda reports, f: sum(r["total"][f] for r in reports)  # noqa: E731
                # One unsharded run's item count: the rows every shard reads.
                rows = rows or total(full, "created")
                nochange_secs, nochange_cpu, nochange = run_shards(n, f"s{n}", env, f"nochange-{run}")
                assert total(nochange, "created") + total(nochange, "updated") == 0, "nothing changed"
                assert total(nochange, "unchanged") == rows, (total(nochange, "unchanged"), rows)
                assert total(full, "created") == rows
                run_shards(n, f"i{n}", env, f"ifull-{run}")
                _, _, indexed = run_shards(n, f"i{n}", env, f"inochange-{run}")
                assert total(indexed, "unchanged") == rows and all(
                    t["diff"] == "index" for r in indexed for t in r["tables"]), "the index, nothing changed"
                results.setdefault(n, []).append({
                    "index_read_units": total(indexed, "read_units"),
                    "full_secs": full_secs, "full_cpu": full_cpu,
                    "full_units": total(full, "write_units"),
                    "nochange_secs": nochange_secs, "nochange_cpu": nochange_cpu,
                    "read_units": total(nochange, "read_units"),
                    "rows_read": n * rows,
                })
            dynalite.terminate()
            dynalite.wait()
            dynalite = None
            print(f"run {run + 1}/{runs} done", file=sys.stderr)
        # PostgreSQL's own time for one shard's queries (every shard runs the same ones).
        queries = subprocess.run(
            ["python3", "-c", "import tomllib,sys; m=tomllib.load(open(sys.argv[1],'rb'));"
             "print('\\x1e'.join(t['query'] for t in m['tables'].values()))",
             os.path.join(ROOT, "envs/mappings/pni.toml")], check=True, capture_output=True, text=True).stdout
        pg_secs = []
        for _ in range(3):
            start = time.perf_counter()
            for q in queries.strip().split("\x1e"):
                # Every row, every column, as a shard receives them (psql discards them).
                psql(pg_port, "pni", "-o", "/dev/null", "-c", q)
            pg_secs.append(time.perf_counter() - start)
    finally:
        if dynalite:
            dynalite.terminate()
        subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "stop", os.path.join(state, "pg")])
        shutil.rmtree(state, ignore_errors=True)

    med = statistics.median
    print(f"PNI scale {scale}: {rows} items; medians of {runs} runs; PostgreSQL runs one shard's queries in "
          f"{med(pg_secs):.2f} s\n")
    print("| shards | full load s | full load CPU s (all shards) | write units | no-change resync s | "
          "resync CPU s (all shards) | source rows read | Scan read units | index read units |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, rs in sorted(results.items()):
        print(f"| {n} | {med([r['full_secs'] for r in rs]):.2f} | {med([r['full_cpu'] for r in rs]):.2f} | "
              f"{med([r['full_units'] for r in rs]):,.0f} | {med([r['nochange_secs'] for r in rs]):.2f} | "
              f"{med([r['nochange_cpu'] for r in rs]):.2f} | {rs[0]['rows_read']:,} | "
              f"{med([r['read_units'] for r in rs]):,.1f} | {med([r['index_read_units'] for r in rs]):,.1f} |")


if __name__ == "__main__":
    main()
