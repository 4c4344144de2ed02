#!/usr/bin/env python3
"""laio-hummingbird's tests: the real binary on loopback, real clients.

One server with Hummingbird's own LocalFileSystem (--file-io nio) and, beside it, one with
LAIOFileSystem (--file-io laio) per LAIO backend; the same requests to both over raw sockets
(http.client sends the path as written, `..` included) and curl, and their answers compared:
status, Content-Length, Content-Type, Last-Modified, ETag, Accept-Ranges, Content-Range,
Location and the body, for files, ranges, conditional requests, a directory's index, 404s and
escapes. Where LAIOFileSystem answers differently on purpose (symbolic links out of the root,
a FIFO) both answers are checked. Then, per backend: a 24 MiB file byte for byte (curl), the
memory a stalled reader of it costs, 20 clients that reset mid-response (the server's
descriptors back to where they were, the server still answering), and wrk with zero errors.

    python3 test_hummingbird.py BINARY [--backends WORD,...]

Exit status 0 when every check passed; the failures are listed otherwise. A backend that
cannot start here (io_uring blocked) is reported as skipped with its reason.
"""
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

BINARY = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
if "--backends" in sys.argv[:-1]:
    BACKENDS = sys.argv[sys.argv.index("--backends") + 1].split(",")
else:
    # The backend words from the one list the library keeps (scripts/backends).
    BACKENDS = subprocess.run([os.path.join(REPO, "scripts", "backends")], capture_output=True,
                              text=True, check=True).stdout.split()
COMPARED = ["status", "content-length", "content-type", "last-modified", "etag", "accept-ranges",
            "content-range", "location"]
HUGE = 24 << 20
failures = []
skips = []
checks = 0
CURRENT = ""


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(f"[{CURRENT}] {what}")
        print(f"  FAIL {what}", flush=True)
    return condition


def make_root():
    top = tempfile.mkdtemp(prefix="laio-hummingbird-")
    root = f"{top}/root"
    os.mkdir(root)
    with open(f"{root}/index.html", "w") as f:
        f.write("<h1>root index</h1>\n")
    os.mkdir(f"{root}/docs")
    with open(f"{root}/docs/index.html", "w") as f:
        f.write("docs index\n")
    with open(f"{root}/docs/notes.md", "w") as f:
        f.write("# notes\n")
    os.mkdir(f"{root}/no-index")
    with open(f"{root}/no-index/file.txt", "w") as f:
        f.write("in a directory without an index\n")
    with open(f"{root}/hello.txt", "w") as f:
        f.write("hello, world\n")
    with open(f"{root}/style.css", "w") as f:
        f.write("body { margin: 0 }\n")
    with open(f"{root}/a file.json", "w") as f:
        f.write('{"a": 1}\n')
    with open(f"{root}/big.bin", "wb") as f:
        f.write(os.urandom(1_000_003))  # several 128 KiB chunks, an odd size
    open(f"{root}/empty.txt", "w").close()
    with open(f"{root}/huge.bin", "wb") as f:
        f.write(os.urandom(HUGE))
    with open(f"{top}/outside.txt", "w") as f:
        f.write("outside the root\n")
    os.symlink("hello.txt", f"{root}/same.txt")            # stays inside: served
    os.symlink("../outside.txt", f"{root}/up.txt")        # relative, out of the root
    os.symlink(f"{top}/outside.txt", f"{root}/abs.txt")   # absolute, out of the root
    os.symlink("..", f"{root}/parent")                    # a directory out of the root
    os.mkfifo(f"{root}/fifo")
    # The same modification time for every file, and not "now", so that If-Modified-Since
    # checks do not depend on the clock.
    stamp = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp), follow_symlinks=False)
    return top, root


class Server:
    def __init__(self, root, file_io, backend=None):
        command = [BINARY, "--root", root, "--port", "0", "--file-io", file_io]
        if backend:
            command += ["--backend", backend]
        self.name = f"{file_io}/{backend}" if backend else file_io
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.port = None
        # Read the two start-up lines; a server that exits first leaves EOF.
        while len(self.lines) < 2:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"listening on http://[\d.]+:(\d+)/", line)
            if m:
                self.port = int(m.group(1))

    def output(self):
        return "".join(self.lines)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=60)
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


def answer(port, method, path, headers=None):
    status, fields, body = request(port, method, path, headers)
    out = {"status": status, "body": hashlib.sha256(body).hexdigest(), "length": len(body)}
    for name in COMPARED[1:]:
        out[name] = fields.get(name)
    return out


# The requests both providers get; what FileMiddleware decides (redirects, 400 for `..`,
# conditionals, ranges) is the same code over both, so their answers must be equal.
def cases(reference):
    status, fields, _ = request(reference, "GET", "/hello.txt")
    etag, modified = fields.get("etag"), fields.get("last-modified")
    out = []
    for path in ["/hello.txt", "/style.css", "/a%20file.json", "/big.bin", "/empty.txt", "/same.txt",
                 "/", "/docs/", "/docs", "/docs/notes.md", "/no-index/", "/no-index/file.txt", "/no-index",
                 "/missing", "/docs/missing.html", "/hello.txt/more", "/../outside.txt", "/docs/../hello.txt",
                 "/%2e%2e/outside.txt", "//hello.txt", "/hello.txt?query=1", "/huge.bin"]:
        out.append(("GET", path, {}))
        out.append(("HEAD", path, {}))
    # (Not "bytes=2000000-", a start past the end: FileMiddleware 2.28.1 answers it with a negative
    # Content-Length over either provider, which clients refuse.)
    for value in ["bytes=0-4", "bytes=7-", "bytes=-5", "bytes=999990-", "bytes=0-0", "bytes=5-2", "bytes=x-y",
                  "bytes=1000002-", "bytes=0-99999999", "items=0-3"]:
        out.append(("GET", "/big.bin", {"Range": value}))
    out.append(("GET", "/hello.txt", {"Range": "bytes=3-8"}))
    out.append(("HEAD", "/hello.txt", {"Range": "bytes=3-8"}))
    out.append(("GET", "/empty.txt", {"Range": "bytes=0-3"}))
    out.append(("GET", "/hello.txt", {"If-None-Match": etag}))
    out.append(("GET", "/hello.txt", {"If-None-Match": 'W/"0000"'}))
    out.append(("GET", "/hello.txt", {"If-Modified-Since": modified}))
    out.append(("GET", "/hello.txt", {"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}))
    out.append(("GET", "/hello.txt", {"If-Range": etag, "Range": "bytes=0-3"}))
    out.append(("GET", "/hello.txt", {"If-Range": 'W/"other"', "Range": "bytes=0-3"}))
    out.append(("GET", "/hello.txt", {"If-Range": modified, "Range": "bytes=1-2"}))
    out.append(("POST", "/hello.txt", {"Content-Length": "0"}))
    return out


def compare(nio, laio):
    for method, path, headers in cases(nio.port):
        try:
            expected = answer(nio.port, method, path, headers)
            got = answer(laio.port, method, path, headers)
        except Exception as error:
            check(False, f"{method} {path} {headers}: {error}")
            continue
        check(got == expected, f"{method} {path} {headers}: laio {got} != nio {expected}")


def differences(nio, laio):
    """Where LAIOFileSystem is stricter than LocalFileSystem, on purpose."""
    for path in ["/up.txt", "/abs.txt", "/parent/outside.txt"]:
        status, _, body = request(nio.port, "GET", path)
        check(status == 200 and body == b"outside the root\n",
              f"nio follows {path} out of the root (status {status}), as LocalFileSystem does")
        status, _, body = request(laio.port, "GET", path)
        check(status == 404 and b"outside" not in body, f"laio refuses {path} out of the root: status {status}")
    # A FIFO: LocalFileSystem answers 200 with an empty body (its size is 0); LAIOFileSystem
    # serves regular files and directories only.
    status, _, _ = request(laio.port, "GET", "/fifo")
    check(status == 404, f"laio: a FIFO is not served (status {status})")


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
    the socket buffers take and a chunk, not the file (LAIOFileSystem reads one 128 KiB chunk
    at a time and writes it before reading the next)."""
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


def main():
    global CURRENT
    top, root = make_root()
    nio = None
    try:
        CURRENT = "command line"
        for bad in (["--root", root, "--file-io", "disk"], ["--root", root, "--backend", "nope"],
                    ["--root", root, "--file-io", "nio", "--backend", "auto"], ["--root", root, "--port", "70000"],
                    ["--port", "0"]):
            result = subprocess.run([BINARY, *bad], capture_output=True, text=True, timeout=60)
            check(result.returncode != 0 and result.stderr.strip(), f"{bad} refused with a message: {result.returncode}")
        result = subprocess.run([BINARY, "--root", f"{top}/none", "--port", "0"], capture_output=True, text=True,
                                timeout=60)
        check(result.returncode != 0 and "none" in result.stderr, f"a missing root is refused: {result.stderr}")

        CURRENT = "nio"
        nio = Server(root, "nio")
        if not check(nio.port, f"the nio server started: {nio.output()}"):
            return
        for backend in BACKENDS:
            CURRENT = f"laio/{backend}"
            print(f"== laio-hummingbird --file-io laio --backend {backend} ==", flush=True)
            laio = Server(root, "laio", backend)
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
                compare(nio, laio)
                differences(nio, laio)
                curl_huge(laio, top)
                stalled_reader(laio)
                resets(laio)
                wrk(laio)
            finally:
                status, output = laio.stop()
                check(status == 0, f"ends with status 0 on SIGTERM: {status} {output[-2000:]}")
        CURRENT = "nio"
        curl_huge(nio, top)
        resets(nio)
        wrk(nio)
    finally:
        if nio:
            nio.stop()
        shutil.rmtree(top, ignore_errors=True)
    for skip in skips:
        print(f"SKIP {skip}")
    print(f"laio-hummingbird: {checks} checks, {len(failures)} failed, {len(skips)} skipped")
    for failure in failures:
        print(f"FAIL {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
