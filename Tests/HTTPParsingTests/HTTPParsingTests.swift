// laio-httpd's HTTP/1.x without a server: what the parser makes of requests, ranges, dates
// and bad input. The server's behaviour over real sockets is Tests/httpd/test_httpd.py's.
@testable import HTTPParsing
import Testing

/// Parses `text` (with `\r\n` line ends as written) as the start of a connection's buffer.
private func parse(_ text: String, logLine: Bool = false) -> ParseOutcome {
    Array(text.utf8).withUnsafeBytes { HTTPParser.parse($0, logLine: logLine) }
}

/// The request of `text`, failing the test if it is not one.
private func request(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> (Request, Int)? {
    guard case let .request(request, consumed) = parse(text, logLine: true) else {
        Issue.record("not a request: \(parse(text))", sourceLocation: sourceLocation)
        return nil
    }
    return (request, consumed)
}

/// The status `text` is refused with, or nil if it is not refused.
private func refusal(_ text: String) -> Status? {
    if case let .failure(status) = parse(text) { status } else { nil }
}

private func range(_ value: String) -> RangeRequest? {
    Array(value.utf8).withUnsafeBytes { RangeRequest(header: $0) }
}

private func date(_ value: String) -> Int? {
    Array(value.utf8).withUnsafeBytes { HTTPDate.parse($0) }
}

@Suite("HTTP request parsing")
struct RequestTests {
    @Test("a GET: its path decoded and normalized, keep-alive by default on HTTP/1.1, the whole block consumed")
    func get() throws {
        let text = "GET /a/./b//c/../d%20e.txt?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n"
        let (parsed, consumed) = try #require(request(text))
        #expect(String(decoding: parsed.path, as: UTF8.self) == "a/b/d e.txt")
        #expect(!parsed.isHead && !parsed.isHTTP10 && parsed.keepAlive)
        #expect(consumed == text.utf8.count)
        #expect(parsed.line == "GET /a/./b//c/../d%20e.txt?x=1 HTTP/1.1")
        #expect(parsed.range == nil && parsed.ifModifiedSince == nil)
    }

    @Test("pipelined requests: the first is parsed and only its bytes are consumed")
    func pipelined() throws {
        let first = "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
        let (parsed, consumed) = try #require(request(first + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(parsed.isHead)
        #expect(parsed.path.isEmpty)
        #expect(consumed == first.utf8.count)
    }

    @Test("empty lines before a request are skipped; an absolute-form target keeps its path")
    func leadingLinesAndAbsoluteForm() throws {
        let (parsed, _) = try #require(request("\r\n\r\nGET http://example.com/x/y HTTP/1.1\r\nHost: example.com\r\n\r\n"))
        #expect(String(decoding: parsed.path, as: UTF8.self) == "x/y")
    }

    @Test("HTTP/1.0 closes unless it asks for keep-alive; Connection: close and a body close on 1.1")
    func connectionPersistence() throws {
        #expect(try #require(request("GET / HTTP/1.0\r\n\r\n")).0.keepAlive == false)
        let keptAlive = try #require(request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).0
        #expect(keptAlive.isHTTP10 && keptAlive.keepAlive)
        #expect(try #require(request("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n")).0.keepAlive == false)
        #expect(try #require(request("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")).0.keepAlive == false)
        #expect(try #require(request("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")).0.keepAlive)
    }

    @Test("a request without its blank line is incomplete, and so is nothing at all")
    func incomplete() {
        for text in ["", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: h\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\r"] {
            guard case .incomplete = parse(text) else {
                Issue.record("\(text.debugDescription): \(parse(text))")
                continue
            }
        }
    }

    @Test("bad input is refused with the status the server answers",
          arguments: [
              ("GET / HTTP/1.1\r\n\r\n", Status.badRequest),                              // no Host on 1.1
              ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .badRequest),             // two Hosts
              ("POST / HTTP/1.1\r\nHost: h\r\n\r\n", .methodNotAllowed),
              ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", .versionNotSupported),
              ("GET / HTTX/1.1\r\nHost: h\r\n\r\n", .badRequest),
              ("GET /../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n", .forbidden),            // above the root
              ("GET /a/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: h\r\n\r\n", .forbidden),        // the same, encoded
              ("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest),                   // NUL in the path
              ("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest),
              ("GET a HTTP/1.1\r\nHost: h\r\n\r\n", .badRequest),                        // not origin-form
              ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", .notImplemented),
              ("GET / HTTP/1.1\r\nHost: h\r\n X-Folded: y\r\n\r\n", .badRequest),       // obs-fold
              ("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{1}b\r\n\r\n", .badRequest),          // control byte in a value
              ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", .badRequest),
              ("GET / HTTP/1.1\r\nHost h\r\n\r\n", .badRequest),                         // no colon
          ])
    func refused(text: String, status: Status) {
        #expect(refusal(text) == status, "\(text.debugDescription)")
    }

    @Test("a target longer than the limit is 414, even before the header block ends")
    func targetTooLong() {
        let long = "/" + String(repeating: "a", count: HTTPParser.maximumTarget + 1)
        #expect(refusal("GET \(long) HTTP/1.1\r\nHost: h\r\n\r\n") == .uriTooLong)
        #expect(refusal("GET \(long)\(String(repeating: "b", count: 100))") == .uriTooLong)
        #expect(refusal("GET /\(String(repeating: "a", count: 100)) HTTP/1.1\r\nHost: h\r\n\r\n") == nil)
    }

    @Test("statuses that make the framing untrustworthy close the connection")
    func closingStatuses() {
        #expect(Status.badRequest.closesConnection && Status.notImplemented.closesConnection)
        #expect(!Status.notFound.closesConnection && !Status.rangeNotSatisfiable.closesConnection)
        #expect(Status.rangeNotSatisfiable.reason == "Range Not Satisfiable")
    }
}

@Suite("HTTP ranges, dates and content types")
struct HeaderValueTests {
    @Test("one byte range parses; several, other units and bad syntax are ignored")
    func rangeHeader() {
        #expect(range("bytes=0-99") == .fromTo(0, 99))
        #expect(range("bytes=100-") == .from(100))
        #expect(range("bytes=-5") == .suffix(5))
        for ignored in ["bytes=0-1,5-6", "items=0-1", "bytes=", "bytes=-", "bytes=5-4", "bytes=a-b", "bytes=1-2-3", "bytes= 1-2"] {
            #expect(range(ignored) == nil, "\(ignored)")
        }
        #expect(range("bytes=0-\(String(repeating: "9", count: 19))") == nil)   // over 18 digits
    }

    @Test("a range resolves to the bytes a file of that size has, or to nothing")
    func rangeResolution() {
        #expect(RangeRequest.fromTo(0, 99).resolve(size: 50)! == (0, 49))
        #expect(RangeRequest.fromTo(10, 19).resolve(size: 50)! == (10, 19))
        #expect(RangeRequest.fromTo(50, 60).resolve(size: 50) == nil)
        #expect(RangeRequest.from(49).resolve(size: 50)! == (49, 49))
        #expect(RangeRequest.from(50).resolve(size: 50) == nil)
        #expect(RangeRequest.suffix(10).resolve(size: 50)! == (40, 49))
        #expect(RangeRequest.suffix(100).resolve(size: 50)! == (0, 49))
        #expect(RangeRequest.suffix(0).resolve(size: 50) == nil)
        #expect(RangeRequest.suffix(10).resolve(size: 0) == nil)
    }

    @Test("the range of a request, dropped under If-Range; If-Modified-Since parsed")
    func headersOfARequest() throws {
        let ranged = try #require(request("GET /f HTTP/1.1\r\nHost: h\r\nrange: bytes=2-3\r\n\r\n")).0
        #expect(ranged.range == .fromTo(2, 3))
        let validated = try #require(request("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=2-3\r\nIf-Range: \"x\"\r\n\r\n")).0
        #expect(validated.range == nil)
        let conditional = try #require(request("GET /f HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n")).0
        #expect(conditional.ifModifiedSince == 784_111_777)
    }

    @Test("IMF-fixdate: formatted and parsed back; other forms are not dates")
    func dates() {
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(date("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.commonLogFormat(784_111_777) == "06/Nov/1994:08:49:37 +0000")
        for seconds in [0, 1, 951_782_400, 1_798_761_599] {
            #expect(date(HTTPDate.format(seconds)) == seconds)
        }
        #expect(date("Sunday, 06-Nov-94 08:49:37 GMT") == nil)   // RFC 850
        #expect(date("Sun Nov  6 08:49:37 1994") == nil)          // asctime
        #expect(date("Sun, 06 Foo 1994 08:49:37 GMT") == nil)
    }

    @Test("content types by extension, case-insensitive, with a fallback")
    func contentTypes() {
        #expect(ContentType.of(path: Array("a/index.HTML".utf8)) == "text/html; charset=utf-8")
        #expect(ContentType.of(path: Array("x.png".utf8)) == "image/png")
        #expect(ContentType.of(path: Array("dir.d/file".utf8)) == ContentType.fallback)
        #expect(ContentType.of(path: Array("noextension".utf8)) == ContentType.fallback)
        #expect(ContentType.of(path: Array("a.unknown".utf8)) == ContentType.fallback)
    }
}
