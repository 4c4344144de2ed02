"""What the Python tests of swift-laio's HTTP servers share: Tests/httpd/test_httpd.py
(laio-httpd) and Integrations/Tests/file_servers.py (the Hummingbird and Vapor integrations).

- the ledger of checks: `check(condition, what)` counts a check and records a failure under
  the configuration named in `CURRENT` (set it as `harness.CURRENT = ...`); `skips` holds
  what could not run here, with its reason; `summary(name)` prints the tally and exits 1 on
  any failure;
- `backend_words(argv)`: the backends to run, from `--backends WORD,...` or the one list the
  library keeps (scripts/backends: BackendKind.allCases);
- `make_tree(prefix, extras)`: the tree both serve, in a fresh temporary folder;
- `ServerProcess`: a server binary started on port 0 and read until it says where it listens.

A test puts this folder on sys.path and imports it (`import harness`).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HUGE = 24 << 20

failures = []
skips = []
checks = 0
CURRENT = ""


def check(condition, what):
    """Counts a check; a false `condition` is a failure of the configuration in CURRENT.
    Returns `condition`, so that a test can stop where going on makes no sense."""
    global checks
    checks += 1
    if not condition:
        failures.append(f"[{CURRENT}] {what}")
        print(f"  FAIL {what}", flush=True)
    return condition


def summary(name, skipped_word="skipped"):
    """Prints `name: N checks, N failed, N skipped` with the skips and failures, and exits
    with status 1 on any failure, else 0."""
    print(f"{name}: {checks} checks, {len(failures)} failed, {len(skips)} {skipped_word}")
    for skip in skips:
        print(f"  skipped {skip}")
    for failure in failures:
        print(f"  FAILED {failure}")
    sys.exit(1 if failures else 0)


def backend_words(argv=()):
    """The backends of `--backends WORD,...` in argv, else every one the library keeps."""
    argv = list(argv)
    if "--backends" in argv[:-1]:
        return argv[argv.index("--backends") + 1].split(",")
    return subprocess.run([os.path.join(REPO, "scripts", "backends")], capture_output=True,
                          text=True, check=True).stdout.split()


def make_tree(prefix, extras=None):
    """A tree in a new temporary folder TOP: TOP/outside.txt, and TOP/root with index files
    (root and docs/), small files, an empty one, a 1 MB and a 24 MiB random file, symbolic
    links (same.txt stays inside; up.txt, relative, and abs.txt, absolute, point out of the
    root) and a FIFO. `extras(top, root)` adds a test's own files. Last, every modification
    time is set to the same instant an hour ago, three quarters past a whole second (so
    that conditional requests do not depend on the clock and a header must show the second,
    not round it up). Returns (top, root); removing TOP removes everything."""
    top = tempfile.mkdtemp(prefix=prefix)
    root = f"{top}/root"
    os.mkdir(root)
    texts = {"index.html": "<h1>root index</h1>\n", "docs/index.html": "docs index\n",
             "hello.txt": "hello, world\n", "empty.txt": ""}
    os.mkdir(f"{root}/docs")
    for name, text in texts.items():
        with open(f"{root}/{name}", "w") as f:
            f.write(text)
    with open(f"{root}/big.bin", "wb") as f:
        f.write(os.urandom(1_000_003))  # several 128 KiB chunks, an odd size
    with open(f"{root}/huge.bin", "wb") as f:
        f.write(os.urandom(HUGE))
    with open(f"{top}/outside.txt", "w") as f:
        f.write("outside the root\n")
    os.symlink("hello.txt", f"{root}/same.txt")
    os.symlink("../outside.txt", f"{root}/up.txt")
    os.symlink(f"{top}/outside.txt", f"{root}/abs.txt")
    os.mkfifo(f"{root}/fifo")
    if extras:
        extras(top, root)
    stamp = int(time.time()) - 3600 + 0.75
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp), follow_symlinks=False)
    return top, root


class ServerProcess:
    """A server started with `command` (which asks for port 0), its output read line by line
    until `started(self)` is true, the server exits (EOF) or `timeout` seconds pass; `port`
    is what its "listening on http://HOST:PORT/" line said, or None."""

    def __init__(self, command, started, timeout=20):
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.port = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"listening on http://[\d.]+:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
            if started(self):
                break

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self):
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Sends `sig` (if it still runs) and waits up to `timeout` s, then kills it.
        Returns (exit status, or None if it had to be killed; everything it printed)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
            return None, self.output() + (out or "")
        return self.process.returncode, self.output() + (out or "")

    def descriptors(self):
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def rss(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_ticks(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
