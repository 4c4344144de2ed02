"""What the integrations' tests share (test_hummingbird.py, test_vapor.py): a file server
binary that takes `--root DIR --port 0 --file-io laio|nio [--backend WORD]` and prints
"listening on http://HOST:PORT/" and one more line, started on a test tree; requests over raw
sockets (http.client sends the path as written, `..` included) compared between the two
modes; and the checks every mode runs: a 24 MiB file byte for byte (curl), a stalled reader's
memory, clients that reset (descriptors back at the baseline), wrk with zero errors.

A test imports this module, gives its own cases and the differences it expects, and calls
`main`. Exit status 0 when every check passed; the failures are listed otherwise. A backend
that cannot start here (io_uring blocked) is reported as skipped with its reason. The ledger
of checks, the test tree and the server process are Tests/harness (shared with laio-httpd's
tests); `check` is re-exported here for the tests that use `fs.check`.
"""
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "Tests", "harness"))
import harness  # noqa: E402
from harness import HUGE, check, skips  # noqa: E402,F401  (check: fs.check in the tests)


def make_root(prefix):
    """harness.make_tree with the integrations' own cases: a Markdown file, a directory
    without an index, a name with a space, a CSS file, a link to a directory out of the root.
    Returns (top, root)."""
    def extras(top, root):
        with open(f"{root}/docs/notes.md", "w") as f:
            f.write("# notes\n")
        os.mkdir(f"{root}/no-index")
        with open(f"{root}/no-index/file.txt", "w") as f:
            f.write("in a directory without an index\n")
        with open(f"{root}/style.css", "w") as f:
            f.write("body { margin: 0 }\n")
        with open(f"{root}/a file.json", "w") as f:
            f.write('{"a": 1}\n')
        os.symlink("..", f"{root}/parent")
    return harness.make_tree(prefix, extras)


class Server(harness.ServerProcess):
    """A file server binary with `--file-io laio|nio [--backend WORD]`, started once it has
    printed its two start-up lines."""

    def __init__(self, binary, root, file_io, backend=None, extra=()):
        command = [binary, "--root", root, "--port", "0", "--file-io", file_io, *extra]
        if backend:
            command += ["--backend", backend]
        self.name = f"{file_io}/{backend}" if backend else file_io
        super().__init__(command, started=lambda server: len(server.lines) >= 2)


def request(port, method, path, headers=None):
    """(status, {lower-case header: value}, body) over a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        fields = {k.lower(): v for k, v in response.getheaders()}
        return response.status, fields, body
    finally:
        connection.close()


def answer(port, method, path, headers, compared):
    """The status, the `compared` headers and the body's hash and length."""
    status, fields, body = request(port, method, path, headers)
    if fields.get("content-type", "").startswith("application/json"):
        # An error's JSON object: its keys come in the order of the process's hash seed.
        try:
            body = json.dumps(json.loads(body), sort_keys=True).encode()
        except ValueError:
            pass
    out = {"status": status, "body": hashlib.sha256(body).hexdigest(), "length": len(body)}
    for name in compared:
        out[name] = fields.get(name)
    return out


def compare(nio, laio, cases, compared):
    """The same requests to both servers: equal answers."""
    for method, path, headers in cases:
        try:
            expected = answer(nio.port, method, path, headers, compared)
            got = answer(laio.port, method, path, headers, compared)
        except Exception as error:
            check(False, f"{method} {path} {headers}: {error}")
            continue
        check(got == expected, f"{method} {path} {headers}: laio {got} != nio {expected}")


def curl_huge(server, folder):
    out = os.path.join(folder, f"huge-{server.name.replace('/', '-')}")
    result = subprocess.run(["curl", "-sS", "-o", out, "-w", "%{http_code}", f"http://127.0.0.1:{server.port}/huge.bin"],
                            capture_output=True, text=True, timeout=600)
    check(result.stdout == "200", f"curl /huge.bin: status {result.stdout!r} {result.stderr.strip()}")
    with open(os.path.join(folder, "root", "huge.bin"), "rb") as a, open(out, "rb") as b:
        check(a.read() == b.read(), "curl /huge.bin: the 24 MiB arrive byte for byte")
    os.unlink(out)


def settle(server, what):
    """Waits until the server has used no CPU for a second (bounded at 120 s: a generous
    bound, only so that a broken server fails instead of hanging the test)."""
    deadline = time.monotonic() + 120
    last = server.cpu_ticks()
    while time.monotonic() < deadline:
        time.sleep(1)
        now = server.cpu_ticks()
        if now == last:
            return True
        last = now
    return check(False, f"{what}: the server did not go idle within 120 s")


def stalled_reader(server):
    """A client that asks for the 24 MiB file and reads 1 MiB of it: the server holds what
    the socket buffers take and a chunk, not the file (LAIO's bodies read one 128 KiB chunk
    at a time and write it before reading the next)."""
    for _ in range(3):  # warm the allocator and the threads first
        request(server.port, "GET", "/big.bin")
    settle(server, "before the stalled reader")
    before = server.rss()
    client = socket.create_connection(("127.0.0.1", server.port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    client.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    while got < (1 << 20):
        data = client.recv(65536)
        if not data:
            break
        got += len(data)
    settle(server, "with a stalled reader")
    grown = server.rss() - before
    check(got >= (1 << 20), f"stalled reader: read {got} bytes before stopping")
    check(grown < HUGE // 2, f"stalled reader: the server grew by {grown >> 10} KiB for a 24 MiB file "
                             f"(bounded per response: less than half the file)")
    client.close()


def resets(server):
    """20 clients that reset mid-response cost only their connections."""
    request(server.port, "GET", "/hello.txt")
    settle(server, "before the resets")
    baseline = server.descriptors()
    clients = []
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", server.port))
        c.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append(c)
    for c in clients:
        got = 0
        while got < 200_000:
            data = c.recv(65536)
            if not data:
                break
            got += len(data)
        check(got >= 200_000, f"reset client: got {got} bytes before resetting")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    # Each connection's descriptor and its file's are closed once the server sees the reset.
    deadline = time.monotonic() + 120
    count = server.descriptors()
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
        count = server.descriptors()
    check(count <= baseline, f"after 20 resets the server holds {count} descriptors (before: {baseline})")
    status, _, body = request(server.port, "GET", "/hello.txt")
    check(status == 200 and body == b"hello, world\n", f"after the resets: GET /hello.txt gave {status}")


def wrk(server):
    if not shutil.which("wrk"):
        skips.append(f"wrk for {server.name}: wrk is not installed")
        return
    result = subprocess.run(["wrk", "-t1", "-c16", "-d2s", f"http://127.0.0.1:{server.port}/big.bin"],
                            capture_output=True, text=True, timeout=120)
    text = result.stdout
    m = re.search(r"(\d+) requests in", text)
    check(result.returncode == 0 and m and int(m.group(1)) > 0, f"wrk ran: {text} {result.stderr}")
    check("Socket errors" not in text and "Non-2xx" not in text, f"wrk: zero errors: {text}")


def command_line(binary, root, top):
    """Bad arguments and a missing root are refused with a message."""
    harness.CURRENT = "command line"
    for bad in (["--root", root, "--file-io", "disk"], ["--root", root, "--backend", "nope"],
                ["--root", root, "--file-io", "nio", "--backend", "auto"], ["--root", root, "--port", "70000"],
                ["--port", "0"]):
        result = subprocess.run([binary, *bad], capture_output=True, text=True, timeout=60)
        check(result.returncode != 0 and result.stderr.strip(), f"{bad} refused with a message: {result.returncode}")
    for mode in ("laio", "nio"):
        result = subprocess.run([binary, "--root", f"{top}/none", "--port", "0", "--file-io", mode],
                                capture_output=True, text=True, timeout=60)
        check(result.returncode != 0 and "none" in result.stderr,
              f"a missing root is refused ({mode}): {result.stderr}")


def main(name, binary, argv, cases, differences, compared):
    """Per backend: a `--file-io laio` server beside one `--file-io nio` server,
    `compare(cases(nio_port))`, `differences(nio, laio)`, then the large file, the stalled
    reader, the resets and wrk; last the large file, resets and wrk of the nio server."""
    top, root = make_root(f"{name}-")
    nio = None
    try:
        command_line(binary, root, top)
        harness.CURRENT = "nio"
        nio = Server(binary, root, "nio")
        if not check(nio.port, f"the nio server started: {nio.output()}"):
            return
        for backend in harness.backend_words(argv):
            harness.CURRENT = f"laio/{backend}"
            print(f"== {name} --file-io laio --backend {backend} ==", flush=True)
            laio = Server(binary, root, "laio", backend)
            if not laio.port:
                status, output = laio.stop()
                if backend == "uring" and ("setupFailed" in output or "unavailable" in output
                                           or "io_uring" in output):
                    skips.append(f"laio/{backend}: {output.strip().splitlines()[-1]}")
                    print(f"  SKIP {skips[-1]}")
                    continue
                check(False, f"the server started: {output}")
                continue
            try:
                compare(nio, laio, cases(nio.port), compared)
                differences(nio, laio)
                curl_huge(laio, top)
                stalled_reader(laio)
                resets(laio)
                wrk(laio)
            finally:
                status, output = laio.stop()
                check(status == 0, f"ends with status 0 on SIGTERM: {status} {output[-2000:]}")
        harness.CURRENT = "nio"
        curl_huge(nio, top)
        resets(nio)
        wrk(nio)
    finally:
        if nio:
            status, output = nio.stop()
            harness.CURRENT = "nio"
            check(status == 0, f"ends with status 0 on SIGTERM: {status} {output[-2000:]}")
        shutil.rmtree(top, ignore_errors=True)
    harness.summary(name)
