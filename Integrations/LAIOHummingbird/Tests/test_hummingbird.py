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

The harness (servers, requests, the checks every mode runs) is Integrations/Tests/
file_servers.py, shared with LAIOVapor's tests. Exit status 0 when every check passed; the
failures are listed otherwise. A backend that cannot start here (io_uring blocked) is
reported as skipped with its reason.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests"))
import file_servers as fs  # noqa: E402

COMPARED = ["content-length", "content-type", "last-modified", "etag", "accept-ranges", "content-range",
            "location"]


# The requests both providers get; what FileMiddleware decides (redirects, 400 for `..`,
# conditionals, ranges) is the same code over both, so their answers must be equal.
def cases(reference):
    status, fields, _ = fs.request(reference, "GET", "/hello.txt")
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


def differences(nio, laio):
    """Where LAIOFileSystem is stricter than LocalFileSystem, on purpose."""
    for path in ["/up.txt", "/abs.txt", "/parent/outside.txt"]:
        status, _, body = fs.request(nio.port, "GET", path)
        fs.check(status == 200 and body == b"outside the root\n",
                 f"nio follows {path} out of the root (status {status}), as LocalFileSystem does")
        status, _, body = fs.request(laio.port, "GET", path)
        fs.check(status == 404 and b"outside" not in body, f"laio refuses {path} out of the root: status {status}")
    # A FIFO: LocalFileSystem answers 200 with an empty body (its size is 0); LAIOFileSystem
    # serves regular files and directories only.
    status, _, _ = fs.request(laio.port, "GET", "/fifo")
    fs.check(status == 404, f"laio: a FIFO is not served (status {status})")


if __name__ == "__main__":
    fs.main("laio-hummingbird", sys.argv[1], sys.argv, cases, differences, COMPARED)
