#!/usr/bin/env python3
"""What writing a plan item by item costs against a sync's batches (BENCHMARKS.md, "Plan and apply").

scripts/bench_apply.py [SCALE] [RUNS] [BIN]: on local PostgreSQL + dynalite, one table of SCALE
small items (the PNI lessons' ids and titles: the writes, not the items' size, are measured), then:
  - updates: every title changed; `sync` writes them in BatchWriteItem calls of 25; every title
    changed again; `plan`, then `apply` writes them one conditional PutItem each, after a GetItem;
  - creates: into a fresh table, `sync` (a full load, batched) against `plan` + `apply` (one
    PutItem on attribute_not_exists each, no read).
The batched write phase is the sync's time less a no-change resync's (the same diff, no write).
Medians of RUNS runs; IN_FLIGHT (default 8) is sync.max_in_flight. BIN is the ddbsync binary (default target/release/ddbsync, else target/debug).
Needs scripts/setup.sh's servers.
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

MAPPING = '[tables.items]\npartition_key = "id"\nquery = "SELECT id, title FROM lessons"\n'


def timed(binary, env, *args):
    """Runs ddbsync; returns (seconds, its JSON output)."""
    started = time.perf_counter()
    done = subprocess.run([binary, "--json", *args], env=env, capture_output=True, text=True)
    secs = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"ddbsync {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return secs, json.loads(done.stdout)


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    binary = sys.argv[3] if len(sys.argv) > 3 else os.path.join(RELEASE, "ddbsync")
    in_flight = int(os.environ.get("IN_FLIGHT", "8"))
    if not os.path.exists(binary):
        binary = os.path.join(ROOT, "target", "debug", "ddbsync")
    state = tempfile.mkdtemp(prefix="ddbsync-bench-apply-")
    os.chmod(state, 0o755)
    pg_port = free_port()
    subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "start", os.path.join(state, "pg"), str(pg_port)],
                   check=True)
    results = []
    try:
        psql(pg_port, "postgres", "-c", "CREATE DATABASE pni")
        envs = os.path.join(state, "envs")
        os.makedirs(os.path.join(envs, "mappings"))
        with open(os.path.join(envs, "mappings", "items.toml"), "w") as f:
            f.write(MAPPING)
        for run in range(runs):
            psql(pg_port, "pni", "-v", f"scale={scale}", "-f", os.path.join(ROOT, "scripts/pni/schema.sql"),
                 "-f", os.path.join(ROOT, "scripts/pni/load.sql"))
            ddb_port = free_port()
            dynalite = subprocess.Popen([os.path.join(TOOLS, "dynalite/node_modules/.bin/dynalite"), "--port",
                                         str(ddb_port), "--createTableMs", "0", "--deleteTableMs", "0"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(ddb_port)
            try:
                for env_name in ["u", "b", "c"]:
                    with open(os.path.join(envs, f"{env_name}.toml"), "w") as f:
                        f.write(f'''mappings = "mappings/items.toml"
table_prefix = "{env_name}{run}-"
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
max_in_flight = {in_flight}
''')
                env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                           DDBSYNC_ENVS_DIR=envs)
                plan = os.path.join(state, "p.json")
                # Creates: a batched full load against a plan of creates applied.
                load_secs, load = timed(binary, env, "sync", "b")
                assert load["total"]["created"] == scale
                timed(binary, env, "tables", "create", "c")
                plan_c_secs, planned = timed(binary, env, "plan", "c", "-o", plan)
                assert planned["changes"] == scale
                apply_c_secs, applied = timed(binary, env, "apply", plan)
                assert applied["tables"][0]["created"] == scale
                # Updates: batched, then item by item.
                timed(binary, env, "sync", "u")
                nochange_secs, nochange = timed(binary, env, "sync", "u")
                assert nochange["total"]["unchanged"] == scale
                psql(pg_port, "pni", "-c", "UPDATE lessons SET title = title || ' b'")
                sync_secs, synced = timed(binary, env, "sync", "u")
                assert synced["total"]["updated"] == scale
                psql(pg_port, "pni", "-c", "UPDATE lessons SET title = title || ' a'")
                plan_u_secs, planned = timed(binary, env, "plan", "u", "-o", plan)
                assert planned["changes"] == scale
                apply_u_secs, applied = timed(binary, env, "apply", plan)
                assert applied["tables"][0]["updated"] == scale
                results.append({
                    "load": load_secs, "plan_c": plan_c_secs, "apply_c": apply_c_secs,
                    "nochange": nochange_secs, "sync_u": sync_secs, "plan_u": plan_u_secs, "apply_u": apply_u_secs,
                    "sync_units": synced["total"]["write_units"],
                    "apply_units": applied["write_units"], "apply_reads": applied["read_units"],
                })
            finally:
                dynalite.terminate()
                dynalite.wait()
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "stop", os.path.join(state, "pg")])
        # The server's files and the plan: hundreds of MB at scale 10,000.
        shutil.rmtree(state, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    batched_write = max(med["sync_u"] - med["nochange"], 1e-9)
    rows = [
        ("full load, batched (sync)", med["load"], scale / med["load"], "–"),
        ("creates, conditional (apply)", med["apply_c"], scale / med["apply_c"], f"{med['load'] / med['apply_c']:.2f}"),
        ("updates, batched (sync less a no-change resync)", batched_write, scale / batched_write, "–"),
        ("updates, read + conditional (apply)", med["apply_u"], scale / med["apply_u"],
         f"{batched_write / med['apply_u']:.2f}"),
    ]
    print(f"scale {scale}, {runs} runs, medians; max_in_flight {in_flight}; binary {binary}")
    print("| writes | seconds | items/s | throughput ratio to batched |")
    print("|---|---|---|---|")
    for name, secs, rate, ratio in rows:
        print(f"| {name} | {secs:.2f} | {rate:,.0f} | {ratio} |")
    print(f"plan: creates {med['plan_c']:.2f} s, updates {med['plan_u']:.2f} s; no-change resync {med['nochange']:.2f} s")
    print(f"write units: sync {med['sync_units']:.1f}, apply {med['apply_units']:.1f} (estimated); "
          f"apply's reads {med['apply_reads']:.1f} units")


if __name__ == "__main__":
    main()
