#!/usr/bin/env python3
"""ddbsync's memory and CPU at scale (run through scripts/scale.sh).

usage: scale.py ROWS [RUNS] [--bytes N] [--shape flat|nested] [--server dynoxide|dynalite] [--max-in-flight N] [--ddbsync PATH]

Generates ROWS rows in a local PostgreSQL table (an id, a few plain columns and a text `body` of
about N bytes, default 64: small items), then per run, into a freshly started DynamoDB-compatible
server (dynoxide by default: it holds a million items in memory where dynalite slows down): a full
load, then a no-change resync. Each sync runs under GNU time: wall seconds, CPU seconds (user +
system), peak RSS (maximum resident set), and from them CPU microseconds and RSS bytes per target
item. Prints a Markdown table of medians (and the spread) over the runs.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, RELEASE, TOOLS, free_port, psql, timed, wait_port  # noqa: E402

MAPPING = '''[tables.scale]
partition_key = "id"
query = "SELECT id, name, amount, active, body, updated_at FROM scale"
exclude_from_hash = ["updated_at"]
'''


def server(kind, port):
    if kind == "dynoxide":
        cmd = [os.path.join(TOOLS, "dynoxide/bin/dynoxide"), "serve", "-p", str(port), "--log", "quiet"]
    else:
        cmd = [os.path.join(TOOLS, "dynalite/node_modules/.bin/dynalite"), "--port", str(port),
               "--createTableMs", "0", "--deleteTableMs", "0"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("rows", type=int)
    args.add_argument("runs", type=int, nargs="?", default=3)
    args.add_argument("--bytes", type=int, default=64, help="about how long each row's body is")
    args.add_argument("--shape", choices=["flat", "nested"], default="flat",
                      help="the body as one string, or as a JSON list of small objects (as PNI's questions)")
    args.add_argument("--server", choices=["dynoxide", "dynalite"], default="dynoxide")
    args.add_argument("--max-in-flight", type=int, default=8)
    args.add_argument("--ddbsync", default=os.path.join(RELEASE, "ddbsync"), help="the binary to measure")
    opts = args.parse_args()
    state = tempfile.mkdtemp(prefix="ddbsync-scale-")
    os.chmod(state, 0o755)  # as root, PostgreSQL runs as the postgres user, which must reach its directory
    pg_port = free_port()
    subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "start", os.path.join(state, "pg"), str(pg_port)],
                   check=True)
    ddb = None
    try:
        psql(pg_port, "postgres", "-c", "CREATE DATABASE scale")
        # The body repeats a row-specific word, so that no two items are alike; nested, it is a list of
        # objects of about 120 bytes each in DynamoDB (five attributes, one a list).
        body = {"flat": ("text", f"left(repeat(md5(i::text), ({opts.bytes} + 31) / 32), {opts.bytes})"),
                "nested": ("jsonb", f"""(SELECT jsonb_agg(jsonb_build_object('id', i * 1000 + q,
                                'prompt', 'Question ' || q || ' about item ' || i || ': which one?',
                                'choices', jsonb_build_array('A ' || i, 'B', 'C', 'D'), 'answer', q % 4,
                                'difficulty', (q % 10) / 10.0))
                              FROM generate_series(1, greatest(1, {opts.bytes} / 120)) AS q)""")}[opts.shape]
        psql(pg_port, "scale", "-c", f"""
            CREATE TABLE scale (id bigint PRIMARY KEY, name text NOT NULL, amount integer NOT NULL,
                                active boolean NOT NULL, body {body[0]} NOT NULL, updated_at timestamptz NOT NULL);
            INSERT INTO scale
            SELECT i, 'item ' || i, (i * 7) % 100000, i % 3 = 0, {body[1]},
                   timestamptz '2024-01-01' + i * interval '1 second'
            FROM generate_series(1, {opts.rows}) AS i;""", "-c", "VACUUM ANALYZE scale")
        envs = os.path.join(state, "envs")
        os.makedirs(os.path.join(envs, "mappings"))
        with open(os.path.join(envs, "mappings", "scale.toml"), "w") as f:
            f.write(MAPPING)
        results = {"full": [], "nochange": []}
        for run in range(opts.runs):
            port = free_port()
            ddb = server(opts.server, port)
            with open(os.path.join(envs, "scale.toml"), "w") as f:
                f.write(f'''mappings = "mappings/scale.toml"
table_prefix = "scale-"
[source]
host = "127.0.0.1"
port = {pg_port}
dbname = "scale"
user = "postgres"
sslmode = "disable"
[target]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:{port}"
[sync]
scan_segments = 4
max_in_flight = {opts.max_in_flight}
''')
            env = dict(os.environ, AWS_ACCESS_KEY_ID="scale", AWS_SECRET_ACCESS_KEY="scale", DDBSYNC_ENVS_DIR=envs)
            for phase, writes in [("full", opts.rows), ("nochange", 0)]:
                secs, rss, cpu, out = timed([opts.ddbsync, "--json", "sync", "scale"], env)
                total = json.loads(out)["total"]
                written = total["created"] + total["updated"]
                if written != writes or total["created"] + total["updated"] + total["unchanged"] != opts.rows:
                    sys.exit(f"{phase}: expected {writes} writes of {opts.rows} items, the report says {total}")
                results[phase].append({"secs": secs, "rss": rss, "cpu": cpu})
                print(f"run {run + 1}/{opts.runs} {phase}: {secs:.1f} s, CPU {cpu:.1f} s, peak RSS {rss:.1f} MB",
                      file=sys.stderr)
            ddb.terminate()
            ddb.wait()
            ddb = None
    finally:
        if ddb:
            ddb.terminate()
        subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "stop", os.path.join(state, "pg")])
        shutil.rmtree(state, ignore_errors=True)

    med = statistics.median
    print(f"{opts.rows:,} rows of about {opts.bytes} B of {opts.shape} body into {opts.server}, {opts.max_in_flight} writes "
          f"in flight; medians of {opts.runs} runs (min to max)\n")
    print("| phase | seconds | items/s | CPU s | CPU µs per item | peak RSS (MB) | RSS bytes per item |")
    print("|---|---|---|---|---|---|---|")

    def spread(values, fmt):
        return f"{fmt.format(med(values))} ({fmt.format(min(values))} to {fmt.format(max(values))})"

    for name, key in [("full load", "full"), ("no-change resync", "nochange")]:
        rows = results[key]
        secs, cpu, rss = [r["secs"] for r in rows], [r["cpu"] for r in rows], [r["rss"] for r in rows]
        print(f"| {name} | {spread(secs, '{:.1f}')} | {opts.rows / med(secs):,.0f} | {spread(cpu, '{:.1f}')} | "
              f"{med(cpu) / opts.rows * 1e6:.2f} | {spread(rss, '{:.1f}')} | "
              f"{med(rss) * 1024 * 1024 / opts.rows:.1f} |")


if __name__ == "__main__":
    main()
