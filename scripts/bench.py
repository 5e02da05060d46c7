#!/usr/bin/env python3
"""ddbsync's throughput benchmark (run through scripts/bench.sh).

On local PostgreSQL + dynalite, at a chosen PNI scale, each run measures side by side:
  1. the server's raw ceilings (examples/raw_ceiling: a minimal concurrent BatchWriteItem writer,
     plain and asking for ReturnConsumedCapacity=INDEXES as ddbsync does, and a raw parallel Scan of
     the same items);
  2. a ddbsync full load; 3. a no-change resync; 4. a resync after 1 % content changes and 5 %
     timestamp-only touches (checked to write exactly the changed items); 5. --clean;
with items/s, the ratio to the raw ceiling, writes issued and peak RSS. Plus the engine alone
(examples/engine) on one core. dynalite is restarted for every run (its memory only grows).
Prints a Markdown table of medians over the runs.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.environ.get("DDBSYNC_TOOLS", os.path.expanduser("~/.cache/ddbsync-tools"))
RELEASE = os.path.join(ROOT, "target", "release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def psql(port, db, *args):
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db,
                    "-v", "ON_ERROR_STOP=1", *args], check=True, stdout=subprocess.DEVNULL)


def query(port, db, sql):
    out = subprocess.run(["psql", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def timed(cmd, env):
    """Runs cmd under GNU time; returns (seconds, peak RSS in MB, CPU seconds, stdout)."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", *cmd], env=env, capture_output=True, text=True)
    secs = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    rss_kb, user, system = out.stderr.strip().splitlines()[-1].split()
    return secs, int(rss_kb) / 1024, float(user) + float(system), out.stdout


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    state = tempfile.mkdtemp(prefix="ddbsync-bench-")
    os.chmod(state, 0o755)  # as root, PostgreSQL runs as the postgres user, which must reach its directory
    pg_port = free_port()
    subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "start", os.path.join(state, "pg"), str(pg_port)], check=True)
    dynalite = None
    try:
        psql(pg_port, "postgres", "-c", "CREATE DATABASE pni")
        envs = os.path.join(state, "envs")
        os.makedirs(os.path.join(envs, "mappings"))
        # ddbsync reads mappings only from inside the environments directory.
        shutil.copy(os.path.join(ROOT, "envs/mappings/pni.toml"), os.path.join(envs, "mappings"))
        results = {k: [] for k in ["raw_write", "raw_write_capacity", "raw_scan", "full", "nochange", "changes", "clean", "engine"]}
        for run in range(runs):
            psql(pg_port, "pni", "-v", f"scale={scale}", "-f", os.path.join(ROOT, "scripts/pni/schema.sql"),
                 "-f", os.path.join(ROOT, "scripts/pni/load.sql"))
            ddb_port = free_port()
            dynalite = subprocess.Popen([os.path.join(TOOLS, "dynalite/node_modules/.bin/dynalite"), "--port", str(ddb_port),
                                         "--createTableMs", "0", "--deleteTableMs", "0"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(ddb_port)
            endpoint = f"http://127.0.0.1:{ddb_port}"
            with open(os.path.join(envs, "bench.toml"), "w") as f:
                f.write(f'''mappings = "mappings/pni.toml"
table_prefix = "bench-"
[source]
host = "127.0.0.1"
port = {pg_port}
dbname = "pni"
user = "postgres"
sslmode = "disable"
[target]
region = "us-east-1"
endpoint_url = "{endpoint}"
[sync]
scan_segments = 4
max_in_flight = 8
''')
            env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", DDBSYNC_ENVS_DIR=envs)
            # DDBSYNC_BENCH_BIN: another build to measure (a before-and-after comparison).
            ddbsync = [os.environ.get("DDBSYNC_BENCH_BIN", os.path.join(RELEASE, "ddbsync")), "--json", "sync", "bench"]

            def sync(*extra):
                secs, rss, cpu, out = timed([*ddbsync, *extra], env)
                report = json.loads(out)
                total = report["total"]
                items = total["created"] + total["updated"] + total["unchanged"]
                return {"secs": secs, "rss": rss, "cpu": cpu, "items": items,
                        "writes": total["created"] + total["updated"], "report": report}

            full = sync()
            results["full"].append(full)
            raw = json.loads(subprocess.run([os.path.join(RELEASE, "examples", "raw_ceiling"), endpoint,
                                             "bench-lessons,bench-passages,bench-topics", "8", "4"],
                                            check=True, capture_output=True, text=True).stdout)
            results["raw_write"].append(raw["write_items_per_s"])
            results["raw_write_capacity"].append(raw["write_capacity_items_per_s"])
            results["raw_scan"].append(raw["scan_items_per_s"])
            results["nochange"].append(sync())

            psql(pg_port, "pni",
                 "-c", "UPDATE lessons SET title = title || ' (rev)' WHERE id % 100 = 0",
                 "-c", "UPDATE passages SET body = body || ' rev' WHERE id % 100 = 0",
                 "-c", "UPDATE lessons SET updated_at = now() WHERE id % 20 = 1",
                 "-c", "UPDATE passages SET updated_at = now() WHERE id % 20 = 1",
                 "-c", "UPDATE questions SET updated_at = now() WHERE id % 20 = 1")
            expected = int(query(pg_port, "pni", "SELECT (SELECT count(*) FROM lessons WHERE id % 100 = 0)"
                                                 " + (SELECT count(*) FROM passages WHERE id % 100 = 0)"))
            changes = sync()
            changes["expected"] = expected
            results["changes"].append(changes)
            results["clean"].append(sync("--clean", "--yes"))
            dynalite.terminate()
            dynalite.wait()
            dynalite = None

            engine = subprocess.run(["taskset", "-c", "0", os.path.join(RELEASE, "examples", "engine"), "100000", "5"],
                                    check=True, capture_output=True, text=True)
            results["engine"].append(json.loads(engine.stdout))
            for mode in [[], ["sized"]]:
                index = subprocess.run([os.path.join(RELEASE, "examples", "engine"), "index", "1000000", *mode],
                                       check=True, capture_output=True, text=True)
                results["engine"][-1].update(json.loads(index.stdout))
            print(f"run {run + 1}/{runs} done", file=sys.stderr)
    finally:
        if dynalite:
            dynalite.terminate()
        subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "stop", os.path.join(state, "pg")])
        shutil.rmtree(state, ignore_errors=True)

    med = statistics.median
    raw_write, raw_scan = med(results["raw_write"]), med(results["raw_scan"])
    raw_capacity = med(results["raw_write_capacity"])
    items = results["full"][0]["items"]
    print(f"PNI scale {scale}: {items} items per sync ({scale} lessons, {2 * scale} passages, topics); "
          f"medians of {runs} runs; dynalite 4, 8 writes in flight, 4 scan segments\n")
    print("Writes are compared with the like-for-like ceiling (ReturnConsumedCapacity=INDEXES, as ddbsync "
          "asks); the plain ceiling's ratio is in brackets.\n")
    print("| phase | items/s | ratio to raw ceiling | seconds | ddbsync CPU s | writes issued | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| raw BatchWriteItem ceiling, plain | {raw_write:,.0f} | – | {items / raw_write:.2f} | – | {items} | – |")
    print(f"| raw BatchWriteItem ceiling, ReturnConsumedCapacity=INDEXES | {raw_capacity:,.0f} | 1.00 "
          f"({raw_capacity / raw_write:.2f}) | {items / raw_capacity:.2f} | – | {items} | – |")
    print(f"| raw parallel Scan ceiling | {raw_scan:,.0f} | 1.00 | {items / raw_scan:.2f} | – | 0 | – |")
    for name, key, ceiling in [("ddbsync full load", "full", raw_capacity), ("no-change resync", "nochange", raw_scan),
                               ("resync, 1 % changed + 5 % touched", "changes", raw_scan),
                               ("--clean", "clean", raw_capacity)]:
        rows = results[key]
        rate = med([r["items"] / r["secs"] for r in rows])
        writes = sorted({r["writes"] for r in rows})
        note = ""
        if key == "changes":
            exact = all(r["writes"] == r["expected"] for r in rows)
            note = f" ({'exactly' if exact else 'NOT'} the {rows[0]['expected']} changed)"
        plain = f" ({rate / raw_write:.2f})" if ceiling == raw_capacity else ""
        print(f"| {name} | {rate:,.0f} | {rate / ceiling:.2f}{plain} | {med([r['secs'] for r in rows]):.2f} | "
              f"{med([r['cpu'] for r in rows]):.2f} | {', '.join(map(str, writes))}{note} | "
              f"{med([r['rss'] for r in rows]):.1f} |")
    engine = results["engine"]
    print(f"\nEngine alone (build + hash + diff, one core, no I/O), items/s:")
    print(f"- PNI lessons, 3 questions embedded as JSON, {engine[0]['pni_item_bytes']} B: "
          f"{med([e['pni_items_per_s'] for e in engine]):,.0f}")
    print(f"- flat rows, 15 plain columns, {engine[0]['flat_item_bytes']} B: "
          f"{med([e['flat_items_per_s'] for e in engine]):,.0f}")
    print(f"\nDiff index memory at 1,000,000 target items (resident, fresh process): "
          f"{med([e['index_bytes_per_item'] for e in engine]):.1f} bytes per item grown from empty, "
          f"{med([e['index_sized_bytes_per_item'] for e in engine]):.1f} sized from DescribeTable's ItemCount")


if __name__ == "__main__":
    main()
