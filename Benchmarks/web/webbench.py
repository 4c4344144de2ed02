#!/usr/bin/env python3
"""The web-server comparison of swift-laio, after the LAIO paper's design.

A SPECweb99-like static file set (four size classes requested 35/50/14/1 percent, Zipf
within a class, directories scaled with the set's size) is generated from a seed; wrk
(Benchmarks/web/specweb.lua) asks for it at several connection counts from laio-httpd with
every backend and network mode (and `auto` with io_uring blocked by seccomp, as under
Docker's default profile) and from nginx (one worker) with `aio threads` and with aio off
(and, given their binaries, from Hummingbird and Vapor serving files over NIO's file I/O and
over LAIO), in these regimes:

- cached: the whole set is read once first, so every request is a page-cache hit;
- disk-bound: the set's pages are dropped and the server runs in a memory cgroup whose cap
  is far below the set, so requests outside the hot few megabytes go to the disk. The disk
  reads during each run are counted from /proc/diskstats.
- slow: the set is served from a faultfs mount (tools/faultfs, FUSE) that delays every
  lookup, getattr, open and read by --slow-delay-ms, with no caching of names and
  attributes and the page cache on, under the same memory cgroup: storage like a network
  file system. The mount is made afresh for each server (which empties its page cache), and
  faultfs's counts give the delayed calls per request and from them the load bound.
- crowd: K (32, 256, 1,024) connections ask for the files of slow/, a faultfs mount with
  every lookup, getattr, open and read waiting 100 ms and no caching at all, while cached
  files of fast/ beside it are asked for by a paced probe (one every 10 ms) and then by a
  heavy load (wrk, 4 connections). Slow requests/s are set against the mount's own capacity
  for the same crowd ("raw": K threads opening, fstat-ing, reading and closing the files,
  Benchmarks/web/crowd.c) and against K / T1; fast latencies against their values without
  the crowd; the server's threads and resident memory at the peak, and how long its threads
  take to come back to their idle count (a continuation for every call that blocks). A fresh server for each point.

Servers alternate within each run; with --runs N each figure is the median of N runs and
each ratio the median of the per-run ratios. Results (JSON, CSV), a Markdown report and
SVG plots go into the results folder. Called by scripts/bench, which builds and installs
first; `--help` lists the options.
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLASS_MIX = [0.35, 0.50, 0.14, 0.01]          # share of requests per size class
CLASS_UNIT = [102.4, 1024, 10240, 102400]     # file k (1...9) of class c is k * unit bytes
FILES_PER_CLASS = 9
PATTERN = "/dir%05d/class%d_%d"
# laio-httpd/VARIANT/NETWORK: VARIANT is a backend word or one of VARIANTS.
LAIO_CONFIGS = [("auto", "nonblocking"), ("auto-kernel-workers", "nonblocking"), ("auto", "laio"),
                ("auto-no-io-uring", "nonblocking"), ("uring", "nonblocking"), ("uring", "laio"),
                ("threads", "nonblocking"), ("threads", "laio"), ("blocking", "nonblocking")]
NGINX_CONFIGS = ["nginx-aio-threads", "nginx-aio-off"]
# laio-hummingbird (Integrations/LAIOHummingbird): Hummingbird 2's FileMiddleware over its own
# LocalFileSystem (NIOFileSystem, a NIOThreadPool hop per call) and over LAIOFileSystem (auto).
HUMMINGBIRD_CONFIGS = ["hummingbird-nio", "hummingbird-laio"]
# laio-vapor (Integrations/LAIOVapor): Vapor 4's own FileMiddleware (NIOFileSystem, a
# NIOThreadPool hop per call) and LAIOFileMiddleware (auto).
VAPOR_CONFIGS = ["vapor-nio", "vapor-laio"]
# laio-flash (Examples/flash): the async Flash server, a task per connection and every call an
# await on one Context.executor (auto).
FLASH_CONFIGS = ["laio-flash/auto"]
REGIMES = ["cached", "disk", "slow", "crowd"]
# Variants that are not a backend word: the backend they run and what they show.
VARIANTS = {
    "auto-no-io-uring": ("auto", "`auto` under tools/no-io-uring (io_uring_setup fails with EPERM, as under "
                                 "Docker's default seccomp profile): the configuration every Docker user gets"),
    "auto-kernel-workers": ("auto", "`auto` with --file-workers 4 × CPUs, the kernel's own bound of io-wq's "
                                    "workers for file work (min(ring entries, 4 × CPUs)) instead of the "
                                    "library's default (64, or 4 × CPUs if more)"),
}
SLOW_ONLY = {"laio-httpd/auto-kernel-workers/nonblocking"}     # measured in the slow regime only
# --quick's slow regime: the servers its targets compare.
QUICK_SLOW = ["laio-httpd/auto/nonblocking", "laio-httpd/auto-no-io-uring/nonblocking",
              "laio-httpd/blocking/nonblocking", "nginx-aio-threads"] + HUMMINGBIRD_CONFIGS + VAPOR_CONFIGS
SLOW_OPERATIONS = ["lookup", "getattr", "open", "read"]


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_names(selected):
    names = ([f"laio-httpd/{b}/{n}" for b, n in LAIO_CONFIGS] + NGINX_CONFIGS + HUMMINGBIRD_CONFIGS + VAPOR_CONFIGS
             + FLASH_CONFIGS)
    if not selected:
        return names
    unknown = [s for s in selected if s not in names]
    if unknown:
        sys.exit(f"webbench: unknown server(s) {', '.join(unknown)}; the servers are: {', '.join(names)}")
    return [n for n in names if n in selected]


def regime_servers(servers, regime, quick, chosen):
    """The servers measured in a regime: the slow-only ones there alone; --quick's slow
    regime only the ones its targets compare (unless --servers chose)."""
    names = [n for n in servers if regime == "slow" or n not in SLOW_ONLY]
    if regime == "slow" and quick and not chosen:
        names = [n for n in names if n in QUICK_SLOW]
    return names


def kernel_file_workers():
    """io-wq's default bound for file work: min(ring entries (256 here), 4 x CPUs)."""
    return min(256, 4 * (os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------
# The file set

def file_size(size_class, number):
    return int(round((number + 1) * CLASS_UNIT[size_class]))


def directory_bytes():
    return sum(file_size(c, k) for c in range(4) for k in range(FILES_PER_CLASS))


def zipf_cumulative(count):
    weights = [1.0 / (i + 1) for i in range(count)]
    total = sum(weights)
    cumulative, running = [], 0.0
    for w in weights:
        running += w / total
        cumulative.append(running)
    cumulative[-1] = 1.0
    return cumulative


def make_file_set(root, seed, directories):
    """Writes the set under root unless a set of the same seed and size is there already."""
    stamp = os.path.join(root, ".laio-web-set")
    wanted = f"seed={seed} directories={directories} version=1\n"
    if os.path.exists(stamp) and open(stamp).read() == wanted:
        return
    progress(f"generating the file set: {directories} directories, "
             f"{directories * directory_bytes() / 2**20:.0f} MiB, seed {seed}")
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    for d in range(directories):
        path = os.path.join(root, "dir%05d" % d)
        os.mkdir(path)
        for c in range(4):
            for k in range(FILES_PER_CLASS):
                size = file_size(c, k)
                block = random.Random(f"{seed}/{d}/{c}/{k}").randbytes(min(size, 8192))
                data = (block * (size // len(block) + 1))[:size]
                with open(os.path.join(path, "class%d_%d" % (c, k)), "wb") as f:
                    f.write(data)
    os.sync()
    with open(stamp, "w") as f:
        f.write(wanted)
    os.chmod(root, 0o755)


def set_files(root, directories):
    for d in range(directories):
        for c in range(4):
            for k in range(FILES_PER_CLASS):
                yield os.path.join(root, "dir%05d" % d, "class%d_%d" % (c, k))


def write_mix(path, directories):
    """The Lua tables specweb.lua draws requests from."""
    def lua_list(values):
        return "{" + ", ".join(f"{v:.9f}" for v in values) + "}"
    classes, running = [], 0.0
    for share in CLASS_MIX:
        running += share
        classes.append(running)
    classes[-1] = 1.0
    with open(path, "w") as f:
        f.write("return {\n")
        f.write(f'  pattern = "{PATTERN}",\n')
        f.write(f"  classes = {lua_list(classes)},\n")
        f.write(f"  directories = {lua_list(zipf_cumulative(directories))},\n")
        f.write(f"  files = {lua_list(zipf_cumulative(FILES_PER_CLASS))},\n")
        f.write("}\n")


def expected_response_bytes(directories):
    """Mean body size of the mix, to check wrk's byte counts against."""
    d = zipf_cumulative(FILES_PER_CLASS)
    file_share = [d[0]] + [d[i] - d[i - 1] for i in range(1, FILES_PER_CLASS)]
    return sum(CLASS_MIX[c] * file_share[k] * file_size(c, k) for c in range(4) for k in range(FILES_PER_CLASS))


def warm(root, directories):
    for path in set_files(root, directories):
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


def drop(root, directories):
    for path in set_files(root, directories):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------
# Disk reads and the memory cgroup

def cpu_seconds(pid):
    """User and system CPU time so far of a process (all its threads) and its children
    (nginx's worker), 0 for what is gone."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def disk_of(path):
    """The /proc/diskstats name of the block device holding path, or None."""
    device = os.stat(path).st_dev
    major, minor = os.major(device), os.minor(device)
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if int(fields[0]) == major and int(fields[1]) == minor:
                return fields[2]
    return None


def disk_reads(name):
    """(reads completed, bytes read) of the device so far."""
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if fields[2] == name:
                return int(fields[3]), int(fields[5]) * 512
    return 0, 0


class MemoryCage:
    """A memory cgroup (v1 memory controller, else v2) capping its processes' page cache."""

    def __init__(self, limit_bytes, regime):
        self.limit = limit_bytes
        self.path = None
        self.reason = None
        if os.geteuid() != 0:
            self.reason = f"not root: a memory cgroup cannot be made (run as root for the {regime} regime)"
            return
        base = None
        v1 = "/sys/fs/cgroup/memory"
        if os.path.exists(os.path.join(v1, "memory.limit_in_bytes")):
            own = "/"
            with open("/proc/self/cgroup") as f:
                for line in f:
                    _, controllers, where = line.rstrip("\n").split(":", 2)
                    if "memory" in controllers.split(","):
                        own = where
            base, self.limit_file, self.version = v1 + own, "memory.limit_in_bytes", 1
        elif os.path.exists("/sys/fs/cgroup/cgroup.controllers") and \
                "memory" in open("/sys/fs/cgroup/cgroup.controllers").read().split():
            base, self.limit_file, self.version = "/sys/fs/cgroup", "memory.max", 2
        else:
            self.reason = "no cgroup memory controller (neither v1 /sys/fs/cgroup/memory nor v2 memory)"
            return
        path = os.path.join(base, f"laio-webbench-{os.getpid()}-{regime}")
        try:
            os.mkdir(path)
            with open(os.path.join(path, self.limit_file), "w") as f:
                f.write(str(limit_bytes))
        except OSError as error:
            self.reason = f"cannot make a memory cgroup at {path}: {error}"
            try:
                os.rmdir(path)
            except OSError:
                pass
            return
        self.path = path

    def enter(self):
        """For preexec_fn: moves the calling (child) process into the cgroup."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def figures(self):
        """Current memory figures of the cgroup, by name."""
        result = {}
        if self.version == 1:
            for name in ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt"):
                with open(os.path.join(self.path, name)) as f:
                    result[name.split(".", 1)[1]] = int(f.read())
            with open(os.path.join(self.path, "memory.stat")) as f:
                for line in f:
                    key, value = line.split()
                    if key in ("cache", "rss"):
                        result[key] = int(value)
        else:
            with open(os.path.join(self.path, "memory.current")) as f:
                result["usage_in_bytes"] = int(f.read())
            with open(os.path.join(self.path, "memory.stat")) as f:
                for line in f:
                    key, value = line.split()
                    if key in ("file", "anon"):
                        result[{"file": "cache", "anon": "rss"}[key]] = int(value)
        return result

    def reset_peak(self):
        if self.version == 1:
            for name in ("memory.max_usage_in_bytes", "memory.failcnt"):
                try:
                    with open(os.path.join(self.path, name), "w") as f:
                        f.write("0")
                except OSError:
                    pass

    def remove(self):
        if self.path:
            for _ in range(50):
                try:
                    os.rmdir(self.path)
                    return
                except OSError:
                    time.sleep(0.1)


class SlowMount:
    """The slow regime's storage: faultfs (scripts/faultfs) mirroring the set on a mount point,
    with every lookup, getattr, open and read delayed. `-o cache=keep`: the kernel's page
    cache holds file data (under the servers' memory cgroup, as on the disk); entry and
    attribute timeouts stay faultfs's 0, so every path walk and stat goes to the storage."""

    def __init__(self, args, source):
        self.script = os.path.join(REPO, "scripts", "faultfs")
        self.source = source
        self.mountpoint = f"/var/tmp/laio-web-slow-{os.getpid()}"
        self.rule = f"{','.join(SLOW_OPERATIONS)} * delay={args.slow_delay_ms:g}ms"
        self.options = ["-o", "cache=keep", "--rule", self.rule]
        self.mounted = False

    def unusable(self):
        """None when faultfs can run here, else the reason (its exit status 77 or a failed build)."""
        output = subprocess.run([self.script, "build"], capture_output=True, text=True)
        if output.returncode == 0:
            return None
        message = " ".join(output.stderr.strip().splitlines()[-2:]) or f"status {output.returncode}"
        return (f"faultfs cannot be used here: {message}" if output.returncode == 77
                else f"faultfs did not build (status {output.returncode}): {message}")

    def mount(self):
        """A fresh mount: the kernel's inodes of the last one, and with them their cached
        pages, went away with its unmount, so the server starts with none of the set cached."""
        os.makedirs(self.mountpoint, exist_ok=True)
        output = subprocess.run([self.script, "mount", self.source, self.mountpoint] + self.options,
                                capture_output=True, text=True)
        if output.returncode != 0:
            raise RuntimeError(f"faultfs mount failed (status {output.returncode}): {output.stderr.strip()}")
        self.mounted = True

    def umount(self):
        """Always safe to call: succeeds when nothing is (left) mounted."""
        output = subprocess.run([self.script, "umount", self.mountpoint], capture_output=True, text=True)
        if output.returncode != 0:
            raise RuntimeError(f"faultfs umount of {self.mountpoint} failed: {output.stderr.strip()}")
        self.mounted = False

    def remove(self):
        try:
            self.umount()
            os.rmdir(self.mountpoint)
        except (OSError, RuntimeError) as error:
            progress(f"slow: {error}")

    def wait_idle(self, limit=15.0):
        """Waits until no open reaches the storage for 0.3 s (at most `limit` seconds): a
        server that waits for each call in its event loop is still answering the requests
        the last load left queued when it ended, and they would be counted in the next
        measurement, and slow it down. Returns the seconds waited."""
        started = time.monotonic()
        last = self.stats().get("open", (0, 0))[0]
        while time.monotonic() - started < limit:
            time.sleep(0.3)
            now = self.stats().get("open", (0, 0))[0]
            if now == last:
                break
            last = now
        return time.monotonic() - started

    def server_pid(self):
        """The faultfs process serving this mount, or None."""
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        arguments = f.read().split(b"\0")
                except OSError:
                    continue
                if arguments and os.path.basename(arguments[0]) == b"faultfs" and \
                        self.mountpoint.encode() in arguments:
                    return int(entry)
        return None

    def stats(self):
        """{operation: (calls, delayed)} so far (reading it costs one getattr of the root)."""
        counts = {}
        with open(os.path.join(self.mountpoint, ".faultfs-stats")) as f:
            for line in f:
                fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
                if "calls" in fields and "delayed" in fields:
                    counts[line.split()[0]] = (int(fields["calls"]), int(fields["delayed"]))
        return counts


# ---------------------------------------------------------------------------------------
# Servers

NGINX_CONF = """worker_processes 1;
daemon off;
master_process on;
error_log {work}/nginx-error.log;
pid {work}/nginx.pid;
{thread_pool}
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    {aio}
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    server {{ listen {host}:{port} reuseport; root {root}; }}
}}
"""


class Server:
    def __init__(self, name, args, work, root, port, cage=None, regime=""):
        self.name, self.port = name, port
        self.log = open(os.path.join(work, (regime + "-" if regime else "") + name.replace("/", "-") + ".log"), "w")
        if name.startswith("nginx"):
            conf = os.path.join(work, name + ".conf")
            threads = name == "nginx-aio-threads"
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(
                    work=work, host="127.0.0.1", port=port, root=root,
                    thread_pool="thread_pool default threads=32 max_queue=65536;" if threads else "",
                    aio="aio threads;" if threads else "aio off;"))
            command = [args.nginx, "-c", conf]
        elif name.startswith("hummingbird-"):
            file_io = name.split("-", 1)[1]
            command = [args.hummingbird, "--root", root, "--port", str(port), "--file-io", file_io]
            if file_io == "laio":
                command += ["--backend", "auto"]
        elif name.startswith("laio-flash/"):
            command = [args.flash, "--root", root, "--port", str(port), "--backend", name.split("/")[1]]
        elif name.startswith("vapor-"):
            file_io = name.split("-", 1)[1]
            command = [args.vapor, "--root", root, "--port", str(port), "--file-io", file_io]
            if file_io == "laio":
                command += ["--backend", "auto"]
        else:
            _, variant, network = name.split("/")
            backend, prefix, extra = VARIANTS.get(variant, (variant,))[0], [], []
            if variant == "auto-no-io-uring":
                prefix = [args.no_io_uring, "eperm"]
            elif variant == "auto-kernel-workers":
                extra = ["--file-workers", str(kernel_file_workers())]
            # Room for the load's connections: in `laio` mode the thread pool keeps a worker
            # per connection (--max-connections + 16), and their stacks count in the cgroup.
            most = max(args.connections + args.slow_connections + args.crowd_connections)
            command = prefix + [args.httpd, "--root", root, "--port", str(port), "--backend", backend,
                                "--network", network, "--max-connections", str(most + 64),
                                "--idle-timeout", "120"] + extra
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=cage.enter if cage else None)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited at start (status {self.process.returncode}); "
                                   f"see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not listen on port {port} within 10 s")
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def run_wrk(args, mix, port, connections, seconds, seed):
    env = dict(os.environ, LAIO_WEB_MIX=mix, LAIO_WEB_SEED=str(seed))
    command = [args.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
               "-s", os.path.join(HERE, "specweb.lua"), f"http://127.0.0.1:{port}/"]
    output = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in output.stdout.splitlines():
        if line.startswith("LAIO-WEB "):
            return json.loads(line[len("LAIO-WEB "):])
    raise RuntimeError(f"wrk gave no figures (status {output.returncode}): {output.stderr.strip()}")


# ---------------------------------------------------------------------------------------
# The runs

def measure(args, work, root, mix, regime, servers, cage, disk, results, slow=None):
    """Every server at every connection count of the regime, alternating, args.runs times.
    disk and slow: servers in the memory cgroup, their pages dropped before each one starts
    (disk: POSIX_FADV_DONTNEED on the set; slow: a fresh faultfs mount, unmounted after it)."""
    seconds = {"cached": args.seconds, "disk": args.disk_seconds, "slow": args.slow_seconds}[regime]
    counts = args.slow_connections if regime == "slow" else args.connections
    total = args.runs * len(servers) * len(counts)
    done = 0
    for run in range(1, args.runs + 1):
        order = servers if run % 2 else list(reversed(servers))   # alternate who goes first
        for name in order:
            try:
                done = measure_server(args, work, root, mix, regime, name, run, cage, disk, results, slow,
                                      seconds, counts, done, total)
            finally:
                if slow:
                    slow.umount()       # raises when the mount cannot be taken down: stop there


def measure_server(args, work, root, mix, regime, name, run, cage, disk, results, slow, seconds, counts, done, total):
    caged = regime in ("disk", "slow")
    if regime == "disk":
        drop(root, args.directories)
    served = root
    if slow:
        slow.umount()               # nothing left over from an interrupted run
        try:
            slow.mount()
        except RuntimeError as error:
            progress(f"{regime}: {error}")
            results.append({"regime": regime, "server": name, "run": run, "error": str(error)})
            return done + len(counts)
        served = slow.mountpoint
    cache_at_start = cage.figures().get("cache", 0) / 2**20 if caged else None
    storage_pid = slow.server_pid() if slow else None
    port = args.port + (0 if name.startswith("nginx") else 1)
    try:
        server = Server(name, args, work, served, port, cage if caged else None, regime)
    except RuntimeError as error:
        progress(f"{regime}: {error}")
        results.append({"regime": regime, "server": name, "run": run, "error": str(error)})
        return done + len(counts)
    try:
        for connections in counts:
            done += 1
            if caged:
                # Fill the cage's cache to its steady state before measuring.
                warmup = args.slow_warmup if slow else args.warmup
                if warmup > 0:
                    run_wrk(args, mix, port, connections, warmup, args.seed + 1000 + run)
                    if slow:
                        slow.wait_idle()
                cage.reset_peak()
            before = disk_reads(disk) if disk else (0, 0)
            calls_before = slow.stats() if slow else {}
            cpu_before = (cpu_seconds(server.process.pid), cpu_seconds(storage_pid) if slow else 0)
            figures = run_wrk(args, mix, port, connections, seconds, args.seed + run)
            cpu_after = (cpu_seconds(server.process.pid), cpu_seconds(storage_pid) if slow else 0)
            calls_after = slow.stats() if slow else {}
            after = disk_reads(disk) if disk else (0, 0)
            seconds_run = figures["duration_us"] / 1e6
            row = {
                "regime": regime, "server": name, "run": run, "connections": connections,
                "seconds": round(seconds_run, 3),
                "requests_per_s": figures["requests"] / seconds_run,
                "mb_per_s": figures["bytes"] / seconds_run / 1e6,
                "latency_p50_ms": figures["latency_p50_us"] / 1000,
                "latency_p90_ms": figures["latency_p90_us"] / 1000,
                "latency_p99_ms": figures["latency_p99_us"] / 1000,
                "latency_max_ms": figures["latency_max_us"] / 1000,
                "requests": figures["requests"], "bytes": figures["bytes"],
                "errors": sum(v for k, v in figures.items() if k.startswith("errors_")),
                "disk_reads": after[0] - before[0], "disk_mb": (after[1] - before[1]) / 1e6,
                # CPU used during the measurement, in cores.
                "server_cpu": (cpu_after[0] - cpu_before[0]) / seconds_run,
            }
            if caged:
                memory = cage.figures()
                row.update({"cgroup_cache_start_mb": cache_at_start,
                            "cgroup_cache_mb": memory.get("cache", 0) / 2**20,
                            "cgroup_rss_mb": memory.get("rss", 0) / 2**20,
                            "cgroup_failcnt": memory.get("failcnt", 0)})
                cache_at_start = None           # known for the first count only
            if slow:
                delayed = {op: calls_after.get(op, (0, 0))[1] - calls_before.get(op, (0, 0))[1]
                           for op in calls_after}
                total_delayed = sum(delayed.values())
                row.update({f"faultfs_{op}": delayed.get(op, 0) for op in SLOW_OPERATIONS})
                row["faultfs_delayed"] = total_delayed
                row["faultfs_cpu"] = (cpu_after[1] - cpu_before[1]) / seconds_run
                if figures["requests"] and total_delayed:
                    per_request = total_delayed / figures["requests"]
                    # A request's calls run one after another, each at least the delay: one
                    # connection completes at most 1 / (calls x delay) requests a second.
                    bound = connections / (per_request * args.slow_delay_ms / 1000)
                    row.update({"delayed_per_request": per_request, "load_bound": bound,
                                "bound_share": row["requests_per_s"] / bound})
            if row["errors"]:
                progress(f"  {name}: {row['errors']} errors ({figures})")
            results.append(row)
            progress(f"{regime} [{done}/{total}] run {run} {name} c={connections}: "
                     f"{row['requests_per_s']:.0f} req/s, {row['mb_per_s']:.1f} MB/s, "
                     f"p99 {row['latency_p99_ms']:.1f} ms"
                     + (f", {row['disk_reads']} disk reads" if regime == "disk" else "")
                     + (f", {row['delayed_per_request']:.2f} delayed calls/request, "
                        f"{row['bound_share']:.2f} of the load bound {row['load_bound']:.0f}"
                        if "load_bound" in row else ""))
    finally:
        status = server.stop()
        if status not in (0, None) and not name.startswith("nginx"):
            progress(f"  {name} exited with status {status}; see {server.log.name}")
    return done


# ---------------------------------------------------------------------------------------
# The crowd regime: K slow requests at once beside cheap ones

CROWD_FILES = 64            # files in slow/ and in fast/, 4 KiB each
CROWD_FILE_BYTES = 4096
# The servers of the crowd regime, and those whose targets it checks.
CROWD_SERVERS = ["laio-httpd/auto/nonblocking", "laio-httpd/uring/nonblocking", "laio-httpd/threads/nonblocking",
                 "laio-httpd/auto-no-io-uring/nonblocking", "laio-httpd/blocking/nonblocking",
                 "nginx-aio-threads"] + HUMMINGBIRD_CONFIGS + VAPOR_CONFIGS
CROWD_TARGETED = ["laio-httpd/auto/nonblocking", "laio-httpd/uring/nonblocking", "laio-httpd/threads/nonblocking",
                  "laio-httpd/auto-no-io-uring/nonblocking"]
# laio-httpd/blocking waits for every call in its one event-loop thread: it is measured as the
# floor at small crowds only.
CROWD_BLOCKING_MOST = 32
CROWD_BLOCKING_REASON = (f"laio-httpd/blocking/nonblocking is measured at K <= {CROWD_BLOCKING_MOST} only: it waits "
                         "for every call in its one event-loop thread, so it completes about 1/T1 slow requests a "
                         "second whatever K is and every fast request waits behind slow ones; a larger crowd would "
                         "only lengthen the run (it serves the queued requests one after another)")


def crowd_servers(servers, counts):
    """[(server, [K...])] of the crowd regime, and the notes on what was left out."""
    chosen, notes = [], []
    for name in servers:
        if name not in CROWD_SERVERS:
            continue
        ks = counts
        if name == "laio-httpd/blocking/nonblocking":
            ks = [k for k in counts if k <= CROWD_BLOCKING_MOST]
            notes.append(CROWD_BLOCKING_REASON + (" (no such K in this run)" if not ks else ""))
        if ks:
            chosen.append((name, ks))
    return chosen, notes


def process_figures(pid):
    """(threads, resident KiB) of a process and its children (nginx's worker), from
    /proc/PID/status; (0, 0) when it is gone."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    threads = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        threads += int(line.split()[1])
                    elif line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            continue
    return threads, rss


class PeakSampler:
    """Polls a server's threads and resident memory every 0.1 s in a thread, keeping the peaks."""

    def __init__(self, pid):
        import threading
        self.pid, self.threads, self.rss = pid, 0, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            threads, rss = process_figures(self.pid)
            self.threads, self.rss = max(self.threads, threads), max(self.rss, rss)
            self.done.wait(0.1)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.threads, self.rss


class CrowdMount(SlowMount):
    """The crowd regime's storage: faultfs mirroring 64 files of 4 KiB on ROOT/slow, with every
    lookup, getattr, open and read waiting --crowd-delay-ms, no caching at all (faultfs's
    defaults: no page cache, entry and attribute timeouts 0), and enough threads that the
    mirror is never the bound (one per caller waiting at once, and more)."""

    def __init__(self, args, base):
        self.script = os.path.join(REPO, "scripts", "faultfs")
        self.source = os.path.join(base, "source")
        self.root = os.path.join(base, "root")
        self.mountpoint = os.path.join(self.root, "slow")
        self.rule = f"{','.join(SLOW_OPERATIONS)} * delay={args.crowd_delay_ms:g}ms"
        threads = max(4096, 2 * max(args.crowd_connections) + 256)
        self.options = ["-o", f"max_threads={threads}", "--rule", self.rule]
        self.mounted = False
        for folder in (self.source, os.path.join(self.root, "fast"), self.mountpoint):
            os.makedirs(folder, exist_ok=True)
        for folder in (self.source, os.path.join(self.root, "fast")):
            for i in range(CROWD_FILES):
                path = os.path.join(folder, "f%02d" % i)
                if not os.path.exists(path) or os.path.getsize(path) != CROWD_FILE_BYTES:
                    with open(path, "wb") as f:
                        f.write(random.Random(f"{folder}/{i}").randbytes(CROWD_FILE_BYTES))
        subprocess.run(["chmod", "-R", "a+rX", base], check=True)     # nginx workers run as another user
        for folder in (self.source, os.path.join(self.root, "fast")):
            for i in range(CROWD_FILES):
                with open(os.path.join(folder, "f%02d" % i), "rb") as f:
                    f.read()

    def wait_idle(self, limit=15.0):
        """Waits until no call reaches the storage for 0.5 s (a server stopped with slow calls in
        flight leaves them to finish), at most `limit` seconds."""
        started = time.monotonic()
        def calls():
            stats = self.stats()
            return sum(stats.get(op, (0, 0))[0] for op in ("open", "read"))
        last = calls()
        while time.monotonic() - started < limit:
            time.sleep(0.5)
            now = calls()
            if now == last:
                break
            last = now
        return time.monotonic() - started


def run_crowd_tool(args, command, timeout):
    output = subprocess.run([args.crowd_tool] + [str(c) for c in command], capture_output=True, text=True,
                            timeout=timeout)
    lines = [line for line in output.stdout.splitlines() if line.startswith("{")]
    if output.returncode != 0 or not lines:
        raise RuntimeError(f"crowd {command[0]} failed (status {output.returncode}): {output.stderr.strip()}")
    return json.loads(lines[-1])


def run_fast_wrk(args, port, seconds):
    env = dict(os.environ, LAIO_WEB_FAST_FILES=str(CROWD_FILES))
    command = [args.wrk, "-t1", f"-c{args.crowd_heavy_connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", os.path.join(HERE, "fast.lua"), f"http://127.0.0.1:{port}/"]
    try:
        output = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 20)
    except subprocess.TimeoutExpired:
        # wrk waits for its connections when the server neither accepts nor answers (nginx's
        # one worker blocked in open(2) behind a full listen queue): none answered.
        return {"requests_per_s": 0.0, "requests": 0, "p50_ms": None, "p99_ms": None, "errors": 0,
                "note": f"wrk did not end within {seconds + 20:g} s (killed): none answered"}
    for line in output.stdout.splitlines():
        if line.startswith("LAIO-WEB "):
            figures = json.loads(line[len("LAIO-WEB "):])
            seconds_run = figures["duration_us"] / 1e6 or 1
            answered = figures["requests"] > 0     # else wrk's percentiles are 0: none answered
            return {"requests_per_s": figures["requests"] / seconds_run, "requests": figures["requests"],
                    "p50_ms": figures["latency_p50_us"] / 1000 if answered else None,
                    "p99_ms": figures["latency_p99_us"] / 1000 if answered else None,
                    "errors": sum(v for k, v in figures.items() if k.startswith("errors_"))}
    raise RuntimeError(f"wrk gave no figures (status {output.returncode}): {output.stderr.strip()}")


def run_probe(args, port, seconds):
    return run_crowd_tool(args, ["probe", port, args.crowd_probe_ms, seconds, "/fast/f", CROWD_FILES],
                          timeout=seconds + 30)


def build_crowd_tool(args):
    """Builds Benchmarks/web/crowd.c into the results' work folder; None, or the reason it failed."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return "no C compiler for Benchmarks/web/crowd.c"
    args.crowd_tool = os.path.join(args.work, "crowd")
    output = subprocess.run([cc, "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread", "-o",
                             args.crowd_tool, os.path.join(HERE, "crowd.c"), "-lm"], capture_output=True, text=True)
    if output.returncode != 0:
        return f"Benchmarks/web/crowd.c did not compile: {output.stderr.strip()}"
    return None


def raise_open_files():
    """The soft limit of open files up to the hard one (K connections on both sides, and K
    threads' files); returns the limit now in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def crowd_regime(args, servers, crowd):
    """Measures the crowd regime into `crowd` (a dict written to results.json)."""
    limit = raise_open_files()
    most = max(args.crowd_connections)
    if limit != -1 and limit < 2 * most + 512:
        crowd["skipped"] = f"open files limited to {limit}: too few for {most} connections on both sides"
        return
    reason = build_crowd_tool(args)
    mount = None
    if not reason:
        base = f"/var/tmp/laio-web-crowd-{os.getpid()}"
        mount = CrowdMount(args, base)
        reason = mount.unusable()
    if reason:
        crowd["skipped"] = reason
        if mount:
            shutil.rmtree(os.path.dirname(mount.root), ignore_errors=True)
        return
    chosen, notes = crowd_servers(servers, args.crowd_connections)
    crowd.update({"rule": mount.rule, "delay_ms": args.crowd_delay_ms, "connections": args.crowd_connections,
                  "phase_seconds": args.crowd_seconds, "baseline_seconds": args.crowd_baseline_seconds,
                  "probe_ms": args.crowd_probe_ms, "heavy_connections": args.crowd_heavy_connections,
                  "shrink_bound_s": args.crowd_shrink_bound, "open_files": limit, "notes": notes,
                  "raw": {}, "rows": []})
    try:
        mount.umount()
        try:
            mount.mount()
        except RuntimeError as error:
            crowd["skipped"] = f"faultfs could not be mounted: {error}"
            return
        progress(f"crowd regime: faultfs on {mount.mountpoint} ({' '.join(mount.options)}), "
                 f"{CROWD_FILES} cached files of {CROWD_FILE_BYTES} bytes beside it in {mount.root}/fast")
        # faultfs's threads for the largest crowd, started once (libfuse keeps them), so that
        # no measurement pays for starting them.
        run_crowd_tool(args, ["raw", mount.mountpoint, most, 1.5, 0, CROWD_FILES], timeout=60)
        mount.wait_idle()
        # The yardstick: one call's time alone, and K threads on the mount itself.
        t1 = run_crowd_tool(args, ["raw", mount.mountpoint, 1, args.crowd_t1_seconds, 0, CROWD_FILES],
                            timeout=args.crowd_t1_seconds + 30)
        crowd["t1_ms"] = t1["latency_p50_ms"]
        progress(f"crowd: T1 (open, fstat, read, close of one slow file, alone) = {crowd['t1_ms']:.0f} ms")
        warmup = max(1.0, 2 * crowd["t1_ms"] / 1000)
        for k in args.crowd_connections:
            mount.wait_idle()
            seconds = warmup + 2 * args.crowd_seconds
            raw = run_crowd_tool(args, ["raw", mount.mountpoint, k, seconds, warmup, CROWD_FILES], timeout=seconds + 60)
            raw["k_over_t1"] = k / (crowd["t1_ms"] / 1000)
            crowd["raw"][str(k)] = raw
            progress(f"crowd: raw K={k}: {raw['per_s']:.0f} files/s (K/T1 = {raw['k_over_t1']:.0f}/s), "
                     f"p50 {raw['latency_p50_ms']:.0f} ms, p99 {raw['latency_p99_ms'] or 0:.0f} ms")
        total = sum(len(ks) for _, ks in chosen)
        done = 0
        for name, ks in chosen:
            for k in ks:
                done += 1
                mount.wait_idle()
                row = {"server": name, "connections": k}
                try:
                    crowd_point(args, mount, name, k, k == max(ks), crowd, row)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    row["error"] = str(error)
                crowd["rows"].append(row)
                progress(f"crowd [{done}/{total}] {name} K={k}: " + (
                    f"not measured: {row['error']}" if "error" in row else
                    f"{row['slow_per_s']:.0f} slow req/s ({fmt(row.get('vs_raw'), 2)} of raw), fast p99 "
                    f"{fmt(row['probe_crowd'].get('p99_ms'), 1)} ms (alone {fmt(row['probe_alone'].get('p99_ms'), 1)}), "
                    f"heavy p99 {fmt(row['heavy_crowd']['p99_ms'], 1)} ms (alone {fmt(row['heavy_alone']['p99_ms'], 1)}), "
                    f"{row['peak_threads']} threads, {row['peak_rss_kib'] / 1024:.0f} MiB, "
                    f"shrink {row['shrink']}"))
    finally:
        try:
            mount.umount()
        except RuntimeError as error:
            progress(f"crowd: {error}")
        shutil.rmtree(os.path.dirname(mount.root), ignore_errors=True)


def crowd_point(args, mount, name, k, shrink, crowd, row):
    """One server (fresh) at one K: the fast probe and the heavy fast load alone, then beside a
    crowd of K connections asking for slow files; peaks of threads and memory; with `shrink`,
    how long the threads take to come back to their idle count once the crowd has gone."""
    port = args.port + 2
    server = Server(name, args, args.work, mount.root, port, None, f"crowd{k}")
    crowd_process = None
    try:
        pid = server.process.pid
        # One slow request alone: the server's own T1, and whatever the server starts for its
        # first slow call (a ring's first worker) is there before the idle count is taken.
        alone = max(2.0, 3 * crowd["t1_ms"] / 1000)
        one = run_crowd_tool(args, ["probe", port, alone * 1000, alone, "/slow/f", CROWD_FILES], timeout=alone + 30)
        row["server_t1_ms"] = one.get("answered_max_ms")
        row["probe_alone"] = run_probe(args, port, args.crowd_baseline_seconds)
        row["heavy_alone"] = run_fast_wrk(args, port, args.crowd_baseline_seconds)
        time.sleep(0.3)
        row["idle_threads"], row["idle_rss_kib"] = process_figures(pid)
        sampler = PeakSampler(pid)
        bound = args.crowd_connect_seconds + crowd["t1_ms"] / 1000 * 2 + 2 * args.crowd_seconds + 30
        crowd_process = subprocess.Popen([args.crowd_tool, "http", str(port), str(k), f"{bound:.0f}", "/slow/f",
                                          str(CROWD_FILES)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
        # Until every connection is up (at most --crowd-connect-seconds), then two of T1's
        # lengths so that every connection has a slow request in flight.
        import select
        ready = select.select([crowd_process.stdout], [], [], args.crowd_connect_seconds)[0]
        first = crowd_process.stdout.readline() if ready else ""
        row["all_connected"] = first.startswith("connected")
        time.sleep(max(1.0, 2 * crowd["t1_ms"] / 1000))
        a0 = time.monotonic()
        row["probe_crowd"] = run_probe(args, port, args.crowd_seconds)
        a1 = time.monotonic()
        row["heavy_crowd"] = run_fast_wrk(args, port, args.crowd_seconds)
        b1 = time.monotonic()
        crowd_process.send_signal(signal.SIGTERM)
        stdout, stderr = crowd_process.communicate(timeout=30)
        stopped = time.monotonic()
        row["peak_threads"], row["peak_rss_kib"] = sampler.stop()
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"the crowd gave no figures (status {crowd_process.returncode}): {stderr.strip()}")
        figures = json.loads(lines[-1])
        crowd_process = None

        def completed(start, end):
            first_bucket = int((start - figures["start"]) / figures["bucket_s"])
            last_bucket = int((end - figures["start"]) / figures["bucket_s"])
            return sum(figures["counts"][max(first_bucket, 0):max(last_bucket, 0)])
        row["slow_per_s"] = completed(a0, b1) / (b1 - a0)
        row["slow_per_s_probe"] = completed(a0, a1) / (a1 - a0)
        row["slow_per_s_heavy"] = completed(a1, b1) / (b1 - a1)
        row["slow_latency_p50_ms"] = figures["latency_p50_ms"]
        row["slow_latency_p99_ms"] = figures["latency_p99_ms"]
        row["slow_errors"] = figures["connect_errors"] + figures["read_errors"] + figures["bad_status"] + \
            figures["parse_errors"]
        row["slow_connected"] = figures["connected"]
        raw = crowd["raw"].get(str(k))
        if raw:
            row["raw_per_s"] = raw["per_s"]
            row["vs_raw"] = row["slow_per_s"] / raw["per_s"] if raw["per_s"] else None
        # K / T1 with the server's own T1 (its calls per request may differ from raw's), else
        # the storage's.
        t1_ms = row["server_t1_ms"] or crowd["t1_ms"]
        row["k_over_t1"] = k / (t1_ms / 1000)
        row["vs_k_over_t1"] = row["slow_per_s"] / row["k_over_t1"]
        if shrink:
            row["shrink"] = shrink_time(pid, row["idle_threads"], row["peak_threads"], stopped,
                                        args.crowd_shrink_bound)
        else:
            row["shrink"] = "measured at the largest K"
    finally:
        if crowd_process and crowd_process.poll() is None:
            crowd_process.kill()
            crowd_process.wait()
        server.stop()


def shrink_time(pid, idle, peak, since, bound):
    """How long after `since` the process's threads come back to `idle` (polled every 0.1 s,
    at most `bound` seconds): "12.3 s", "never grew", or "not within N s" with the count
    reached and when it last fell."""
    if peak <= idle:
        return "never grew"
    last, last_change = peak, 0.0
    while True:
        waited = time.monotonic() - since
        threads, _ = process_figures(pid)
        if threads <= idle:
            return f"{waited:.1f} s"
        if threads != last:
            last, last_change = threads, waited
        if waited >= bound:
            return f"not within {bound:g} s ({threads} threads from {last_change:.1f} s on, idle {idle})"
        time.sleep(0.1)


def crowd_table(crowd):
    header = ["K", "server", "crowd connected", "slow req/s", "raw req/s", "vs raw", "server T1 ms", "K/T1", "vs K/T1", "fast p50 ms alone",
              "fast p99 ms alone", "fast p50 ms crowd", "fast p99 ms crowd", "probes answered", "heavy p99 ms alone",
              "heavy p99 ms crowd", "heavy req/s crowd", "threads idle", "threads peak", "RSS MiB peak", "shrink"]
    lines = []
    for r in crowd.get("rows", []):
        if "error" in r:
            lines.append([str(r["connections"]), r["server"], "not measured: " + r["error"][:60]] + [""] * (len(header) - 3))
            continue
        pc, pa = r["probe_crowd"], r["probe_alone"]
        lines.append([str(r["connections"]), r["server"], f"{r['slow_connected']}/{r['connections']}",
                      fmt(r["slow_per_s"], 1), fmt(r.get("raw_per_s"), 1),
                      fmt(r.get("vs_raw"), 2), fmt(r.get("server_t1_ms")), fmt(r.get("k_over_t1")),
                      fmt(r.get("vs_k_over_t1"), 2),
                      fmt(pa.get("p50_ms"), 2), fmt(pa.get("p99_ms"), 2), fmt(pc.get("p50_ms"), 2),
                      fmt(pc.get("p99_ms"), 2), f"{pc['answered']}/{pc['due']}",
                      fmt(r["heavy_alone"]["p99_ms"], 2), fmt(r["heavy_crowd"]["p99_ms"], 2),
                      fmt(r["heavy_crowd"]["requests_per_s"]), str(r["idle_threads"]), str(r["peak_threads"]),
                      fmt(r["peak_rss_kib"] / 1024, 1), r["shrink"]])
    return header, lines


def crowd_targets(crowd, default):
    """The issue's targets on the servers they name: slow requests/s at least 0.9 x raw at
    K = 256 and 1,024; the probe's p99 under the crowd under 10 ms; the heavy load's p99 under
    the crowd at most 2 x its value alone. Each printed met or not met."""
    out = []
    rows = {(r["server"], r["connections"]): r for r in crowd.get("rows", [])}
    ks = crowd.get("connections", [])
    note = "" if default else " (not the default settings)"
    for server in CROWD_TARGETED:
        present = [k for k in ks if (server, k) in rows]
        if not present:
            continue
        figures = []
        for k in present:
            if "error" in rows[(server, k)]:
                figures.append(f"K={k}: not measured, not met")
            elif k in (256, 1024):
                r = rows[(server, k)]
                v = r.get("vs_raw")
                figures.append(f"K={k}: {fmt(v, 2)}, {'met' if v is not None and v >= 0.9 else 'not met'}")
        if figures:
            out.append(f"crowd: {server} slow req/s vs raw (target >= 0.9){note}: " + ", ".join(figures))
        figures = []
        for k in present:
            r = rows[(server, k)]
            if "probe_crowd" not in r:
                figures.append(f"K={k}: not measured, not met")
                continue
            v = r["probe_crowd"].get("p99_ms")
            figures.append(f"K={k}: {fmt(v, 2) + ' ms, met' if v is not None and v < 10 else (fmt(v, 2) + ' ms' if v is not None else 'more than 1% unanswered') + ', not met'}")
        out.append(f"crowd: {server} fast p99 under the crowd, paced probe (target < 10 ms){note}: " + ", ".join(figures))
        figures = []
        for k in present:
            r = rows[(server, k)]
            if "heavy_crowd" not in r:
                figures.append(f"K={k}: not measured, not met")
                continue
            alone, crowded = r["heavy_alone"]["p99_ms"], r["heavy_crowd"]["p99_ms"]
            v = crowded / alone if alone and crowded is not None else None
            figures.append(f"K={k}: " + ("none answered under the crowd, not met" if v is None else
                                         f"{v:.2f}x, {'met' if v <= 2 else 'not met'}"))
        out.append(f"crowd: {server} fast p99 under the crowd vs alone, heavy load (target <= 2x){note}: "
                   + ", ".join(figures))
    return out


def crowd_method(crowd, meta):
    if not crowd or "rows" not in crowd or "skipped" in crowd:
        return []
    return [f"- Crowd: a faultfs mount (`{crowd['rule']}`, no caching at all: no page cache, entry and attribute "
            f"timeouts 0; its threads, up to 4096, started by a crowd of the largest K before measuring) holds `slow/`, {CROWD_FILES} files of {CROWD_FILE_BYTES} bytes, "
            f"beside `fast/`, {CROWD_FILES} cached files of {CROWD_FILE_BYTES} bytes on the local disk, in one "
            f"document root. For each server (fresh at each point) and K in {', '.join(map(str, crowd['connections']))}: "
            "alone, one slow file (the server's T1, from which K/T1), then a paced probe asks for a fast file every "
            f"{crowd['probe_ms']:g} ms for "
            f"{crowd['baseline_seconds']:g} s, then wrk with {crowd['heavy_connections']} connections asks for fast "
            f"files for {crowd['baseline_seconds']:g} s; then K keep-alive connections ask for slow files one after "
            f"another (Benchmarks/web/crowd.c) and, once they are up, the probe runs for {crowd['phase_seconds']:g} s "
            f"and then wrk for {crowd['phase_seconds']:g} s beside them. Slow req/s: the crowd's responses during "
            "those two phases. Probe percentiles count unanswered probes as infinitely late. The yardstick, from the "
            "same run: raw, K threads each opening, fstat-ing, reading and closing the slow files in a loop on the "
            "same mount (crowd.c raw; its T1, one file alone, "
            f"{crowd.get('t1_ms', 0):.0f} ms), and K/T1, T1 being one request's time alone on that server. "
            "Threads and resident memory: /proc/PID/status (with children, for "
            "nginx's worker) every 0.1 s; idle is before the crowd, peak during it; shrink: how long the threads "
            f"take to come back to the idle count after the crowd is gone, polled up to {crowd['shrink_bound_s']:g} s, "
            "at each server's largest K. " + " ".join(crowd.get("notes", []))]


# ---------------------------------------------------------------------------------------
# Summaries: medians per point, ratios to nginx from the same runs

def summarize(results, regime, servers, connections):
    rows = [r for r in results if r.get("regime") == regime and "error" not in r]
    by = {}
    for r in rows:
        by.setdefault((r["server"], r["connections"]), {})[r["run"]] = r
    summary = []
    for c in connections:
        for name in servers:
            runs = by.get((name, c))
            if not runs:
                continue
            def med(key):
                return statistics.median(r[key] for r in runs.values())

            def ratio(peer, key):
                base = by.get((peer, c), {})
                values = [runs[k][key] / base[k][key] for k in runs if k in base and base[k][key] > 0]
                return statistics.median(values) if values else None
            summary.append({
                "regime": regime, "server": name, "connections": c, "runs": len(runs),
                "requests_per_s": med("requests_per_s"), "mb_per_s": med("mb_per_s"),
                "latency_p50_ms": med("latency_p50_ms"), "latency_p99_ms": med("latency_p99_ms"),
                "disk_reads_per_s": statistics.median(r["disk_reads"] / r["seconds"] for r in runs.values()),
                "errors": sum(r["errors"] for r in runs.values()),
                "vs_nginx_aio_threads": ratio("nginx-aio-threads", "requests_per_s"),
                "vs_nginx_aio_off": ratio("nginx-aio-off", "requests_per_s"),
                "mb_vs_nginx_aio_threads": ratio("nginx-aio-threads", "mb_per_s"),
                "p50_vs_nginx_aio_threads": ratio("nginx-aio-threads", "latency_p50_ms"),
                "p99_vs_nginx_aio_threads": ratio("nginx-aio-threads", "latency_p99_ms"),
                "vs_blocking": ratio("laio-httpd/blocking/nonblocking", "requests_per_s"),
                "p99_vs_blocking": ratio("laio-httpd/blocking/nonblocking", "latency_p99_ms"),
                "vs_auto_no_io_uring": ratio("laio-httpd/auto-no-io-uring/nonblocking", "requests_per_s"),
                "vs_hummingbird_nio": ratio("hummingbird-nio", "requests_per_s"),
                "p99_vs_hummingbird_nio": ratio("hummingbird-nio", "latency_p99_ms"),
                "vs_vapor_nio": ratio("vapor-nio", "requests_per_s"),
                "p99_vs_vapor_nio": ratio("vapor-nio", "latency_p99_ms"),
            })
            bounded = [r for r in runs.values() if "load_bound" in r]
            if bounded:
                summary[-1].update({
                    "delayed_per_request": statistics.median(r["delayed_per_request"] for r in bounded),
                    "load_bound": statistics.median(r["load_bound"] for r in bounded),
                    "bound_share": statistics.median(r["bound_share"] for r in bounded),
                    "server_cpu": statistics.median(r["server_cpu"] for r in bounded),
                    "faultfs_cpu": statistics.median(r["faultfs_cpu"] for r in bounded)})
    return summary


def fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if digits else f"{value:,.0f}"


def table(summary, regime):
    header = ["connections", "server", "req/s", "MB/s", "p50 ms", "p99 ms"]
    if regime == "disk":
        header.append("disk reads/s")
    if regime == "slow":
        header += ["delayed calls/req", "load bound req/s", "share of bound", "server CPU", "faultfs CPU"]
    header += ["req/s vs nginx aio threads", "vs nginx aio off", "p99 vs nginx aio threads"]
    if regime == "slow":
        header += ["req/s vs blocking"]
    header += ["req/s vs hummingbird-nio", "p99 vs hummingbird-nio", "req/s vs vapor-nio", "p99 vs vapor-nio"]
    lines = []
    for s in summary:
        line = [str(s["connections"]), s["server"], fmt(s["requests_per_s"]), fmt(s["mb_per_s"], 1),
                fmt(s["latency_p50_ms"], 2), fmt(s["latency_p99_ms"], 2)]
        if regime == "disk":
            line.append(fmt(s["disk_reads_per_s"]))
        if regime == "slow":
            line += [fmt(s.get("delayed_per_request"), 2), fmt(s.get("load_bound")), fmt(s.get("bound_share"), 2),
                     fmt(s.get("server_cpu"), 2), fmt(s.get("faultfs_cpu"), 2)]
        line += [fmt(s["vs_nginx_aio_threads"], 2), fmt(s["vs_nginx_aio_off"], 2), fmt(s["p99_vs_nginx_aio_threads"], 2)]
        if regime == "slow":
            line.append(fmt(s["vs_blocking"], 1))
        hummingbird = s["server"].startswith("hummingbird-")
        line += [fmt(s["vs_hummingbird_nio"] if hummingbird else None, 2),
                 fmt(s["p99_vs_hummingbird_nio"] if hummingbird else None, 2)]
        vapor = s["server"].startswith("vapor-")
        line += [fmt(s.get("vs_vapor_nio") if vapor else None, 2),
                 fmt(s.get("p99_vs_vapor_nio") if vapor else None, 2)]
        lines.append(line)
    return header, lines


def markdown_table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def text_table(header, lines):
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(header)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) for line in lines]
    return "\n".join(out)


def targets(summaries):
    """The issue's targets, at each connection count, from the same runs."""
    out = []
    def point(regime, server, c):
        for s in summaries.get(regime, []):
            if s["server"] == server and s["connections"] == c:
                return s
        return None
    for regime, checks in (
            ("disk", [("vs_blocking", 1.24, "its own blocking backend"),
                      ("vs_nginx_aio_threads", 1.0, "nginx aio threads")]),
            ("cached", [("vs_nginx_aio_threads", 0.9, "nginx aio threads"),
                        ("vs_nginx_aio_off", 0.9, "nginx aio off")])):
        counts = sorted({s["connections"] for s in summaries.get(regime, [])})
        for network in ("nonblocking", "laio"):
            server = f"laio-httpd/auto/{network}"
            for key, goal, peer in checks:
                figures = []
                for c in counts:
                    s = point(regime, server, c)
                    if s and s[key] is not None:
                        figures.append(f"c={c}: {s[key]:.2f}{'' if s[key] >= goal else ' (missed)'}")
                if figures:
                    out.append(f"{regime}: {server} vs {peer} (target >= {goal}): " + ", ".join(figures))
    # Hummingbird: its FileMiddleware over LAIOFileSystem against over its own LocalFileSystem,
    # requests/s at least 1.2 times, p99 no worse, cached and disk-bound (slow: reported).
    for regime in ("cached", "disk", "slow"):
        counts = sorted({s["connections"] for s in summaries.get(regime, [])})
        for key, goal, what, above in (("vs_hummingbird_nio", 1.2, "req/s", True),
                                       ("p99_vs_hummingbird_nio", 1.0, "p99", False)):
            figures = []
            for c in counts:
                s = point(regime, "hummingbird-laio", c)
                if s and s.get(key) is not None:
                    met = s[key] >= goal if above else s[key] <= goal
                    figures.append(f"c={c}: {s[key]:.2f}{'' if met or regime == 'slow' else ' (missed)'}")
            if figures:
                target = f"target {'>=' if above else '<='} {goal:g}" if regime != "slow" else "no target"
                out.append(f"{regime}: hummingbird-laio {what} vs hummingbird-nio ({target}): " + ", ".join(figures))
    # Vapor: LAIOFileMiddleware against Vapor's own FileMiddleware: requests/s at least 1.5
    # times cached, 1.2 times disk-bound and 10 times on slow storage; p99 no worse.
    for regime, goal in (("cached", 1.5), ("disk", 1.2), ("slow", 10.0)):
        counts = sorted({s["connections"] for s in summaries.get(regime, [])})
        for key, goal, what, above in (("vs_vapor_nio", goal, "req/s", True), ("p99_vs_vapor_nio", 1.0, "p99", False)):
            figures = []
            for c in counts:
                s = point(regime, "vapor-laio", c)
                if s and s.get(key) is not None:
                    met = s[key] >= goal if above else s[key] <= goal
                    figures.append(f"c={c}: {s[key]:.2f}{'' if met else ' (missed)'}")
            if figures:
                out.append(f"{regime}: vapor-laio {what} vs vapor-nio (target {'>=' if above else '<='} {goal:g}): "
                           + ", ".join(figures))
    # Slow storage: laziness pays when every call waits; `auto` (nonblocking) against the
    # servers that wait in their event loop, against the load bound, and against itself
    # without io_uring.
    server = "laio-httpd/auto/nonblocking"
    counts = sorted({s["connections"] for s in summaries.get("slow", [])})
    for key, goal, peer, above in (
            ("vs_blocking", 20.0, "req/s vs its own blocking backend", True),
            ("vs_nginx_aio_threads", 20.0, "req/s vs nginx aio threads", True),
            ("p99_vs_blocking", 1.0, "p99 vs its own blocking backend", False),
            ("p99_vs_nginx_aio_threads", 1.0, "p99 vs nginx aio threads", False),
            ("bound_share", 0.5, "req/s as a share of the load bound", True),
            ("vs_auto_no_io_uring", 1.0, "req/s vs auto without io_uring", True)):
        figures = []
        for c in counts:
            s = point("slow", server, c)
            if s and s.get(key) is not None:
                met = s[key] >= goal if above else s[key] < goal
                figures.append(f"c={c}: {s[key]:.2f}{'' if met else ' (missed)'}")
        if figures:
            out.append(f"slow: {server} {peer} (target {'>=' if above else '<'} {goal:g}): " + ", ".join(figures))
    return out


# ---------------------------------------------------------------------------------------
# SVG plots

# Each server has a look of its own, grouped by family: laio-httpd's backends in blues and
# purples (a marker per backend, solid lines for nonblocking sockets and dashed for laio
# sockets), nginx in reds with dotted lines, the frameworks in greens (Hummingbird) and
# browns (Vapor), solid over LAIO and dash-dotted over NIO. A server of no known family gets
# a grey of its own.
FAMILIES = [("laio-httpd", "laio-httpd/"), ("nginx", "nginx"), ("frameworks", "hummingbird-"),
            ("frameworks", "vapor-")]
HTTPD_BACKENDS = {  # backend word as laio-httpd's series names it: (colour, marker)
    "auto": ("#08306b", "circle"),
    "auto-no-io-uring": ("#2171b5", "open-circle"),
    "auto-kernel-workers": ("#6baed6", "open-square"),
    "uring": ("#6a3d9a", "square"),
    "threads": ("#00838f", "triangle"),
    "blocking": ("#9e9ac8", "diamond"),
}
FIXED_STYLES = {  # name: (colour, dash, marker)
    "nginx-aio-threads": ("#b2182b", "2 3", "cross"),
    "nginx-aio-off": ("#f46d43", "2 3", "plus"),
    "hummingbird-laio": ("#006d2c", "", "triangle-down"),
    "hummingbird-nio": ("#74c476", "8 3 2 3", "triangle-down"),
    "vapor-laio": ("#8c510a", "", "open-diamond"),
    "vapor-nio": ("#d8b365", "8 3 2 3", "open-diamond"),
}
OTHER_COLOURS = ["#525252", "#969696", "#252525", "#bdbdbd"]
OTHER_MARKERS = ["circle", "square", "triangle", "diamond", "cross", "plus"]


def family_of(name):
    for family, prefix in FAMILIES:
        if name.startswith(prefix):
            return family
    return "other"


def series_style(name, index_in_other=0):
    """(colour, dash, marker) of a server's series: distinct within every plot."""
    if name in FIXED_STYLES:
        return FIXED_STYLES[name]
    if name.startswith("laio-httpd/"):
        parts = name.split("/")
        backend = parts[1] if len(parts) > 1 else ""
        network = parts[2] if len(parts) > 2 else "nonblocking"
        colour, marker = HTTPD_BACKENDS.get(backend, ("#4292c6", "plus"))
        return colour, ("6 3" if network == "laio" else ""), marker
    if name.startswith("nginx"):
        return "#d6604d", "2 3", "open-square"
    colour = OTHER_COLOURS[index_in_other % len(OTHER_COLOURS)]
    marker = OTHER_MARKERS[index_in_other % len(OTHER_MARKERS)]
    return colour, "4 2 1 2", marker


def svg_marker(kind, x, y, colour, size=4.0):
    """An SVG marker centred on (x, y); the open kinds are white inside."""
    fill = "white" if kind.startswith("open-") else colour
    shape = kind.removeprefix("open-")
    stroke = f'stroke="{colour}" stroke-width="1.5"'
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}" fill="{fill}" {stroke}/>'
    if shape == "square":
        return (f'<rect x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size:.1f}" height="{2 * size:.1f}" '
                f'fill="{fill}" {stroke}/>')
    if shape in ("triangle", "triangle-down", "diamond"):
        d = size * 1.25
        points = {"triangle": [(x, y - d), (x + d, y + d * 0.8), (x - d, y + d * 0.8)],
                  "triangle-down": [(x, y + d), (x + d, y - d * 0.8), (x - d, y - d * 0.8)],
                  "diamond": [(x, y - d), (x + d, y), (x, y + d), (x - d, y)]}[shape]
        return (f'<polygon points="' + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + f'" fill="{fill}" {stroke}/>')
    if shape == "cross":
        return (f'<path d="M{x - size:.1f},{y - size:.1f}L{x + size:.1f},{y + size:.1f}'
                f'M{x - size:.1f},{y + size:.1f}L{x + size:.1f},{y - size:.1f}" stroke="{colour}" stroke-width="2"/>')
    return (f'<path d="M{x - size:.1f},{y:.1f}L{x + size:.1f},{y:.1f}M{x:.1f},{y - size:.1f}L{x:.1f},{y + size:.1f}" '
            f'stroke="{colour}" stroke-width="2"/>')


def text_width(text, size=12):
    """A generous estimate of a sans-serif text's width in pixels (no font metrics here)."""
    return int(len(text) * size * 0.58) + 4


def nice_ceiling(value):
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def svg_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def line_plot(path, title, series, x_values, y_label):
    """series: [(name, {x: y})]; x on a log2-spaced axis of the given values. Every server
    has its own colour, line and marker (series_style); the legend, outside the axes on the
    right, groups them by family and gives every name in full."""
    families = ["laio-httpd", "nginx", "frameworks", "other"]
    others = [name for name, _ in series if family_of(name) == "other"]
    styles = {name: series_style(name, others.index(name) if name in others else 0) for name, _ in series}
    legend = []  # (family heading or None, name or None)
    for family in families:
        names = [name for name, _ in series if family_of(name) == family]
        if names:
            legend.append((family, None))
            legend += [(None, name) for name in names]
    row = 18
    legend_w = max([text_width(name) for _, name in legend if name] + [text_width(f) for f, _ in legend if f] + [120])
    left, right, top, bottom = 80, 44 + legend_w + 16, 40, 50
    plot_w = 560
    width = left + plot_w + right
    height = max(420, top + 14 + len(legend) * row + bottom)
    plot_h = height - top - bottom
    top_value = nice_ceiling(max([y for _, points in series for y in points.values()] or [1]) * 1.05)
    xs = sorted(x_values)

    def x_of(x):
        return left + (plot_w * xs.index(x) / (len(xs) - 1) if len(xs) > 1 else plot_w / 2)

    def y_of(y):
        return top + plot_h * (1 - y / top_value)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="24" font-size="15" font-weight="bold">{svg_escape(title)}</text>']
    for i in range(6):
        value = top_value * i / 5
        y = y_of(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    for x in xs:
        parts.append(f'<text x="{x_of(x):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">connections</text>')
    parts.append(f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {top + plot_h / 2})">{svg_escape(y_label)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    for name, points in series:
        colour, dash, marker = styles[name]
        dash_attribute = f' stroke-dasharray="{dash}"' if dash else ""
        coordinates = [(x_of(x), y_of(points[x])) for x in xs if x in points]
        if len(coordinates) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attribute} points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates) + '"/>')
        for x, y in coordinates:
            parts.append(svg_marker(marker, x, y, colour))
    lx = left + plot_w + 16
    for index, (family, name) in enumerate(legend):
        ly = top + 14 + index * row
        if family:
            parts.append(f'<text x="{lx}" y="{ly}" font-weight="bold">{svg_escape(family)}</text>')
            continue
        colour, dash, marker = styles[name]
        dash_attribute = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 30}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"{dash_attribute}/>')
        parts.append(svg_marker(marker, lx + 15, ly - 4, colour))
        parts.append(f'<text x="{lx + 38}" y="{ly}">{svg_escape(name)}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def bar_plot(path, title, rows, labels, unit, log=False):
    """rows: [(server, value, ...)], one bar per value (labels name them), horizontal;
    log: a log10 axis (values far apart, as on slow storage)."""
    import math
    colours = ["#1f77b4", "#d62728", "#2ca02c"]
    bars = len(labels)
    bar, gap, right, top = 11, 10, 90, 44
    left = max(280, max([text_width(row[0]) for row in rows] + [0]) + 12)  # every name in full
    width = left + 490
    height = top + len(rows) * (bars * bar + gap) + 40
    plot_w = width - left - right
    values = [v for row in rows for v in row[1:] if v > 0] or [1]
    if log:
        low = 10 ** math.floor(math.log10(min(values)))
        high = 10 ** math.ceil(math.log10(max(values) * 1.05))
        ticks = [low * 10 ** i for i in range(round(math.log10(high / low)) + 1)]

        def x_of(v):
            return plot_w * (math.log10(max(v, low)) - math.log10(low)) / (math.log10(high) - math.log10(low))
    else:
        high = nice_ceiling(max(values) * 1.05)
        ticks = [high * i / 5 for i in range(6)]

        def x_of(v):
            return plot_w * v / high
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="10" y="24" font-size="15" font-weight="bold">{svg_escape(title)}</text>']
    for index, label in enumerate(labels):
        x = left + index * 110
        parts.append(f'<rect x="{x}" y="30" width="12" height="10" fill="{colours[index]}"/>'
                     f'<text x="{x + 16}" y="39">{svg_escape(label)}</text>')
    for value in ticks:
        x = left + x_of(value)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - 30}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle">{value:,.6g}{unit}</text>')
    for index, (name, *row) in enumerate(rows):
        y = top + index * (bars * bar + gap)
        parts.append(f'<text x="{left - 6}" y="{y + bars * bar / 2 + 4}" text-anchor="end">{svg_escape(name)}</text>')
        for offset, value in enumerate(row):
            w = x_of(value) if value > 0 else 0
            parts.append(f'<rect x="{left}" y="{y + offset * bar}" width="{w:.1f}" height="{bar - 1}" '
                         f'fill="{colours[offset]}"/>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + offset * bar + bar - 2}" font-size="10">'
                         f'{value:,.2f}</text>' if value < 100 else
                         f'<text x="{left + w + 4:.1f}" y="{y + offset * bar + bar - 2}" font-size="10">'
                         f'{value:,.0f}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


# ---------------------------------------------------------------------------------------
# Micro-benchmarks (laio-demo) and the machine

def run_demo(args, extra):
    """Runs laio-demo with extra arguments; returns (its text, its tables)."""
    tables = os.path.join(args.work, "demo-tables.json")
    command = [args.demo] + extra + ["--json", tables]
    progress("micro: " + " ".join(os.path.basename(command[0]) if i == 0 else a for i, a in enumerate(command[:-2])))
    output = subprocess.run(command, capture_output=True, text=True)
    sys.stderr.write(output.stderr)
    if output.returncode != 0:
        return f"laio-demo failed (status {output.returncode}):\n{output.stdout}{output.stderr}", []
    with open(tables) as f:
        return output.stdout, json.load(f)


def command_output(command):
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) * 1024
    return {"kernel": platform.release(), "cpu": model, "cores": os.cpu_count(),
            "memory_gib": round(memory / 2**30, 1)}


def main():
    parser = argparse.ArgumentParser(description="laio-httpd against nginx on a SPECweb99-like file set.")
    parser.add_argument("--httpd", required=True, help="the laio-httpd binary")
    parser.add_argument("--hummingbird", help="the laio-hummingbird binary (Integrations/LAIOHummingbird); "
                        "none skips the hummingbird servers")
    parser.add_argument("--vapor", help="the laio-vapor binary (Integrations/LAIOVapor); none skips the vapor servers")
    parser.add_argument("--demo", help="the laio-demo binary (micro-benchmarks); none skips them")
    parser.add_argument("--flash", help="the laio-flash binary (Examples/flash); default: beside --httpd; "
                        "none there skips it")
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke form")
    parser.add_argument("--runs", type=int, default=1, help="runs per figure (medians; default 1)")
    parser.add_argument("--seconds", type=int, help="seconds per cached measurement")
    parser.add_argument("--disk-seconds", type=int, help="seconds per disk-bound measurement")
    parser.add_argument("--slow-seconds", type=int, help="seconds per slow-storage measurement")
    parser.add_argument("--warmup", type=int, help="seconds of unmeasured load before each disk-bound measurement")
    parser.add_argument("--slow-warmup", type=int, help="seconds of unmeasured load before each slow-storage measurement")
    parser.add_argument("--connections", help="comma-separated connection counts (cached and disk-bound)")
    parser.add_argument("--slow-connections", help="comma-separated connection counts of the slow regime (default 64)")
    parser.add_argument("--slow-delay-ms", type=float, default=2.0,
                        help="the slow regime's delay of every lookup, getattr, open and read, ms (default 2)")
    parser.add_argument("--crowd-connections", help="comma-separated crowd sizes K of the crowd regime "
                        "(default 32,256,1024; --quick 256)")
    parser.add_argument("--crowd-delay-ms", type=float, default=100.0,
                        help="the crowd regime's delay of every lookup, getattr, open and read of slow/, ms (default 100)")
    parser.add_argument("--crowd-seconds", type=float, default=3.0,
                        help="seconds of the probe and of the heavy load beside the crowd (default 3 each)")
    parser.add_argument("--crowd-baseline-seconds", type=float, default=2.0,
                        help="seconds of the probe and of the heavy load alone, before the crowd (default 2 each)")
    parser.add_argument("--crowd-probe-ms", type=float, default=10.0, help="the paced probe's interval, ms (default 10)")
    parser.add_argument("--crowd-heavy-connections", type=int, default=4,
                        help="wrk's connections of the heavy fast load (default 4)")
    parser.add_argument("--crowd-shrink-bound", type=float, default=30.0,
                        help="how long to wait for a server's threads to come back to idle after the crowd, s (default 30)")
    parser.add_argument("--crowd-connect-seconds", type=float, default=10.0,
                        help="how long the crowd's connections may take to come up, s (default 10)")
    parser.add_argument("--crowd-t1-seconds", type=float, default=3.0,
                        help="how long T1 (one slow file alone) is measured, s (default 3)")
    parser.add_argument("--no-crowd", action="store_true", help="skip the crowd regime")
    parser.add_argument("--directories", type=int, help="directories in the set (about 5 MiB each)")
    parser.add_argument("--cap-mb", type=int, help="the memory cap of the disk-bound and slow regimes, MiB")
    parser.add_argument("--seed", type=int, default=1999)
    parser.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated, of cached, disk, slow, crowd (default all)")
    parser.add_argument("--no-io-uring", default=os.path.join(REPO, ".build", "no-io-uring"),
                        help="tools/no-io-uring, built (for auto-no-io-uring; default .build/no-io-uring)")
    parser.add_argument("--servers", help="comma-separated subset of the servers")
    parser.add_argument("--set-dir", help="where the file set lives, kept between runs (default "
                        "/var/tmp/laio-web-set-SEED-DIRECTORIES: a --quick run and a full one, perhaps at the "
                        "same time from two work trees, do not remake each other's set)")
    parser.add_argument("--results", help="results folder (default results/DATE-TIME)")
    parser.add_argument("--port", type=int, default=18480)
    parser.add_argument("--no-micro", action="store_true")
    args = parser.parse_args()
    # SIGTERM and SIGHUP end the run the way Ctrl-C does: the finally clauses stop the
    # server, unmount faultfs and remove the cgroups.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda n, _: sys.exit(128 + n))
    quick = args.quick
    args.seconds = args.seconds or (2 if quick else 3)
    args.disk_seconds = args.disk_seconds or (2 if quick else 5)
    args.slow_seconds = args.slow_seconds or (2 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.slow_warmup = args.slow_warmup if args.slow_warmup is not None else 1
    args.connections = [int(c) for c in (args.connections or ("32" if quick else "16,64,256")).split(",")]
    args.slow_connections = [int(c) for c in (args.slow_connections or "64").split(",")]
    args.directories = args.directories or (40 if quick else 200)
    args.cap_mb = args.cap_mb or 64
    regimes = [r for r in args.regimes.split(",") if r and not (r == "crowd" and args.no_crowd)]
    crowd_defaults = args.crowd_connections is None
    args.crowd_connections = [int(c) for c in (args.crowd_connections or ("256" if quick else "32,256,1024")).split(",")]
    crowd_defaults = crowd_defaults and not quick and all(
        getattr(args, key) == parser.get_default(key) for key in
        ("crowd_delay_ms", "crowd_seconds", "crowd_baseline_seconds", "crowd_probe_ms", "crowd_heavy_connections"))
    if any(k < 1 for k in args.crowd_connections) or args.crowd_delay_ms <= 0 or args.crowd_seconds <= 0 \
            or args.crowd_baseline_seconds <= 0 or args.crowd_probe_ms <= 0 or args.crowd_heavy_connections < 1:
        sys.exit("webbench: the crowd's connections, delay, seconds, probe interval and heavy connections must be positive")
    if any(r not in REGIMES for r in regimes):
        sys.exit(f"webbench: --regimes takes {', '.join(REGIMES)}")
    if args.slow_delay_ms <= 0:
        sys.exit("webbench: --slow-delay-ms must be more than 0")
    servers = server_names(args.servers.split(",") if args.servers else None)
    skipped = {}
    if not os.access(args.no_io_uring, os.X_OK):
        servers = [n for n in servers if "/auto-no-io-uring/" not in n]
        skipped["server laio-httpd/auto-no-io-uring/nonblocking"] = (
            f"{args.no_io_uring} is not built (scripts/bench builds it: cc -O2 -std=c11 -o .build/no-io-uring "
            "tools/no-io-uring.c)")
        progress(f"laio-httpd/auto-no-io-uring/nonblocking not measured: {skipped['server laio-httpd/auto-no-io-uring/nonblocking']}")
    args.no_io_uring = os.path.abspath(args.no_io_uring)
    if not (args.hummingbird and os.access(args.hummingbird, os.X_OK)):
        dropped = [n for n in servers if n in HUMMINGBIRD_CONFIGS]
        servers = [n for n in servers if n not in HUMMINGBIRD_CONFIGS]
        for name in dropped:
            skipped[f"server {name}"] = (f"no laio-hummingbird binary ({args.hummingbird or 'no --hummingbird'}; "
                                         "scripts/bench builds it in Integrations/LAIOHummingbird)")
            progress(f"{name} not measured: {skipped[f'server {name}']}")
    args.flash = args.flash or os.path.join(os.path.dirname(args.httpd), "laio-flash")
    if not os.access(args.flash, os.X_OK):
        for name in [n for n in servers if n in FLASH_CONFIGS]:
            skipped[f"server {name}"] = f"no laio-flash binary ({args.flash}; scripts/bench builds it)"
            progress(f"{name} not measured: {skipped[f'server {name}']}")
        servers = [n for n in servers if n not in FLASH_CONFIGS]
    if not (args.vapor and os.access(args.vapor, os.X_OK)):
        dropped = [n for n in servers if n in VAPOR_CONFIGS]
        servers = [n for n in servers if n not in VAPOR_CONFIGS]
        for name in dropped:
            skipped[f"server {name}"] = (f"no laio-vapor binary ({args.vapor or 'no --vapor'}; "
                                         "scripts/bench builds it in Integrations/LAIOVapor)")
            progress(f"{name} not measured: {skipped[f'server {name}']}")
    per_regime = {r: regime_servers(servers, r, quick, bool(args.servers)) for r in regimes}
    for tool in ("wrk", "nginx"):
        found = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
        if not found:
            sys.exit(f"webbench: {tool} is not installed (apt-get install {tool}); scripts/bench installs it when root")
        setattr(args, tool, found)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = os.path.abspath(args.results or os.path.join("results", stamp + ("-quick" if quick else "")))
    os.makedirs(folder, exist_ok=True)
    args.work = os.path.join(folder, "logs")
    os.makedirs(args.work, exist_ok=True)
    started = time.monotonic()

    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "versions": {"nginx": command_output([args.nginx, "-v"]), "wrk": command_output([args.wrk, "-v"]),
                         "fio": command_output(["fio", "--version"]),
                         "laio": command_output(["git", "-C", os.path.dirname(HERE), "describe", "--always", "--dirty"])},
            "quick": quick, "runs": args.runs, "seconds": args.seconds, "disk_seconds": args.disk_seconds,
            "slow_seconds": args.slow_seconds, "slow_connections": args.slow_connections,
            "slow_delay_ms": args.slow_delay_ms, "slow_servers": per_regime.get("slow", []),
            "warmup": args.warmup, "slow_warmup": args.slow_warmup, "connections": args.connections, "seed": args.seed,
            "directories": args.directories, "set_mib": round(args.directories * directory_bytes() / 2**20, 1),
            "mean_response_bytes": round(expected_response_bytes(args.directories)),
            "cap_mib": args.cap_mb, "servers": servers, "client": "wrk -t1 --timeout 10s, Benchmarks/web/specweb.lua"}

    micro = []
    if args.demo and not args.no_micro:
        text, tables = run_demo(args, ["--quick"] if quick else ["--quick", "--runs", "3"])
        micro.append({"title": "Backends on cached reads, cold reads and pipes (laio-demo)", "text": text, "tables": tables})
        text, tables = run_demo(args, ["--fio", "--quick"] if quick else ["--fio"])
        micro.append({"title": "Cold random 4 KiB reads against fio (laio-demo --fio)", "text": text, "tables": tables})

    root = args.set_dir or f"/var/tmp/laio-web-set-{args.seed}-{args.directories}"
    subprocess.run(["chmod", "a+rx", folder, args.work], check=True)
    mix = os.path.join(args.work, "mix.lua")
    disk = None
    if any(r != "crowd" for r in regimes):      # the crowd regime makes its own files
        make_file_set(root, args.seed, args.directories)
        os.chmod(os.path.dirname(os.path.abspath(root)), os.stat(os.path.dirname(os.path.abspath(root))).st_mode | 0o005)
        subprocess.run(["chmod", "-R", "a+rX", root], check=True)       # nginx workers run as another user
        write_mix(mix, args.directories)
        disk = disk_of(root)
    meta["disk"] = disk

    results = []
    crowd = {}
    for regime in regimes:
        servers = per_regime[regime]
        if regime == "crowd":
            progress(f"crowd regime: K = {', '.join(map(str, args.crowd_connections))} connections asking for slow "
                     f"files ({args.crowd_delay_ms:g} ms per call), beside a paced probe and a heavy load of fast files")
            crowd_regime(args, servers, crowd)
            crowd["default"] = crowd_defaults
            if "skipped" in crowd:
                skipped["crowd"] = crowd["skipped"]
                progress(f"crowd regime skipped: {crowd['skipped']}")
            continue
        if regime == "cached":
            progress(f"cached regime: warming {meta['set_mib']} MiB")
            warm(root, args.directories)
            measure(args, args.work, root, mix, "cached", servers, None, disk, results)
        elif regime == "disk":
            cage = MemoryCage(args.cap_mb << 20, "disk")
            if cage.reason or not disk:
                skipped["disk"] = cage.reason or f"no /proc/diskstats device for {root}"
                progress(f"disk-bound regime skipped: {skipped['disk']}")
                continue
            progress(f"disk-bound regime: servers in memory cgroup {cage.path} capped at {args.cap_mb} MiB, "
                     f"set of {meta['set_mib']} MiB dropped before each server, reads counted on {disk}")
            try:
                measure(args, args.work, root, mix, "disk", servers, cage, disk, results)
            finally:
                cage.remove()
        else:
            slow = SlowMount(args, root)
            reason = slow.unusable()
            cage = MemoryCage(args.cap_mb << 20, "slow") if not reason else None
            reason = reason or cage.reason
            if reason:
                skipped["slow"] = reason
                progress(f"slow-storage regime skipped: {reason}")
                if cage:
                    cage.remove()
                continue
            meta["slow_rule"] = slow.rule
            # The storage's far side has the set in its cache, so the delay is its only cost.
            progress(f"slow-storage regime: warming {meta['set_mib']} MiB of {root} (the storage's own cache), "
                     f"then for each server a fresh faultfs mount on {slow.mountpoint} "
                     f"(-o cache=keep, rule '{slow.rule}'), servers in memory cgroup {cage.path} "
                     f"capped at {args.cap_mb} MiB")
            warm(root, args.directories)
            try:
                measure(args, args.work, root, mix, "slow", servers, cage, disk, results, slow)
            finally:
                slow.remove()
                cage.remove()

    summaries = {regime: summarize(results, regime, per_regime[regime],
                                   args.slow_connections if regime == "slow" else args.connections)
                 for regime in regimes if regime not in skipped and regime != "crowd"}
    meta["elapsed_s"] = round(time.monotonic() - started)
    write_outputs(folder, meta, results, summaries, skipped, micro, crowd)
    latest = os.path.join(os.path.dirname(folder), "latest")
    if os.path.islink(latest) or not os.path.exists(latest):
        if os.path.islink(latest):
            os.remove(latest)
        os.symlink(os.path.basename(folder), latest)
    # A server that could not start, or a client that failed, fails the job; answers that
    # were not 2xx (a server's 503 under memory pressure, say) are reported, not fatal.
    failures = [r for r in results + crowd.get("rows", []) if "error" in r]
    if failures:
        progress(f"{len(failures)} measurements could not be made; see results.json")
        return 1
    return 0


def error_lines(results):
    """One line per measurement with socket errors or non-2xx answers, or that failed."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['regime']} run {r['run']} {r['server']}: not measured: {r['error']}")
        elif r.get("errors"):
            lines.append(f"{r['regime']} run {r['run']} {r['server']} at {r['connections']} connections: "
                         f"{r['errors']} socket errors or non-2xx answers of {r['requests']:,} requests")
    return lines


def write_outputs(folder, meta, results, summaries, skipped, micro, crowd):
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "summaries": summaries, "skipped": skipped,
                   "micro": micro, "crowd": crowd}, f, indent=1)
    if crowd.get("rows"):
        header, rows = crowd_table(crowd)
        with open(os.path.join(folder, "crowd.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    keys = ["regime", "server", "run", "connections", "seconds", "requests_per_s", "mb_per_s", "latency_p50_ms",
            "latency_p90_ms", "latency_p99_ms", "latency_max_ms", "requests", "bytes", "errors", "disk_reads",
            "disk_mb", "cgroup_cache_start_mb", "cgroup_cache_mb", "cgroup_rss_mb", "cgroup_failcnt"] + \
        [f"faultfs_{op}" for op in SLOW_OPERATIONS] + \
        ["faultfs_delayed", "delayed_per_request", "load_bound", "bound_share", "server_cpu", "faultfs_cpu", "error"]
    with open(os.path.join(folder, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for r in results:
            writer.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()})

    titles = {"cached": "cached (the set in the page cache)",
              "disk": f"disk-bound (server capped at {meta['cap_mib']} MiB over a {meta['set_mib']} MiB set)",
              "slow": f"slow storage (faultfs, {meta['slow_delay_ms']:g} ms per uncached lookup, getattr, open and read; "
                      f"server capped at {meta['cap_mib']} MiB)"}
    skip_titles = {"disk": "Disk-bound regime skipped", "slow": "Slow-storage regime skipped",
                   "crowd": "Crowd regime skipped"}
    report = [f"# swift-laio web benchmark, {meta['date']}", "",
              f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory_gib']} GiB, "
              f"Linux {meta['machine']['kernel']}. Peers: {meta['versions']['nginx']}, {meta['versions']['wrk']}, "
              f"{meta['versions']['fio']}. swift-laio {meta['versions']['laio']}.", "",
              "## Method", "",
              f"- File set: SPECweb99-like, {meta['directories']} directories of 36 files (four classes of nine: "
              f"0.1-0.9, 1-9, 10-90, 100-900 KB), {meta['set_mib']} MiB, generated from seed {meta['seed']}.",
              "- Requests: wrk, one thread, `Benchmarks/web/specweb.lua`: class 35/50/14/1 %, directory and file within "
              f"the class Zipf-distributed (mean response {meta['mean_response_bytes']:,} bytes).",
              f"- Connections {', '.join(map(str, meta['connections']))}; {meta['seconds']} s per cached point, "
              f"{meta['disk_seconds']} s per disk-bound point after {meta['warmup']} s of unmeasured load; "
              f"slow storage at {', '.join(map(str, meta['slow_connections']))} connections, {meta['slow_seconds']} s "
              f"per point after {meta['slow_warmup']} s of unmeasured load (and until the server is idle); "
              f"{meta['runs']} run(s), servers alternating; figures are medians over runs, ratios medians of per-run ratios.",
              "- Servers: laio-httpd with each backend and network mode (one event-loop thread), nginx with one worker "
              "(`sendfile on`, `aio threads` with its 32-thread pool, or `aio off`), the same files and client. "
              + " ".join(f"`laio-httpd/{v}`: {what}." for v, (_, what) in VARIANTS.items()
                         if any(f"/{v}/" in n for n in meta["servers"]))
              + (" The slow regime of --quick has only the servers its targets compare."
                 if meta["quick"] and meta["slow_servers"] else ""),
              "- Cached: the whole set is read first. Disk-bound: the set's pages are dropped (POSIX_FADV_DONTNEED) "
              f"before each server starts, and the server runs in a memory cgroup capped at {meta['cap_mib']} MiB, "
              f"so most of the set must come from the disk ({meta.get('disk')}); the disk reads during each "
              "measurement are counted from /proc/diskstats.",
              f"- Slow storage: the set is served from a faultfs mount (tools/faultfs, FUSE) with the rule "
              f"`{meta.get('slow_rule', '-')}`: every lookup, getattr, open and read that reaches the storage waits "
              f"{meta['slow_delay_ms']:g} ms, about what an uncached operation of NFS or SMB across a data-centre "
              "network costs with the server's own work, or a FUSE mount of object storage (1-10 ms; 2 ms is the low "
              "end). `-o cache=keep`: no caching of names and attributes (entry and attribute timeouts 0, so every "
              "path walk, stat and cached read asks the storage) and the kernel's page cache for data, under the "
              f"same {meta['cap_mib']}-MiB memory cgroup as the disk-bound regime. Each server gets a fresh mount "
              "(unmounting evicts the mount's inodes and with them their cached pages), unmounted after it; the "
              "source set is in the page cache, as the far side's cache. faultfs's counts around each measurement "
              "give the delayed calls per request; the load bound is connections / (delayed calls per request x "
              "delay): what the connections could complete if each request's calls ran one after another with "
              "nothing else in the way (readahead can overlap a request's reads, so it is not a hard ceiling). "
              "Server CPU and faultfs CPU: the cores each used during the measurement (/proc; the server's "
              "threads, io_uring's workers and nginx's worker included); wrk, faultfs and the server share the "
              f"{meta['machine']['cores']} cores."] + crowd_method(crowd, meta) + [""]
    for key, note in skipped.items():
        title = skip_titles.get(key) or (key.split(" ", 1)[1] + " not measured")
        report += [f"**{title}:** {note}", ""]
    lines = targets(summaries) + crowd_targets(crowd, crowd.get("default", False))
    if lines:
        report += ["## Targets", ""] + [f"- {line}" for line in lines] + [""]
    for regime, summary in summaries.items():
        if not summary:
            continue
        header, rows = table(summary, regime)
        report += [f"## {titles[regime]}", "", markdown_table(header, rows), ""]
        servers = list(dict.fromkeys(s["server"] for s in summary))
        counts = sorted({s["connections"] for s in summary})
        series = [(name, {s["connections"]: s["requests_per_s"] for s in summary if s["server"] == name}) for name in servers]
        top = counts[-1]
        if len(counts) > 1:
            line_plot(os.path.join(folder, f"throughput-{regime}.svg"), f"Requests/s against connections, {regime}",
                      series, counts, "requests/s")
        else:
            bounds = regime == "slow"
            bar_plot(os.path.join(folder, f"throughput-{regime}.svg"), f"Requests/s at {top} connections, {regime}",
                     [(s["server"], s["requests_per_s"], s.get("load_bound") or 0) if bounds else
                      (s["server"], s["requests_per_s"]) for s in summary],
                     ["requests/s", "load bound"] if bounds else ["requests/s"], "", log=bounds)
        bar_plot(os.path.join(folder, f"latency-{regime}.svg"), f"Latency at {top} connections, {regime}",
                 [(s["server"], s["latency_p50_ms"], s["latency_p99_ms"]) for s in summary if s["connections"] == top],
                 ["p50", "p99"], " ms")
        report += [f"![throughput, {regime}](throughput-{regime}.svg)", "", f"![latency, {regime}](latency-{regime}.svg)", ""]
        if regime == "disk":
            rows = [r for r in results if r.get("regime") == "disk" and "error" not in r]
            if rows:
                report += [f"Disk reads per measurement: median {statistics.median(r['disk_reads'] for r in rows):,.0f} "
                           f"(least {min(r['disk_reads'] for r in rows):,}); cgroup page cache at the end: median "
                           f"{statistics.median(r['cgroup_cache_mb'] for r in rows):.1f} MiB.", ""]
        if regime == "slow":
            rows = [r for r in results if r.get("regime") == "slow" and "error" not in r and r.get("faultfs_delayed")]
            if rows:
                starts = [r["cgroup_cache_start_mb"] for r in rows if r.get("cgroup_cache_start_mb") is not None]
                per_op = ", ".join(f"{op} {statistics.median(r[f'faultfs_{op}'] / r['requests'] for r in rows):.2f}"
                                   for op in SLOW_OPERATIONS)
                report += [f"Delayed calls per request, medians over the measurements: {per_op}. "
                           f"The cgroup's page cache when each server started (after the remount, which "
                           f"frees the mount's pages): median {statistics.median(starts or [0]):.1f} MiB, at most "
                           f"{max(starts or [0]):.1f}; at the end of a measurement: median "
                           f"{statistics.median(r['cgroup_cache_mb'] for r in rows):.1f} MiB.", ""]
    if crowd.get("rows") is not None and "skipped" not in crowd:
        header, rows = crowd_table(crowd)
        report += [f"## crowd (faultfs, {crowd['delay_ms']:g} ms per lookup, getattr, open and read of slow/; "
                   f"T1 {crowd.get('t1_ms', 0):.0f} ms)", "", markdown_table(header, rows), ""]
        report += [f"Raw at K={k}: {r['per_s']:.1f} files/s (K/T1 {r['k_over_t1']:.0f}/s), p50 "
                   f"{fmt(r['latency_p50_ms'])} ms, p99 {fmt(r['latency_p99_ms'])} ms." for k, r in crowd["raw"].items()]
        report += [""]
    errors = error_lines(results)
    if errors:
        report += ["## Errors", ""] + [f"- {line}" for line in errors] + [""]
    for part in micro:
        report += [f"## {part['title']}", "", "```", part["text"].rstrip(), "```", ""]
    report += [f"Raw figures: results.json and results.csv in this folder. Elapsed: {meta['elapsed_s']} s.", ""]
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write("\n".join(report))

    for part in micro:
        print(part["text"].rstrip() + "\n")
    for regime, summary in summaries.items():
        header, rows = table(summary, regime)
        print(f"The web servers, {titles[regime]}:")
        print(text_table(header, rows) + "\n")
    if crowd.get("rows") is not None and "skipped" not in crowd:
        header, rows = crowd_table(crowd)
        print(f"The web servers, crowd (faultfs, {crowd['delay_ms']:g} ms per lookup, getattr, open and read of "
              f"slow/; T1 {crowd.get('t1_ms', 0):.0f} ms):")
        print(text_table(header, rows) + "\n")
        for k, r in crowd["raw"].items():
            print(f"crowd: raw at K={k}: {r['per_s']:.1f} files/s (K/T1 {r['k_over_t1']:.0f}/s), "
                  f"p50 {fmt(r['latency_p50_ms'])} ms, p99 {fmt(r['latency_p99_ms'])} ms")
        for note in crowd.get("notes", []):
            print(f"crowd: {note}")
    for key, note in skipped.items():
        print(f"{(skip_titles.get(key) or (key.split(' ', 1)[1] + ' not measured')).lower()}: {note}")
    for line in error_lines(results):
        print(line)
    for line in targets(summaries) + crowd_targets(crowd, crowd.get("default", False)):
        print(line)
    print(f"\nresults: {folder}/report.md (and results.json, results.csv, *.svg)")


if __name__ == "__main__":
    sys.exit(main())
