#!/usr/bin/env python3
"""laio-vapor's tests: the real binary on loopback, real clients.

One server with Vapor's own FileMiddleware and req.fileio (--file-io nio) and, beside it, one
with LAIOFileMiddleware and req.laio (--file-io laio) per LAIO backend; the same requests to
both over raw sockets and their answers compared: status, Content-Length, Content-Type,
Last-Modified, ETag, Accept-Ranges, Content-Range, Location, Cache-Control, Age,
Transfer-Encoding and the body, for files, the default file, the directory redirect, single
ranges and bad ones, conditional requests, HEAD, 404s, 403s for `../`, and the request
helpers (/stream/PATH: req.laio.streamFile against req.fileio.asyncStreamFile; /collect/PATH:
collectFile). Where LAIOFileMiddleware answers differently on purpose (symbolic links out of
the root, a FIFO) both answers are checked. Then, per backend: a 24 MiB file byte for byte
(curl), the memory a stalled reader of it costs, 20 clients that reset mid-response (the
server's descriptors back to where they were), and wrk with zero errors.

    python3 test_vapor.py BINARY [--backends WORD,...]

The harness is Integrations/Tests/file_servers.py, shared with LAIOHummingbird's tests.
Exit status 0 when every check passed; the failures are listed otherwise.
"""
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


def differences(nio, laio):
    """Where LAIOFileMiddleware is stricter than FileMiddleware, on purpose."""
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
