#!/usr/bin/env python3
"""laio-httpd's tests: the real binary on a loopback port, real clients.

curl for the protocol cases, raw sockets for malformed input, pipelining and slow
clients, wrk for a short load with zero errors; every backend that starts here, in both
network modes (blocking only with nonblocking sockets: laio mode refuses it, checked);
first the command line: --help, bad usage refused with exit status 2, and nonblocking as
the network mode when --network is not given.

Last, storage that fails or is slow, when given a tools/faultfs mount (without caching,
faultfs's default) with --faultfs MOUNT or LAIO_HTTPD_FAULTFS (otherwise a SKIP line says
so): the server's root on the mount, reads, opens, stats and lookups failing (500 for EIO,
403 for EACCES, 404 for ENOENT; a read failing mid-body closes the connection), the access
log, and the latency of fast files while other clients fetch files whose operations take
a second (bounded below that second for every backend but blocking, which is measured).

    python3 Tests/httpd/test_httpd.py BINARY [--quick] [--faultfs MOUNT [--faults-only]]

Exit status 0 when every check passed; the failures are listed otherwise. A backend that
cannot start here (io_uring blocked) is reported as skipped with its reason.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import harness  # noqa: E402  (the ledger of checks, the tree, the server process: Tests/harness)
from harness import check  # noqa: E402

BINARY = sys.argv[1]
QUICK = "--quick" in sys.argv
FAULTS_ONLY = "--faults-only" in sys.argv
FAULTFS = (sys.argv[sys.argv.index("--faultfs") + 1] if "--faultfs" in sys.argv[:-1] else None) \
    or os.environ.get("LAIO_HTTPD_FAULTFS") or None
BACKENDS = harness.backend_words()
COMBINATIONS = [(b, n) for b in BACKENDS for n in ["laio", "nonblocking"]]


def make_root():
    """harness.make_tree with laio-httpd's own cases: a directory without an index, a name
    that needs escaping, an unreadable file. Returns (top, root)."""
    def extras(top, root):
        os.mkdir(f"{root}/empty-dir")
        with open(f"{root}/a file%.css", "w") as f:
            f.write("body{}\n")
        secret = f"{root}/secret.txt"
        with open(secret, "w") as f:
            f.write("no\n")
        os.chmod(secret, 0)
    return harness.make_tree("laio-httpd-", extras)


class Server(harness.ServerProcess):
    """laio-httpd on `root`, started once it has printed its routes."""

    def __init__(self, root, backend, network, extra=()):
        super().__init__([BINARY, "--root", root, "--port", "0", "--backend", backend,
                          *(["--network", network] if network else []), *extra],
                         started=lambda server: server.lines[-1].startswith("laio-httpd: routes:"))

    def stop(self, sig=signal.SIGTERM):
        return super().stop(sig, timeout=15)


def curl(*args):
    r = subprocess.run(["curl", "-s", "--path-as-is", "-m", "10", *args], capture_output=True)
    return r.returncode, r.stdout


def status_of(server, path, *args):
    code, out = curl("-o", "/dev/null", "-w", "%{http_code}", *args, server.url(path))
    return int(out or b"0")


def raw(server, data, read_until_close=True, timeout=5.0):
    """Sends bytes on a fresh connection and returns everything the server sends back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_until_close:
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def responses(blob, heads=()):
    """Splits a byte stream into (status, headers, body) responses using Content-Length;
    the responses at the indices in `heads` answer HEAD requests (no body)."""
    out = []
    while blob:
        head, sep, rest = blob.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        length = int(headers.get("content-length", "0"))
        body_allowed = status not in (304,) and len(out) not in heads
        out.append((status, headers, rest[:length] if body_allowed else b""))
        blob = rest[length:] if body_allowed else rest
    return out


def protocol_cases(server, root):
    # Files, types, index, HEAD.
    code, body = curl(server.url("/hello.txt"))
    check(body == b"hello, world\n", "GET /hello.txt body")
    code, head = curl("-I", server.url("/hello.txt"))
    text = head.decode()
    check(" 200 " in text.split("\r\n")[0], "HEAD status 200")
    check("Content-Length: 13" in text, "HEAD Content-Length")
    check("Content-Type: text/plain; charset=utf-8" in text, "Content-Type of .txt")
    check(re.search(r"Last-Modified: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", text) is not None, "Last-Modified")
    check(curl(server.url("/"))[1] == b"<h1>root index</h1>\n", "index.html for /")
    check(curl(server.url("/docs/"))[1] == b"docs index\n", "index.html for /docs/")
    check(curl(server.url("/docs"))[1] == b"docs index\n", "index.html for /docs")
    check(status_of(server, "/empty-dir/") == 403, "a directory without index.html is 403")
    check(curl(server.url("/a%20file%25.css"))[1] == b"body{}\n", "percent-decoded path")
    code, head = curl("-I", server.url("/a%20file%25.css"))
    check(b"Content-Type: text/css" in head, "Content-Type of .css")
    code, body = curl(server.url("/big.bin"))
    with open(f"{root}/big.bin", "rb") as f:
        big = f.read()
    check(body == big, "a 1 MB file arrives whole")
    check(curl(server.url("/empty.txt"))[1] == b"", "an empty file")
    check(curl(server.url("/same.txt"))[1] == b"hello, world\n", "a symlink that stays under the root")
    # Not found, forbidden, escapes.
    check(status_of(server, "/missing") == 404, "404")
    check(status_of(server, "/hello.txt/x") == 404, "404 under a file")
    check(status_of(server, "/abs.txt") == 403, "absolute symlink out of the root is 403")
    check(status_of(server, "/up.txt") == 403, "relative symlink out of the root is 403")
    check(status_of(server, "/../outside.txt") == 403, "/.. above the root is 403")
    check(status_of(server, "/%2e%2e/outside.txt") == 403, "encoded .. above the root is 403")
    check(status_of(server, "/docs/../../outside.txt") == 403, ".. through a directory")
    check(status_of(server, "/docs/../hello.txt") == 200, ".. that stays inside")
    check(status_of(server, "/fifo") == 403, "a FIFO is not served (and does not hang)")
    if os.geteuid() != 0:
        check(status_of(server, "/secret.txt") == 403, "an unreadable file is 403")
    check(status_of(server, "/hello.txt%00.html") == 400, "%00 is 400")
    # Methods and versions.
    check(status_of(server, "/hello.txt", "-X", "POST") == 405, "POST is 405")
    code, head = curl("-i", "-X", "DELETE", server.url("/hello.txt"))
    check(b"Allow: GET, HEAD" in head, "405 has Allow")
    check(status_of(server, "/hello.txt", "--http1.0") == 200, "HTTP/1.0 GET")
    # Conditional and ranges.
    code, head = curl("-I", server.url("/hello.txt"))
    modified = re.search(rb"Last-Modified: ([^\r]+)", head).group(1).decode()
    check(status_of(server, "/hello.txt", "-H", f"If-Modified-Since: {modified}") == 304, "If-Modified-Since: 304")
    check(status_of(server, "/hello.txt", "-H", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT") == 200,
          "older If-Modified-Since: 200")
    code, body = curl("-r", "0-4", server.url("/hello.txt"))
    check(body == b"hello", "range 0-4")
    code, head = curl("-i", "-r", "7-", server.url("/hello.txt"))
    check(b" 206 " in head.split(b"\r\n")[0] and b"Content-Range: bytes 7-12/13" in head and head.endswith(b"world\n"),
          "range 7-: 206 with Content-Range")
    code, body = curl("-r", "-6", server.url("/hello.txt"))
    check(body == b"world\n", "suffix range -6")
    code, body = curl("-r", "100-200000", server.url("/big.bin"))
    check(body == big[100:200001], "range across body chunks")
    code, head = curl("-i", "-r", "50-60", server.url("/hello.txt"))
    check(b" 416 " in head.split(b"\r\n")[0] and b"Content-Range: bytes */13" in head, "unsatisfiable range: 416")
    code, body = curl("-r", "0-1,3-4", server.url("/hello.txt"))
    check(body == b"hello, world\n", "several ranges: the whole file")


def raw_cases(server):
    def first_status(blob):
        rs = responses(blob)
        return rs[0][0] if rs else None

    check(first_status(raw(server, b"GARBAGE\r\n\r\n")) == 400, "malformed request line: 400")
    check(first_status(raw(server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")) == 400, "header without colon: 400")
    check(first_status(raw(server, b"GET /hello.txt HTTP/1.1\r\n\r\n")) == 400, "HTTP/1.1 without Host: 400")
    check(first_status(raw(server, b"GET /hello.txt HTTP/2.0\r\nHost: x\r\n\r\n")) == 505, "HTTP/2.0: 505")
    check(first_status(raw(server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")) == 400, "obs-fold: 400")
    check(first_status(raw(server, b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n")) == 400, "control character in target: 400")
    check(first_status(raw(server, b"GET hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")) == 400, "target without /: 400")
    check(first_status(raw(server, b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n")) == 400, "bad percent escape: 400")
    long_target = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    check(first_status(raw(server, long_target)) == 414, "9000-byte target: 414")
    big_headers = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"b" * 17000 + b"\r\n\r\n"
    blob = raw(server, big_headers)
    check(first_status(blob) == 431, "17 KB of headers: 431")
    blob = raw(server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    check(first_status(blob) == 501, "Transfer-Encoding: 501")
    # Errors that break framing close the connection (raw() returned because of EOF).
    blob = raw(server, b"BAD\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    check(len(responses(blob)) == 1, "after a 400 the connection closes")
    # 404 keeps the connection; pipelined requests are answered in order.
    pipelined = (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n")
    rs = responses(raw(server, pipelined), heads={1})
    check([r[0] for r in rs] == [200, 200, 404, 200, 206], f"pipelined statuses {[r[0] for r in rs]}")
    if len(rs) == 5:
        check(rs[0][2] == b"hello, world\n" and rs[3][2] == b"docs index\n" and rs[4][2] == b"hello", "pipelined bodies")
        check(rs[1][1].get("content-length") == "13" and rs[1][2] == b"", "HEAD in a pipeline: length, no body")
        check(rs[4][1].get("connection") == "close", "Connection: close is answered and honoured")
    # HTTP/1.0: closes by default, keeps alive when asked.
    rs = responses(raw(server, b"GET /hello.txt HTTP/1.0\r\n\r\nGET /hello.txt HTTP/1.0\r\n\r\n"))
    check(len(rs) == 1 and rs[0][1].get("connection") == "close", "HTTP/1.0 closes after one response")
    rs = responses(raw(server, b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", read_until_close=False))
    check(len(rs) == 1 and rs[0][1].get("connection") == "keep-alive", "HTTP/1.0 keep-alive")
    # A request split into many small pieces.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        for byte in b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n":
            s.send(bytes([byte]))
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        check(responses(data)[0][2] == b"hello, world\n", "a request sent byte by byte")
    # A client that leaves mid-response costs only its own connection.
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        s.close()
    check(status_of(server, "/hello.txt") == 200, "the server serves on after 20 clients left mid-response")


def stuck_stop_case(root, backend, network):
    """SIGTERM while a client has stopped reading its response: no grace period holds the
    server for ever; the response that makes no progress is closed after the idle time-out."""
    server = Server(root, backend, network, ["--idle-timeout", "1"])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", server.port))
    s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(4096)  # the response has begun; the client reads no more
    code, out = server.stop()  # stop() allows 15 s, for a 1 s time-out
    s.close()
    check(code == 0, f"a response stuck at SIGTERM is closed after the idle time-out and the server exits 0 (got {code})")


def graceful_stop_case(root, backend, network):
    """SIGTERM while a 24 MB response is being read through a 4 KiB window: the response
    completes however long the link takes (the server has no fixed grace period), then the
    server exits 0."""
    server = Server(root, backend, network)
    with open(f"{root}/huge.bin", "rb") as f:
        big = f.read()
    # A small receive window (set before connecting) and a file larger than any socket
    # buffers: the response is still being sent when the signal arrives.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", server.port))
    s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    data = s.recv(65536)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    check(server.process.poll() is None, "the server waits for the response in progress")
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    rs = responses(data)
    check(len(rs) == 1 and rs[0][2] == big, "the response in progress at SIGTERM arrives whole")
    code, out = server.stop()
    check(code == 0, f"then the server exits 0 (got {code})")
    refused = False
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    except OSError:
        refused = True
    check(refused, "and its port is closed")


def timeout_cases(root, backend, network):
    server = Server(root, backend, network, ["--idle-timeout", "1", "--max-connections", "4"])
    try:
        # An idle connection is closed after the time-out.
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        start = time.time()
        check(idle.recv(10) == b"", "an idle connection is closed")
        check(0.5 < time.time() - start < 4, f"idle close after {time.time() - start:.2f} s")
        idle.close()
        # A slow client that sends a byte at a time never finishes its header in time.
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        start = time.time()
        closed = False
        for byte in b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n":
            try:
                slow.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.time() - start > 3.5:
                break
        try:
            slow.settimeout(3)
            closed = closed or slow.recv(10) == b""
        except OSError:
            closed = True
        check(closed, "a slow header is cut off")
        slow.close()
        # At --max-connections, a new connection gets 503 and the others keep working.
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
        time.sleep(0.2)
        blob = raw(server, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        check(responses(blob) and responses(blob)[0][0] == 503, "over --max-connections: 503")
        held[0].sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        check(b"hello, world" in held[0].recv(4096), "held connections still served")
        for s in held:
            s.close()
        time.sleep(0.3)
        check(status_of(server, "/hello.txt") == 200, "served again once connections closed")
    finally:
        code, out = server.stop(signal.SIGINT)
        check(code == 0, f"SIGINT stops the server with status 0 (got {code})")


def fd_exhaustion_case(root, backend, network):
    # A low descriptor limit: connections beyond it wait or are refused; the server survives.
    import resource
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    process = subprocess.Popen([BINARY, "--root", root, "--port", "0", "--backend", backend, "--network", network,
                                "--max-connections", "1000", "--idle-timeout", "3"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=limit)
    port = None
    while True:
        line = process.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on http://[\d.]+:(\d+)/", line)
        if m:
            port = int(m.group(1))
        if line.startswith("laio-httpd: routes:"):
            break
    sockets = []
    try:
        for _ in range(100):
            try:
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        for s in sockets:
            s.close()
        time.sleep(0.3)
        ok = False
        for _ in range(20):
            code = subprocess.run(["curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                                   f"http://127.0.0.1:{port}/hello.txt"], capture_output=True).returncode
            if code == 0:
                ok = True
                break
            time.sleep(0.2)
        check(process.poll() is None, "the server survives running out of descriptors")
        check(ok, "and serves again once descriptors are free")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            rest, _ = process.communicate(timeout=15)
            check("pausing accepts" in rest, "the descriptor limit was reached (accept paused)")
            check(process.returncode == 0, f"exit status 0 after the descriptor test (got {process.returncode})")
        except subprocess.TimeoutExpired:
            process.kill()
            check(False, "the server did not stop after the descriptor test")


def command_line_cases(root):
    """--help, bad usage (exit status 2, the reason named) and the default network mode."""
    r = subprocess.run([BINARY, "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and all(w in r.stdout for w in BACKENDS + ["--network"]),
          f"--help exits 0 and lists the backend words (got {r.returncode})")
    bad = [([], "--root"), (["--root", root, "--port", "65536"], "--port"),
           (["--root", root, "--backend", "nope"], "auto"), (["--root", root, "--network", "nope"], "nonblocking"),
           (["--root", root, "--max-connections", "0"], "--max-connections"),
           (["--root", root, "--max-connections", "65537"], "--max-connections"),
           (["--root", root, "--idle-timeout", "0"], "--idle-timeout"), (["--root", root, "--idle-timeout", "x"], "--idle-timeout"),
           (["--root", root, "--port"], "--port"), (["--root", root, "--no-such-flag"], "--no-such-flag")]
    for arguments, named in bad:
        r = subprocess.run([BINARY, *arguments], capture_output=True, text=True)
        check(r.returncode == 2 and named in r.stderr,
              f"{' '.join(arguments) or 'no arguments'}: refused with exit status 2 naming {named} (got {r.returncode}: {r.stderr[:200]})")
    server = Server(root, "auto", None)
    code, out = server.stop()
    check(server.port is not None and "network nonblocking" in out,
          f"without --network the network mode is nonblocking ({out.strip()[:300]})")
    check(code == 0, f"SIGTERM stops the server with status 0 (got {code})")


def load_case(server):
    if shutil.which("wrk") is None:
        check(False, "wrk is not installed")
        return
    r = subprocess.run(["wrk", "-t2", "-c64", "-d2s", server.url("/hello.txt")], capture_output=True, text=True)
    out = r.stdout
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1)) if m else 0
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    check(requests > 1000, f"wrk made {requests} requests")
    check(errors is None and non2xx is None, f"wrk: no errors ({errors.group(0) if errors else ''} "
                                             f"{non2xx.group(0) if non2xx else ''})")
    print(f"  wrk -t2 -c64 -d2s: {requests} requests, 0 errors" if errors is None and non2xx is None else "", flush=True)


# ---------------------------------------------------------------------------------------
# Storage that fails or is slow: the server's --root on a tools/faultfs mount (given with
# --faultfs MOUNT or LAIO_HTTPD_FAULTFS; scripts/test-httpd mounts one). The mount must
# not cache (faultfs's default, cache=none): a read the page cache answered would never
# meet the rules. The test writes its files through the mount and sets its own rules
# through MOUNT/.faultfs-control, so the mount may start empty and without rules.

# The delay of each slow operation. Long on purpose: the bound on fast requests below is
# this delay, so it is generous however slow the machine is.
SLOW_DELAY = 1.0
# What is slow, by directory: the path walk and the open; the stats (the open's permission
# check and the fstat); the read; the close (its flush). Two clients on each.
SLOW_KINDS = {"open": "lookup,open", "stat": "getattr", "read": "read", "close": "flush"}
SLOW_PER_KIND = 2
SLOW_CLIENTS = len(SLOW_KINDS) * SLOW_PER_KIND
# Fast requests are sent on a schedule, one every FAST_INTERVAL, and each one's latency is
# counted from when it was due, not from when a stalled client got round to sending it:
# a sequential client that simply waited would make a 1 s stall a single sample, which a
# p99 does not see. 20 ms leaves a machine 20 times slower than this one (about 1 ms per
# fast request) on schedule.
FAST_INTERVAL = 0.02
FAST_FILES = 4
MID_SIZE = 1_000_003

FAULT_RULES = [
    "clear",
    "reset-stats",
    "read /mid/big.bin count=1",          # the first chunk of /mid/big.bin is read...
    "read /mid/* error=EIO",              # ...the next fails, after the header went out
    "read /bad/* error=EIO",
    "open /eio-open/* error=EIO",
    "getattr /eio-stat/* error=EIO",
    "lookup /eio-lookup/* error=EIO",
    "lookup /eio-index/index.html error=EIO",
    "open /eacces/* error=EACCES",
    "lookup /hidden/* error=ENOENT",
] + [f"{operations} /slow/{kind}/* delay={int(SLOW_DELAY * 1000)}ms" for kind, operations in SLOW_KINDS.items()]
SLOW_RULES = len(SLOW_KINDS)

# Path, expected status, why.
FAULT_STATUSES = [
    ("/bad/small.txt", 500, "read fails (EIO) before anything was sent"),
    ("/bad/big.bin", 500, "the first read of a 1 MB file fails (EIO)"),
    ("/eio-open/f.txt", 500, "open fails (EIO)"),
    ("/eio-stat/f.txt", 500, "getattr fails (EIO)"),
    ("/eio-lookup/f.txt", 500, "lookup fails (EIO)"),
    ("/eio-index/", 500, "the lookup of a directory's index.html fails (EIO; a missing one is 403)"),
    ("/eacces/f.txt", 403, "open fails (EACCES)"),
    ("/hidden/f.txt", 404, "lookup answers ENOENT"),
]

fault_results = []   # (configuration, samples, p50, p99, max, bounded)


def faultfs_write(mount, lines):
    """One batch of rule lines into the control file (one write: applied at once)."""
    fd = os.open(f"{mount}/.faultfs-control", os.O_WRONLY)
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
    finally:
        os.close(fd)


def faultfs_hits(mount):
    """The hits of each rule, by its pattern (faultfs writes a rule back in its own words)."""
    with open(f"{mount}/.faultfs-stats") as f:
        return {m.group(2): int(m.group(1)) for m in re.finditer(r"^rule \d+ hits=(\d+): \S+ (\S+)", f.read(), re.M)}


def pattern_of(rule):
    return rule.split()[1]


def make_fault_tree(mount):
    faultfs_write(mount, ["clear"])
    contents = {}
    def put(path, data):
        os.makedirs(os.path.dirname(f"{mount}{path}"), exist_ok=True)
        with open(f"{mount}{path}", "wb") as f:
            f.write(data)
        contents[path] = data
    for i in range(FAST_FILES):
        put(f"/fast/f{i}.txt", f"fast file {i}\n".encode() * 20)
    for kind in SLOW_KINDS:
        for i in range(SLOW_PER_KIND):
            put(f"/slow/{kind}/s{i}.bin", os.urandom(4096))  # one read each
    put("/bad/small.txt", b"never served\n")
    put("/bad/big.bin", os.urandom(MID_SIZE))
    put("/mid/big.bin", os.urandom(MID_SIZE))
    for d in ["eio-open", "eio-stat", "eio-lookup", "eacces", "hidden"]:
        put(f"/{d}/f.txt", b"never served\n")
    put("/eio-index/index.html", b"never served\n")
    return contents


def get(port, path, timeout=60.0, sock=None):
    """One GET (on `sock` kept alive, else on a new connection that closes): (status,
    body, seconds), status None when the connection broke."""
    start = time.perf_counter()
    own = sock is None
    if own:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        close = "Connection: close\r\n" if own else ""
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n".encode())
        data = b""
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"\r\nContent-Length: (\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    return int(head.split()[1]), rest[:int(m.group(1))], time.perf_counter() - start
            chunk = sock.recv(65536)
            if not chunk:
                return None, data, time.perf_counter() - start
            data += chunk
    except OSError:
        return None, b"", time.perf_counter() - start
    finally:
        if own:
            sock.close()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def slow_phase(server, mount, contents, bounded):
    """SLOW_CLIENTS clients fetch slow files (their lookup and open, stats, read or close
    held SLOW_DELAY) again and again while one client fetches fast files on a kept-alive
    connection on a schedule; returns the fast requests' latencies, the slow responses and
    the delayed operations during the measurement."""
    import threading
    stop = threading.Event()
    slow_paths = [f"/slow/{kind}/s{i}.bin" for kind in SLOW_KINDS for i in range(SLOW_PER_KIND)]
    slow_ok = [0] * SLOW_CLIENTS
    slow_bad = []

    def slow_client(i):
        # At most one request per SLOW_DELAY: a slow close (flush) goes on after its response
        # is sent, so a client that did not wait would pile up closes faster than any number
        # of workers retires them; paced, each client keeps about one slow operation going.
        next_start = time.perf_counter()
        while not stop.is_set():
            if next_start > time.perf_counter():
                stop.wait(next_start - time.perf_counter())
                continue
            next_start = time.perf_counter() + SLOW_DELAY
            status, body, _ = get(server.port, slow_paths[i])
            if status == 200 and body == contents[slow_paths[i]]:
                slow_ok[i] += 1
            else:
                slow_bad.append((slow_paths[i], status, len(body)))
                return

    slow_patterns = [pattern_of(rule) for rule in FAULT_RULES[-SLOW_RULES:]]
    def slow_hits():
        hits = faultfs_hits(mount)
        return sum(hits.get(p, 0) for p in slow_patterns)

    before = slow_hits()
    threads = [threading.Thread(target=slow_client, args=(i,), daemon=True) for i in range(SLOW_CLIENTS)]
    for t in threads:
        t.start()
    # Measure only once the slow clients are held in the file system: poll the rules' hits.
    deadline = time.time() + 30
    while slow_hits() - before < SLOW_CLIENTS and time.time() < deadline and not slow_bad:
        time.sleep(0.01)
    check(slow_hits() - before >= SLOW_CLIENTS, f"the slow clients reached delayed operations ({slow_hits() - before} hits)")

    # At least 3 delays long; where bounded, until 100 fast requests and every slow client
    # has had two responses (so every kind of slow operation, the close after the first
    # response too, happened while fast requests were measured), at most 90 s. The stalling
    # blocking server is only measured: 5 fast requests, or what came back in 30 s.
    latencies = []
    wrong = []
    fast = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    start = time.perf_counter()
    first_ok = list(slow_ok)
    while True:
        elapsed = time.perf_counter() - start
        if elapsed > (90 if bounded else 30) or slow_bad or elapsed >= 3 * SLOW_DELAY and (
                len(latencies) >= 100 and all(n - f >= 2 for n, f in zip(slow_ok, first_ok)) if bounded
                else len(latencies) >= 5):
            break
        due = start + len(latencies) * FAST_INTERVAL
        if due > time.perf_counter():
            time.sleep(due - time.perf_counter())
        path = f"/fast/f{len(latencies) % FAST_FILES}.txt"
        status, body, _ = get(server.port, path, sock=fast)
        latencies.append(time.perf_counter() - due)
        if status != 200 or body != contents[path]:
            wrong.append((path, status))
            fast.close()
            fast = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    fast.close()
    elapsed = time.perf_counter() - start
    hits_during = slow_hits() - before
    done_during = sum(slow_ok) - sum(first_ok)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    if bounded:
        check(not wrong, f"fast files served right while slow ones are read ({wrong[:3]})")
        check(not slow_bad and all(n >= 2 for n in slow_ok),
              f"every slow client got its file whole, twice or more ({slow_ok} each; broken: {slow_bad[:3]})")
        check(elapsed <= 90, f"the measurement ended within 90 s (slow responses per client: {slow_ok})")
    elif wrong or slow_bad:
        # A stalled loop lets connections pass their idle time-out, or a client's own.
        print(f"  (blocking: {len(wrong)} fast and {len(slow_bad)} slow requests broke while the loop stalled)", flush=True)
    check(all(not t.is_alive() for t in threads), "the slow clients finished")
    return latencies, done_during, hits_during


def fault_cases(mount, contents, backend, network):
    access_log = tempfile.mktemp(prefix="laio-httpd-access-")
    faultfs_write(mount, FAULT_RULES)
    server = Server(mount, backend, network, ["--access-log", access_log])
    if server.port is None:
        code, out = server.stop()
        last = out.strip().splitlines()[-1] if out.strip() else ""
        if backend == "blocking" and network == "laio":
            return None   # refused, as checked in the main section
        if backend == "uring" and ("EPERM" in last or "ENOSYS" in last or "ENOMEM" in last):
            return f"{harness.CURRENT}: {last}"
        check(False, f"the server did not start on the faultfs mount: {out}")
        return None
    mid_received = None
    try:
        # Each error, and then the same connection: a 500 closes it (as after every 500);
        # after a 403 or 404 it serves the next request.
        for path, expected, why in FAULT_STATUSES:
            blob = raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                               f"GET /fast/f0.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), timeout=15)
            rs = responses(blob)
            got = [r[0] for r in rs]
            check(got[:1] == [expected], f"{path}: {why}: {expected} (got {got})")
            if expected == 500:
                check(len(rs) == 1 and rs[0][1].get("connection") == "close",
                      f"{path}: the 500 says Connection: close and the connection closes (got {got})")
            else:
                check(got == [expected, 200] and rs[1][2] == contents["/fast/f0.txt"],
                      f"{path}: the connection serves the next request after the {expected} (got {got})")
        # A read that fails mid-body, after the header went out: the connection is closed
        # (nothing else can tell the client), the bytes that did go out are the file's.
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
            s.sendall(b"GET /mid/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            data, eof = b"", False
            try:
                while chunk := s.recv(65536):
                    data += chunk
                eof = True
            except OSError:
                pass
        head, _, body = data.partition(b"\r\n\r\n")
        check(eof, "a read failing mid-body: the connection is closed, not left hanging")
        check(head.startswith(b"HTTP/1.1 200 ") and f"Content-Length: {MID_SIZE}".encode() in head,
              f"a read failing mid-body: the header (200, the full length) went out first ({head[:40]!r})")
        check(0 < len(body) < MID_SIZE and body == contents["/mid/big.bin"][:len(body)],
              f"a read failing mid-body: the body is cut short ({len(body)} of {MID_SIZE} bytes), and what came is right")
        mid_received = len(body)
        # Other files are served on, on new connections.
        for i in range(FAST_FILES):
            status, body, _ = get(server.port, f"/fast/f{i}.txt", timeout=15)
            check(status == 200 and body == contents[f"/fast/f{i}.txt"], f"/fast/f{i}.txt served after the errors")
        hits = faultfs_hits(mount)
        for rule in FAULT_RULES[3:-SLOW_RULES]:
            fired = hits.get(pattern_of(rule), 0)
            check(fired > 0, f"faultfs rule '{rule}' fired ({fired} hits)")

        latencies, slow_done, slow_hits = slow_phase(server, mount, contents, bounded=backend != "blocking")
        if latencies:
            p50, p99, worst = percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies)
            bounded = backend != "blocking"
            fault_results.append((harness.CURRENT, len(latencies), p50, p99, worst, bounded, slow_done))
            print(f"  fast files while {SLOW_CLIENTS} clients fetch slow ones ({SLOW_DELAY:.0f} s per operation): "
                  f"{len(latencies)} requests, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms; "
                  f"{slow_done} slow responses, {slow_hits} delayed operations"
                  + ("" if bounded else " (blocking: measured, not bounded; it stalls by design)"), flush=True)
            if bounded:
                # The contract: a slow file never holds up the loop. A server that waited for
                # a slow operation would make a fast request wait for it: >= SLOW_DELAY.
                check(len(latencies) >= 100, f"at least 100 fast requests were measured ({len(latencies)})")
                check(p99 < SLOW_DELAY, f"p99 of fast requests {p99 * 1000:.1f} ms < the slow delay {SLOW_DELAY * 1000:.0f} ms")
        else:
            check(False, "no fast request was measured")
    finally:
        code, out = server.stop()
        check(code == 0, f"SIGTERM stops the server with status 0 (got {code})")
        faultfs_write(mount, ["clear"])
        lines = open(access_log).read().splitlines() if os.path.exists(access_log) else []
        if os.path.exists(access_log):
            os.unlink(access_log)
    for path, expected, why in FAULT_STATUSES:
        check(any(f'"GET {path} HTTP/1.1" {expected} ' in l for l in lines), f"the access log has {path} with {expected}")
    mid = [l for l in lines if '"GET /mid/big.bin HTTP/1.1"' in l]
    check(len(mid) == 1 and mid_received is not None and mid[0].endswith(f'" 200 {mid_received}'),
          f"the access log has the response cut mid-body: its 200 and the {mid_received} body bytes sent ({mid})")
    return None


def fault_section(mount):
    harness.CURRENT = "faults"
    if mount is None:
        print("SKIP storage faults: no faultfs mount given (--faultfs MOUNT or LAIO_HTTPD_FAULTFS; "
              "scripts/test-httpd mounts one)", flush=True)
        return []
    if not os.path.exists(f"{mount}/.faultfs-control"):
        check(False, f"{mount} is not a faultfs mount (no .faultfs-control)")
        return []
    contents = make_fault_tree(mount)
    skipped = []
    for backend, network in COMBINATIONS:
        if QUICK and backend != "auto":
            continue
        harness.CURRENT = f"faults {backend}/{network}"
        print(f"== storage faults: laio-httpd --backend {backend} --network {network}", flush=True)
        reason = fault_cases(mount, contents, backend, network)
        if reason:
            skipped.append(reason)
            print("  skipped: " + reason, flush=True)
    print(f"== fast-file latency while {SLOW_CLIENTS} clients fetch slow files (lookup and open, getattr, read "
          f"or flush held {SLOW_DELAY:.0f} s), one fast request due every {FAST_INTERVAL * 1000:.0f} ms")
    for configuration, n, p50, p99, worst, bounded, slow in fault_results:
        print(f"  {configuration[7:]:22} p50 {p50 * 1000:8.1f} ms  p99 {p99 * 1000:8.1f} ms  max {worst * 1000:8.1f} ms"
              f"  ({n} requests, {slow} slow responses){'' if bounded else '  not bounded'}")
    return skipped


def main():
    if FAULTS_ONLY:
        harness.skips += fault_section(FAULTFS)
        harness.summary("laio-httpd", "configurations skipped")
    top, root = make_root()
    try:
        harness.CURRENT = "command line"
        print("== laio-httpd's command line", flush=True)
        command_line_cases(root)
        for backend, network in COMBINATIONS:
            harness.CURRENT = f"{backend}/{network}"
            print(f"== laio-httpd --backend {backend} --network {network}", flush=True)
            access_log = tempfile.mktemp(prefix="laio-httpd-access-")
            server = Server(root, backend, network, ["--access-log", access_log])
            if server.port is None:
                code, out = server.stop()
                if backend == "blocking" and network == "laio":
                    check("--network nonblocking" in out and code == 2, "blocking + laio network is refused with advice")
                    print("  refused as documented: " + out.strip().splitlines()[-1][:160], flush=True)
                    continue
                if backend == "uring" and ("EPERM" in out or "ENOSYS" in out or "ENOMEM" in out):
                    harness.skips.append(f"{harness.CURRENT}: {out.strip().splitlines()[-1]}")
                    print("  skipped: " + out.strip().splitlines()[-1], flush=True)
                    continue
                check(False, f"the server did not start: {out}")
                continue
            check(any("routes:" in l for l in server.lines), "prints the routes at start")
            try:
                protocol_cases(server, root)
                raw_cases(server)
                load_case(server)
            finally:
                code, out = server.stop()
                check(code == 0, f"SIGTERM stops the server with status 0 (got {code})")
                lines = open(access_log).read().splitlines() if os.path.exists(access_log) else []
                check(any(re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                                       r'"GET /hello\.txt HTTP/1\.1" 200 13', l) for l in lines),
                      f"the access log has the requests in common log format ({len(lines)} lines)")
                check(any('" 404 ' in l for l in lines), "the access log has the 404s")
                if os.path.exists(access_log):
                    os.unlink(access_log)
            if not QUICK or backend == "auto":
                graceful_stop_case(root, backend, network)
                stuck_stop_case(root, backend, network)
                timeout_cases(root, backend, network)
                fd_exhaustion_case(root, backend, network)
        harness.skips += fault_section(FAULTFS)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    harness.summary("laio-httpd", "configurations skipped")


if __name__ == "__main__":
    main()
