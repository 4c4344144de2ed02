#!/usr/bin/env python3
"""laio-vapor's tests: the real binary on loopback, real clients.

One server with Vapor's own FileMiddleware and req.fileio (--file-io nio) and, beside it, one
with LAIOFileMiddleware and req.laio (--file-io laio) per LAIO backend; the same requests to
both over raw sockets and their answers compared: status, Content-Length, Content-Type,
Last-Modified, ETag, Accept-Ranges, Content-Range, Location, Cache-Control, Age,
Transfer-Encoding and the body, for files, the default file, the directory redirect, single
ranges and bad ones, conditional requests, HEAD, 404s, 403s for `../`, and the request
helpers (/stream/PATH: req.laio.streamFile against req.fileio.asyncStreamFile; /collect/PATH:
collectFile), and again with the options advancedETagComparison and a cache policy
(--advanced-etag --max-age 60). Where LAIOFileMiddleware answers differently on purpose (symbolic links out of
the root, a FIFO) both answers are checked. Then, per backend: a 24 MiB file byte for byte
(curl), the memory a stalled reader of it costs, 20 clients that reset mid-response (the
server's descriptors back to where they were), and wrk with zero errors.

    python3 test_vapor.py BINARY [--backends WORD,...]

The harness is Integrations/Tests/file_servers.py, shared with LAIOHummingbird's tests.
Exit status 0 when every check passed; the failures are listed otherwise.
"""
import atexit
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests"))
import file_servers as fs  # noqa: E402

COMPARED = ["content-length", "content-type", "last-modified", "etag", "accept-ranges", "content-range",
            "location", "cache-control", "age", "transfer-encoding"]


# The requests both servers get. Not asked: a range that ends at the file's size ("bytes=0-N"
# for a file of N bytes), which Vapor's FileIO answers with a Content-Length one past the end
# and a body that stops short, so that no answer compares; and a directory through
# /stream/ (200, then a body that fails) for the same reason.
def cases(reference):
    status, fields, _ = fs.request(reference, "GET", "/hello.txt")
    etag = fields.get("etag")
    out = []
    for path in ["/hello.txt", "/style.css", "/a%20file.json", "/big.bin", "/empty.txt", "/same.txt",
                 "/", "/docs/", "/docs", "/docs/notes.md", "/no-index/", "/no-index/file.txt", "/no-index",
                 "/missing", "/docs/missing.html", "/hello.txt/more", "/hello.txt/", "/../outside.txt",
                 "/docs/../hello.txt", "/docs/..", "/..", "/%2e%2e", "/%2e%2e/outside.txt", "/%zz", "//hello.txt",
                 "/hello.txt?query=1", "/docs?x=1", "/huge.bin", "/index.html", "/docs/index.html",
                 "/stream/hello.txt", "/stream/big.bin", "/stream/empty.txt", "/stream/missing",
                 "/stream/up.txt", "/collect/hello.txt", "/collect/big.bin", "/collect/empty.txt",
                 "/collect/missing", "/collect/docs"]:
        out.append(("GET", path, {}))
        out.append(("HEAD", path, {}))
    for path in ["/big.bin", "/stream/big.bin"]:
        for value in ["bytes=0-4", "bytes=7-", "bytes=-5", "bytes=999990-", "bytes=0-0", "bytes=5-2", "bytes=x-y",
                      "bytes=1000002-", "bytes=1000003-", "bytes=2000000-", "bytes=-1000003", "bytes=-1000004",
                      "bytes=0-99999999", "bytes=0-1,3-4", "items=0-3", "bytes=-0", "bytes=1000002-1000002"]:
            out.append(("GET", path, {"Range": value}))
    out.append(("GET", "/hello.txt", {"Range": "bytes=3-8"}))
    out.append(("HEAD", "/hello.txt", {"Range": "bytes=3-8"}))
    out.append(("GET", "/empty.txt", {"Range": "bytes=0-3"}))
    out.append(("GET", "/empty.txt", {"Range": "bytes=0-"}))
    for path in ["/hello.txt", "/stream/hello.txt", "/docs/"]:
        out.append(("GET", path, {"If-None-Match": etag}))
        out.append(("HEAD", path, {"If-None-Match": etag}))
    out.append(("GET", "/hello.txt", {"If-None-Match": 'W/"0000"'}))
    out.append(("GET", "/hello.txt", {"If-None-Match": etag, "Range": "bytes=0-3"}))
    out.append(("GET", "/hello.txt", {"If-Modified-Since": fields.get("last-modified")}))
    out.append(("POST", "/hello.txt", {"Content-Length": "0"}))
    out.append(("DELETE", "/docs", {}))
    return out


# The middlewares' options: ETags from the file's bytes and a cache policy, one nio server
# for every backend's laio server.
OPTIONS = ["--advanced-etag", "--max-age", "60"]
with_options = {}


def options(nio, laio):
    if "nio" not in with_options:
        with_options["nio"] = fs.Server(nio.process.args[0], nio.process.args[2], "nio", extra=OPTIONS)
        atexit.register(lambda: with_options["nio"].stop())
    reference = with_options["nio"]
    backend = laio.name.split("/", 1)[1]
    server = fs.Server(laio.process.args[0], laio.process.args[2], "laio", backend, extra=OPTIONS)
    try:
        if not fs.check(reference.port and server.port, f"{OPTIONS}: the servers started: "
                                                       f"{reference.output()} {server.output()}"):
            return
        _, fields, _ = fs.request(reference.port, "GET", "/big.bin")
        etag = fields.get("etag", "")
        fs.check(len(etag) == 64, f"{OPTIONS}: nio's ETag is a SHA-256: {etag!r}")
        fs.check(fields.get("cache-control") == "max-age=60" and fields.get("age") == "0",
                 f"{OPTIONS}: nio's cache headers: {fields}")
        requests = []
        for path in ["/hello.txt", "/big.bin", "/empty.txt", "/docs/", "/docs", "/missing", "/stream/hello.txt"]:
            requests += [("GET", path, {}), ("HEAD", path, {})]
        requests += [("GET", "/big.bin", {"If-None-Match": etag}), ("GET", "/big.bin", {"Range": "bytes=5-9"}),
                     ("GET", "/big.bin", {"If-None-Match": etag, "Range": "bytes=5-9"})]
        fs.compare(reference, server, requests, COMPARED)
    finally:
        status, output = server.stop()
        fs.check(status == 0, f"{OPTIONS}: ends with status 0 on SIGTERM: {status} {output[-2000:]}")


def differences(nio, laio):
    """Where LAIOFileMiddleware is stricter than FileMiddleware, on purpose; and the options."""
    options(nio, laio)
    for path in ["/up.txt", "/abs.txt", "/parent/outside.txt"]:
        status, _, body = fs.request(nio.port, "GET", path)
        fs.check(status == 200 and body == b"outside the root\n",
                 f"nio follows {path} out of the root (status {status}), as FileMiddleware does")
        status, _, body = fs.request(laio.port, "GET", path)
        fs.check(status == 404 and b"outside" not in body, f"laio refuses {path} out of the root: status {status}")
    # FileMiddleware would open the FIFO to stream it, which waits for a writer (so the nio
    # server is not asked); LAIOFileMiddleware serves regular files and directories only.
    status, _, _ = fs.request(laio.port, "GET", "/fifo")
    fs.check(status == 404, f"laio: a FIFO is not served (status {status})")


if __name__ == "__main__":
    fs.main("laio-vapor", sys.argv[1], sys.argv, cases, differences, COMPARED)
