// libFuzzer entry point for laio-httpd's request parser (the HTTPParsing target, built with
// fuzzer instrumentation and linked with this file by scripts/fuzz). Besides "does not
// crash", it checks what the server relies on: a request's consumed length is inside the input, its path is
// normalized (no empty, "." or ".." segment, no leading slash, no NUL or control byte), a
// parsed range is well-formed and resolves inside any file size, and the same input parses
// the same way twice.
#if canImport(Glibc)
import Glibc
#endif
import HTTPParsing

func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        let line = "FuzzHTTP invariant broken: \(message())\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        abort()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    let outcome = HTTPParser.parse(buffer, logLine: true)
    switch outcome {
    case .incomplete:
        check(HTTPParser.parse(buffer, logLine: false).isIncomplete, "a second parse differs")
    case let .failure(status):
        check(status.rawValue >= 400, "failure with status \(status.rawValue)")
    case let .request(request, consumed):
        check(consumed > 0 && consumed <= size, "consumed \(consumed) of \(size)")
        let path = request.path
        check(path.first != UInt8(ascii: "/"), "leading slash")
        check(!path.contains { $0 < 0x20 || $0 == 0x7f }, "control byte in path")
        for segment in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            check(!segment.isEmpty || path.isEmpty, "empty segment in \(path)")
            check(!segment.elementsEqual(".".utf8) && !segment.elementsEqual("..".utf8), "dot segment in \(path)")
        }
        if let range = request.range {
            if case let .fromTo(first, last) = range { check(first <= last, "range \(first)-\(last)") }
            for fileSize: Int64 in [0, 1, 100, 1 << 40] {
                if let (first, last) = range.resolve(size: fileSize) {
                    check(first >= 0 && first <= last && last < fileSize, "range \(range) on \(fileSize): \(first)-\(last)")
                }
            }
        }
        _ = ContentType.of(path: path)
        if case let .request(again, consumedAgain) = HTTPParser.parse(buffer, logLine: false) {
            check(again.path == path && consumedAgain == consumed, "a second parse differs")
        } else {
            check(false, "a second parse differs")
        }
    }
    // Header values on their own: dates and ranges.
    if let date = HTTPDate.parse(buffer) { _ = HTTPDate.format(date) }
    _ = RangeRequest(header: buffer)
    return 0
}

extension ParseOutcome {
    var isIncomplete: Bool { if case .incomplete = self { true } else { false } }
}
