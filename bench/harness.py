"""The benchmark behind `scripts/bench`. Python standard library only.

Starts nothing itself: scripts/bench passes the database URI, the running
service (release build), its PID and API key, and the `driver` binary.
Every figure comes from this one run, so the ratios compare like with like.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRK_SCRIPT = os.path.join(ROOT, "bench", "wrk.lua")


@dataclass
class Load:
    """One measured load: what wrk or the driver reports."""

    name: str
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int = 0
    # CPU time the serving process (or the raw driver's) used during the
    # load, in clock ticks; None where not measured.
    cpu_ticks: int | None = None

    @property
    def cpu_us(self):
        """CPU per successful request, in microseconds; None where not
        measured, or where the load was too short for the clock's ticks."""
        if self.cpu_ticks is None or self.requests == 0 or self.cpu_ticks < 10:
            return None
        return self.cpu_ticks * 1e6 / CLOCK_TICKS / self.requests

    def row(self):
        cpu = "" if self.cpu_us is None else f"{self.cpu_us:,.0f}"
        return (
            f"| {self.name} | {self.concurrency} | {self.requests} | {self.rps:,.1f} "
            f"| {self.p50_ms:,.2f} | {self.p99_ms:,.2f} | {cpu} | {self.failures} |"
        )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """User and system CPU time of process `pid` so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Bench:
    def __init__(self, base, db_uri, driver, pid, api_key, cost, cores, seconds):
        self.base = base
        self.db_uri = db_uri
        self.driver = driver
        self.pid = pid
        self.api_key = api_key
        self.cost = cost
        self.cores = cores
        self.seconds = seconds
        self.loads = []
        self.run = str(int(time.time()))

    def log(self, message):
        print(f"-- {message}", file=sys.stderr, flush=True)

    def wrk(self, name, path, concurrency, seconds, mode="get", background=False, record=True, base=None,
            pid=None):
        """A wrk load on `base` (the service by default); with `pid`, the CPU
        time that process used meanwhile is measured too."""
        # A token per load keeps the emails of one create load apart from another's.
        token = f"{self.run}-{len(self.loads)}-{name.split()[0].lower()}-{time.monotonic_ns()}"
        env = {**os.environ, "BENCH_API_KEY": self.api_key, "BENCH_MODE": mode, "BENCH_RUN": token}
        threads = min(2, concurrency)
        command = [
            "wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s",
            "-s", WRK_SCRIPT, f"{base or self.base}{path}",
        ]
        before = cpu_ticks(pid) if pid else None
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        if background:
            return lambda: self._wrk_result(name, concurrency, process, record, pid, before)
        return self._wrk_result(name, concurrency, process, record, pid, before)

    def _wrk_result(self, name, concurrency, process, record, pid=None, before=None):
        out, _ = process.communicate()
        used = cpu_ticks(pid) - before if pid else None
        if process.returncode != 0:
            raise SystemExit(f"wrk failed for {name}:\n{out}")
        figures = json.loads(out.strip().splitlines()[-1])
        load = Load(
            name, concurrency, figures["ok"], figures["rps"], figures["p50_ms"],
            figures["p99_ms"], figures["socket_errors"] + figures["non_2xx"], used,
        )
        if record:
            self.loads.append(load)
        return load

    def alternate(self, runs, rounds=2, seconds=None):
        """Runs each of `runs` (name -> a function taking `seconds` and
        `record`) `rounds` times, taking turns (A B A B ...), each for a
        share of the time, so that a machine that speeds up or slows down
        during the run weighs on both sides alike. Returns one merged load
        per name: requests summed, throughput and p50 averaged over the
        turns, the worst p99."""
        share = max((seconds or self.seconds) // rounds, 2)
        turns = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                turns[name].append(run(share))
        merged = {}
        for name, loads in turns.items():
            first = loads[0]
            ticks = [l.cpu_ticks for l in loads]
            load = Load(
                first.name, first.concurrency, sum(l.requests for l in loads),
                sum(l.rps for l in loads) / len(loads), sum(l.p50_ms for l in loads) / len(loads),
                max(l.p99_ms for l in loads), sum(l.failures for l in loads),
                None if None in ticks else sum(ticks),
            )
            self.loads.append(load)
            merged[name] = load
        return merged

    def raw(self, name, args, concurrency, seconds, record=True):
        out = subprocess.run(
            [self.driver, *args, str(concurrency), str(seconds)], check=True, capture_output=True, text=True
        ).stdout
        figures = json.loads(out)
        load = Load(
            name, concurrency, figures["requests"], figures["rps"], figures["p50_ms"],
            figures["p99_ms"], figures["errors"], figures["cpu_ticks"],
        )
        if record:
            self.loads.append(load)
        return load

    def driver_json(self, *args):
        out = subprocess.run([self.driver, *args], check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def listing(self, size, seeded, concurrency, seconds):
        """The first page and a deep one, through the API and raw, taking
        turns."""
        deep = f"/user?limit=50&after={seeded['deep_cursor']}"
        return self.alternate({
            "first": lambda t: self.wrk(f"GET /user?limit=50, {size} users, first page", "/user?limit=50",
                                        concurrency, t, record=False),
            "raw_first": lambda t: self.raw(f"list query raw, {size}, first page", ["list", self.db_uri, "-"],
                                            concurrency, t, record=False),
            "deep": lambda t: self.wrk(f"GET /user?limit=50, {size} users, deep page", deep, concurrency, t,
                                       record=False),
            "raw_deep": lambda t: self.raw(f"list query raw, {size}, deep page", ["list", self.db_uri, seeded["deep"]],
                                           concurrency, t, record=False),
        }, seconds=seconds)

    def import_users(self, count, batch):
        """POST /user/import in batches of `batch` users with a Werkzeug hash
        (hashlib's PBKDF2, which Werkzeug itself uses); users per second."""
        salt = "benchsalt"
        digest = hashlib.pbkdf2_hmac("sha256", b"Password@123", salt.encode(), 600_000).hex()
        password_hash = f"pbkdf2:sha256:600000${salt}${digest}"
        started = time.monotonic()
        for start in range(0, count, batch):
            users = [
                {"name": f"Imported {i}", "email": f"import-{self.run}-{i}@example.com",
                 "password_hash": password_hash}
                for i in range(start, start + batch)
            ]
            request = urllib.request.Request(
                f"{self.base}/user/import",
                data=json.dumps({"users": users}).encode(),
                headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                summary = json.load(response)["data"]
            if summary["created"] != batch:
                raise SystemExit(f"an import batch created {summary['created']} of {batch}")
        return count / (time.monotonic() - started)

    def migrate(self, binary, source, target):
        """`user-api migrate` from `source` into `target`; documents per second."""
        started = time.monotonic()
        done = subprocess.run(
            [binary, "migrate", "--from", source],
            env={**os.environ, "MONGO_URI": target, "RUST_LOG": "warn"},
            capture_output=True, text=True,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        self.log(done.stdout.strip())
        return seconds

    def finding(self, size, seeded, concurrency, seconds):
        """A prefix search that finds one user (the deep one's email) and a
        creation range holding the last tenth, through the API and raw,
        taking turns."""
        prefix = f"seed-{seeded['deep']}"
        since = datetime.fromtimestamp(int(seeded["deep"][:8], 16), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.alternate({
            "q": lambda t: self.wrk(f"GET /user?q=<one email>, {size} users", f"/user?q={prefix}", concurrency, t,
                                    record=False),
            "raw_q": lambda t: self.raw(f"prefix search raw, {size}", ["search", self.db_uri, prefix], concurrency, t,
                                        record=False),
            "since": lambda t: self.wrk(f"GET /user?created_after=<last tenth>, {size} users",
                                        f"/user?created_after={since}", concurrency, t, record=False),
            "raw_since": lambda t: self.raw(f"created_after raw, {size}", ["since", self.db_uri, seeded["deep"]],
                                            concurrency, t, record=False),
        }, seconds=seconds)

    def peak_rss_mb(self):
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def main():
    base, db_uri, driver, pid, api_key, cost, seconds, binary, bare_binary = sys.argv[1:10]
    cores = os.cpu_count() or 1
    bench = Bench(base, db_uri, driver, int(pid), api_key, int(cost), cores, int(seconds))
    s = bench.seconds

    bench.log("seeding 1,000 users through the driver")
    small = bench.driver_json("seed", db_uri, "1000")
    first = small["first"]

    bench.log("1. framework floor: GET /ping, the service and a bare poem app, taking turns")
    bare = subprocess.Popen([bare_binary, db_uri], stdout=subprocess.PIPE, text=True)
    try:
        bare_base = "http://" + bare.stdout.readline().split("listening on ")[1].strip()
        pings = bench.alternate({
            "api": lambda t: bench.wrk("GET /ping", "/ping", 32, t, record=False, pid=bench.pid),
            "bare": lambda t: bench.wrk("GET /ping (bare poem app)", "/ping", 32, t, record=False,
                                        base=bare_base, pid=bare.pid),
        })
        bench.log("2. reads: GET /user/{id} through the API, the same find_one in a bare poem app, "
                  "and raw, taking turns")
        reads = bench.alternate({
            "api": lambda t: bench.wrk("GET /user/{id} (API)", f"/user/{first}", 32, t, record=False,
                                       pid=bench.pid),
            "bare": lambda t: bench.wrk("GET /user/{id} (bare poem app)", f"/user/{first}", 32, t,
                                        record=False, base=bare_base, pid=bare.pid),
            "raw": lambda t: bench.raw("find_one by _id (raw driver)", ["read", db_uri, first], 32, t,
                                       record=False),
        })
    finally:
        bare.kill()
        bare.wait()
    ping, bare_ping = pings["api"], pings["bare"]
    api_read, bare_read, raw_read = reads["api"], reads["bare"], reads["raw"]
    if os.environ.get("BENCH_ONLY") == "cpu":
        # A quick look while profiling: the CPU rows alone.
        for load in bench.loads:
            print(load.row())
        print(f"CPU per read ratio {api_read.cpu_us / raw_read.cpu_us:.2f} "
              f"(bare poem app {bare_read.cpu_us / raw_read.cpu_us:.2f}), "
              f"CPU per ping ratio {ping.cpu_us / bare_ping.cpu_us:.2f}")
        return

    bench.log("5a. listing with 1,000 users: first page and a deep page")
    list_small = bench.listing("1k", small, 4, s)
    bench.log("5c. finding among 1,000 users: a prefix search and a creation range")
    find_small = bench.finding("1k", small, 4, s)

    bench.log(f"3. creates: one bcrypt hash at cost {cost}, then POST /user at saturation")
    hash_ms = bench.driver_json("hash", cost, "5")["median_ms"]
    limit = cores / (hash_ms / 1000)
    creates = bench.wrk("POST /user", "/user", 4 * cores, 2 * s, mode="create")

    bench.log("4. starvation: GET /user/{id} idle, then while POST /user saturates hashing")
    idle = bench.wrk("GET /user/{id}, idle", f"/user/{first}", 8, s)
    finish_creates = bench.wrk("POST /user (saturating)", "/user", 4 * cores, s + 4, mode="create", background=True)
    time.sleep(2)
    loaded = bench.wrk("GET /user/{id}, during creates", f"/user/{first}", 8, s)
    finish_creates()

    bench.log("seeding up to 100,000 users through the driver")
    created = sum(load.requests for load in bench.loads if load.name.startswith("POST"))
    big = bench.driver_json("seed", db_uri, str(100_000 - 1000 - created))
    bench.log("5b. listing with 100,000 users: first page and a deep page")
    slow = max(s, 12)
    list_big = bench.listing("100k", big, 1, slow)
    bench.log("5d. finding among 100,000 users: a prefix search and a creation range")
    find_big = bench.finding("100k", big, 1, slow)

    bench.log("6. import: 10,000 users with hashes through POST /user/import, then raw insert_many")
    imported = bench.import_users(10_000, 1000)
    raw_inserted = bench.driver_json("insert", db_uri, "10000")["per_second"]

    bench.log("7. migrate: 100,000 Flask documents with `user-api migrate`, then a raw copy")
    server = db_uri.rsplit("/", 1)[0]
    legacy, migrated, copied = (f"{server}/bench_{name}" for name in ("legacy", "migrated", "copied"))
    bench.driver_json("seed-legacy", legacy, "100000")
    migrate_rate = 100_000 / bench.migrate(binary, legacy, migrated)
    copy_rate = bench.driver_json("copy", legacy, copied)["per_second"]

    rss = bench.peak_rss_mb()
    failures = sum(load.failures for load in bench.loads)

    def verdict(ok):
        return "met" if ok else "**missed**"

    read_cpu = api_read.cpu_us / raw_read.cpu_us
    ping_cpu = ping.cpu_us / bare_ping.cpu_us
    ratios = [
        (f"CPU per read: GET /user/{{id}} ÷ raw driver find_one ({api_read.cpu_us:,.0f} vs "
         f"{raw_read.cpu_us:,.0f} µs)", read_cpu, "<= 1.3", read_cpu <= 1.3),
        (f"CPU per read, framework floor: bare poem app's GET /user/{{id}} ÷ raw driver "
         f"({bare_read.cpu_us:,.0f} vs {raw_read.cpu_us:,.0f} µs)", bare_read.cpu_us / raw_read.cpu_us,
         "(poem and HTTP alone)", True),
        (f"CPU per read: GET /user/{{id}} ÷ bare poem app's ({api_read.cpu_us:,.0f} vs "
         f"{bare_read.cpu_us:,.0f} µs)", api_read.cpu_us / bare_read.cpu_us, "(the service's own share)",
         True),
        (f"CPU per ping: GET /ping ÷ bare poem app ({ping.cpu_us:,.1f} vs {bare_ping.cpu_us:,.1f} µs)",
         ping_cpu, "<= 1.5", ping_cpu <= 1.5),
        ("Reads: API ÷ raw driver (throughput, 32 connections)", api_read.rps / raw_read.rps, ">= 0.85",
         api_read.rps / raw_read.rps >= 0.85),
        (f"Creates: POST /user ÷ bcrypt limit ({cores} cores ÷ {hash_ms:.0f} ms = {limit:.2f}/s)",
         creates.rps / limit, ">= 0.85", creates.rps / limit >= 0.85),
        ("Starvation: read p99 during creates ÷ idle read p99", loaded.p99_ms / idle.p99_ms, "<= 3",
         loaded.p99_ms / idle.p99_ms <= 3),
    ]
    for page in ("first", "deep"):
        api_ratio = list_big[page].p50_ms / list_small[page].p50_ms
        raw_ratio = list_big[f"raw_{page}"].p50_ms / list_small[f"raw_{page}"].p50_ms
        ratios.append((f"Listing, {page} page: p50 at 100k ÷ p50 at 1k (API)", api_ratio, "<= 1.5", api_ratio <= 1.5))
        ratios.append((f"Listing, {page} page: same query, raw driver", raw_ratio, "(the database alone)", True))
    ratios.append((f"Import: POST /user/import ÷ raw insert_many ({imported:,.0f} vs {raw_inserted:,.0f} users/s)",
                   imported / raw_inserted, ">= 0.5", imported / raw_inserted >= 0.5))
    ratios.append((f"Migrate: user-api migrate ÷ raw copy ({migrate_rate:,.0f} vs {copy_rate:,.0f} documents/s)",
                   migrate_rate / copy_rate, ">= 0.5", migrate_rate / copy_rate >= 0.5))
    for kind, name in (("q", "Prefix search (q)"), ("since", "Creation range (created_after)")):
        api_ratio = find_big[kind].p50_ms / find_small[kind].p50_ms
        raw_ratio = find_big[f"raw_{kind}"].p50_ms / find_small[f"raw_{kind}"].p50_ms
        ratios.append((f"{name}: p50 at 100k ÷ p50 at 1k (API)", api_ratio, "(as the database)", True))
        ratios.append((f"{name}: same query, raw driver", raw_ratio, "(the database alone)", True))
    ratios.append(("Memory: peak RSS of the service (MB)", rss, "<= 50", rss <= 50))
    ratios.append(("Failed requests (socket errors, non-2xx)", failures, "0", failures == 0))

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [
        f"Measured {now} on {cores} cores ({cpu}), one run of `scripts/bench`: the release build, "
        f"SecantusDB on the same machine, bcrypt cost {cost}, wrk as the load generator.",
        "",
        "| Ratio | Value | Target | |",
        "|---|---|---|---|",
    ]
    for name, value, target, ok in ratios:
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {shown} | {target} | {verdict(ok) if target[0] in '<>0' else ''} |")
    lines += [
        "",
        "| Load | Connections | Requests | Req/s | p50 ms | p99 ms | CPU µs/req | Failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [load.row() for load in bench.loads]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
