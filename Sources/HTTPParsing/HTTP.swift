#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CHTTPD

// HTTP/1.x for a static file server: request parsing over raw bytes (no allocation on the
// common path but the decoded path), status lines, dates, content types and ranges. A module
// of its own so that laio-httpd, the fuzzer (scripts/fuzz) and HTTPParsingTests use one copy;
// its names are `package`, not public: it is no product of swift-laio.

/// A response status laio-httpd sends.
package enum Status: Int, Error {
    case ok = 200, partialContent = 206, notModified = 304
    case badRequest = 400, forbidden = 403, notFound = 404, methodNotAllowed = 405
    case uriTooLong = 414, rangeNotSatisfiable = 416, headersTooLarge = 431
    case internalError = 500, notImplemented = 501, unavailable = 503, versionNotSupported = 505

    package var reason: String {
        switch self {
        case .ok: "OK"
        case .partialContent: "Partial Content"
        case .notModified: "Not Modified"
        case .badRequest: "Bad Request"
        case .forbidden: "Forbidden"
        case .notFound: "Not Found"
        case .methodNotAllowed: "Method Not Allowed"
        case .uriTooLong: "URI Too Long"
        case .rangeNotSatisfiable: "Range Not Satisfiable"
        case .headersTooLarge: "Request Header Fields Too Large"
        case .internalError: "Internal Server Error"
        case .notImplemented: "Not Implemented"
        case .unavailable: "Service Unavailable"
        case .versionNotSupported: "HTTP Version Not Supported"
        }
    }

    /// After these the request's framing cannot be trusted: the connection closes.
    package var closesConnection: Bool {
        switch self {
        case .badRequest, .uriTooLong, .headersTooLarge, .versionNotSupported, .notImplemented, .internalError, .unavailable: true
        default: false
        }
    }
}

/// A byte range asked for with `Range: bytes=...` (one range only).
package enum RangeRequest: Equatable {
    case fromTo(Int64, Int64)   // bytes=a-b
    case from(Int64)            // bytes=a-
    case suffix(Int64)          // bytes=-n

    /// The first and last byte for a file of `size` bytes, or nil when unsatisfiable.
    package func resolve(size: Int64) -> (first: Int64, last: Int64)? {
        switch self {
        case let .fromTo(a, b): return a < size && a <= b ? (a, min(b, size - 1)) : nil
        case let .from(a): return a < size ? (a, size - 1) : nil
        case let .suffix(n): return n > 0 && size > 0 ? (max(size - n, 0), size - 1) : nil
        }
    }

    /// Parses the value of a Range header; nil for anything but one well-formed byte range
    /// (several ranges, other units and bad syntax are ignored: the whole file is sent).
    package init?(header value: UnsafeRawBufferPointer) {
        let prefix = Array("bytes=".utf8)
        guard value.count > prefix.count, value.prefix(prefix.count).elementsEqual(prefix) else { return nil }
        let spec = UnsafeRawBufferPointer(rebasing: value[(value.startIndex + prefix.count)...])
        guard !spec.contains(UInt8(ascii: ",")), let dash = spec.firstIndex(of: UInt8(ascii: "-")) else { return nil }
        let first = parseDecimal(UnsafeRawBufferPointer(rebasing: spec[..<dash]))
        let last = parseDecimal(UnsafeRawBufferPointer(rebasing: spec[(dash + 1)...]))
        switch (dash == spec.startIndex, dash == spec.endIndex - 1) {
        case (true, false): guard let last else { return nil }; self = .suffix(last)
        case (false, true): guard let first else { return nil }; self = .from(first)
        case (false, false): guard let first, let last, first <= last else { return nil }; self = .fromTo(first, last)
        case (true, true): return nil
        }
    }
}

/// A non-negative decimal of at most 18 digits, or nil.
func parseDecimal(_ bytes: UnsafeRawBufferPointer) -> Int64? {
    guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
    var value: Int64 = 0
    for byte in bytes {
        guard byte >= 0x30 && byte <= 0x39 else { return nil }
        value = value * 10 + Int64(byte - 0x30)
    }
    return value
}

/// One parsed request.
package struct Request {
    package var isHead = false
    /// The decoded, normalized path below the root, without a leading slash ("" is the root).
    package var path: [UInt8] = []
    package var isHTTP10 = false
    package var keepAlive = true
    package var ifModifiedSince: Int? = nil
    package var range: RangeRequest? = nil
    /// The request line as sent (for the access log).
    package var line: String = ""

    package init() {}
}

package enum ParseOutcome {
    /// More bytes are needed.
    case incomplete
    /// A request, and how many bytes of the buffer it took.
    case request(Request, consumed: Int)
    /// The request is bad; answer with this status.
    case failure(Status)
}

package enum HTTPParser {
    package static let maximumTarget = 8192

    /// Parses one request at the start of `buffer` (which may hold more: pipelining).
    package static func parse(_ buffer: UnsafeRawBufferPointer, logLine: Bool) -> ParseOutcome {
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var start = 0
        // Empty lines before a request are ignored (RFC 9112 2.2).
        while start + 1 < buffer.count, buffer[start] == cr, buffer[start + 1] == lf { start += 2 }
        // The end of the header block.
        var end = -1
        if let base = buffer.baseAddress, buffer.count - start >= 4,
           let found = laio_httpd_memmem(base + start, buffer.count - start, "\r\n\r\n", 4) {
            end = base.distance(to: UnsafeRawPointer(found))
        }
        guard end >= 0 else {
            // A request line longer than any target we accept: say so before headers fill up.
            if !buffer[start...].contains(lf) && buffer.count - start > maximumTarget + 64 { return .failure(.uriTooLong) }
            return .incomplete
        }
        let consumed = end + 4
        let lineEnd = buffer[start..<end].firstIndex(of: lf).map { $0 - 1 } ?? end
        guard lineEnd >= start, buffer[lineEnd] == cr || lineEnd == end else { return .failure(.badRequest) }
        let line = UnsafeRawBufferPointer(rebasing: buffer[start..<lineEnd])
        var request = Request()
        if let status = parseRequestLine(line, into: &request) { return .failure(status) }
        if logLine { request.line = String(decoding: line, as: UTF8.self) }

        // Header fields.
        var hosts = 0
        var closeAfter = false
        var ifRange = false
        var position = lineEnd + 2
        while position < end + 2 {
            let fieldEnd = buffer[position..<(end + 2)].firstIndex(of: cr) ?? end
            guard fieldEnd + 1 < buffer.count, buffer[fieldEnd + 1] == lf else { return .failure(.badRequest) }
            let field = UnsafeRawBufferPointer(rebasing: buffer[position..<fieldEnd])
            position = fieldEnd + 2
            guard let colon = field.firstIndex(of: UInt8(ascii: ":")), colon > field.startIndex else { return .failure(.badRequest) }
            let name = UnsafeRawBufferPointer(rebasing: field[..<colon])
            guard name.allSatisfy(isTokenCharacter) else { return .failure(.badRequest) }  // also refuses obs-fold
            let value = trimmed(UnsafeRawBufferPointer(rebasing: field[(colon + 1)...]))
            guard !value.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7f }) else { return .failure(.badRequest) }
            switch name.count {
            case 4 where equalsIgnoringCase(name, "host"):
                hosts += 1
            case 10 where equalsIgnoringCase(name, "connection"):
                for token in value.split(separator: UInt8(ascii: ",")) {
                    let word = trimmed(UnsafeRawBufferPointer(rebasing: token))
                    if equalsIgnoringCase(word, "close") { request.keepAlive = false }
                    if equalsIgnoringCase(word, "keep-alive") && request.isHTTP10 { request.keepAlive = true }
                }
            case 5 where equalsIgnoringCase(name, "range"):
                request.range = RangeRequest(header: value)
            case 8 where equalsIgnoringCase(name, "if-range"):
                ifRange = true
            case 17 where equalsIgnoringCase(name, "if-modified-since"):
                request.ifModifiedSince = HTTPDate.parse(value)
            case 14 where equalsIgnoringCase(name, "content-length"):
                guard let length = parseDecimal(value) else { return .failure(.badRequest) }
                if length > 0 { closeAfter = true }  // a body we do not read: end the connection after
            case 17 where equalsIgnoringCase(name, "transfer-encoding"):
                return .failure(.notImplemented)
            default:
                break
            }
        }
        // An If-Range validator is not checked here: the whole file is sent (RFC 9110 13.1.5).
        if ifRange { request.range = nil }
        // HTTP/1.1 needs exactly one Host; 1.0 at most one.
        if hosts > 1 || (hosts == 0 && !request.isHTTP10) { return .failure(.badRequest) }
        if closeAfter { request.keepAlive = false }
        return .request(request, consumed: consumed)
    }
}

extension HTTPParser {
    /// METHOD SP request-target SP HTTP-version. Returns the error status, or nil.
    package static func parseRequestLine(_ line: UnsafeRawBufferPointer, into request: inout Request) -> Status? {
        let space = UInt8(ascii: " ")
        guard let firstSpace = line.firstIndex(of: space),
              let lastSpace = line.lastIndex(of: space), lastSpace > firstSpace else { return .badRequest }
        let method = UnsafeRawBufferPointer(rebasing: line[..<firstSpace])
        let target = UnsafeRawBufferPointer(rebasing: line[(firstSpace + 1)..<lastSpace])
        let version = UnsafeRawBufferPointer(rebasing: line[(lastSpace + 1)...])
        guard !method.isEmpty, method.allSatisfy(isTokenCharacter) else { return .badRequest }

        // HTTP/DIGIT.DIGIT
        guard version.count == 8, version.prefix(5).elementsEqual("HTTP/".utf8), version[6] == UInt8(ascii: "."),
              (0x30...0x39).contains(version[5]), (0x30...0x39).contains(version[7]) else { return .badRequest }
        switch (version[5], version[7]) {
        case (UInt8(ascii: "1"), UInt8(ascii: "1")): request.isHTTP10 = false
        case (UInt8(ascii: "1"), UInt8(ascii: "0")): request.isHTTP10 = true; request.keepAlive = false
        default: return .versionNotSupported
        }
        if method.elementsEqual("GET".utf8) {
            request.isHead = false
        } else if method.elementsEqual("HEAD".utf8) {
            request.isHead = true
        } else {
            return .methodNotAllowed
        }
        guard target.count <= maximumTarget else { return .uriTooLong }
        guard !target.contains(space) else { return .badRequest }
        switch decodePath(target) {
        case let .success(path): request.path = path
        case let .failure(status): return status
        }
        return nil
    }

    /// The target's path, percent-decoded and normalized: no empty or "." segments, ".."
    /// applied (above the root is 403), no NUL or control characters (400).
    package static func decodePath(_ target: UnsafeRawBufferPointer) -> Result<[UInt8], Status> {
        var rest = target
        // absolute-form: http://authority/path
        if rest.count >= 7, equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: rest.prefix(7)), "http://") {
            let afterScheme = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + 7)...])
            guard let slash = afterScheme.firstIndex(of: UInt8(ascii: "/")) else { return .failure(.badRequest) }
            rest = UnsafeRawBufferPointer(rebasing: afterScheme[slash...])
        }
        guard rest.first == UInt8(ascii: "/") else { return .failure(.badRequest) }
        if let query = rest.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            rest = UnsafeRawBufferPointer(rebasing: rest[..<query])
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(rest.count)
        var index = rest.startIndex
        while index < rest.endIndex {
            var byte = rest[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < rest.endIndex, let high = hexValue(rest[index + 1]), let low = hexValue(rest[index + 2]) else {
                    return .failure(.badRequest)
                }
                byte = high << 4 | low
                index += 2
            }
            guard byte >= 0x20 && byte != 0x7f else { return .failure(.badRequest) }
            decoded.append(byte)
            index += 1
        }
        var segments: [ArraySlice<UInt8>] = []
        for segment in decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if segment.elementsEqual(".".utf8) { continue }
            if segment.elementsEqual("..".utf8) {
                guard !segments.isEmpty else { return .failure(.forbidden) }
                segments.removeLast()
                continue
            }
            segments.append(segment)
        }
        return .success(Array(segments.joined(separator: [UInt8(ascii: "/")])))
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }
}

/// RFC 9110 tchar.
@inline(__always)
func isTokenCharacter(_ byte: UInt8) -> Bool {
    switch byte {
    case 0x30...0x39, 0x41...0x5a, 0x61...0x7a: true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
         UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
         UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
    default: false
    }
}

/// ASCII case-insensitive comparison with a lowercase literal.
func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
    guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
    let literal = lowercase.utf8Start
    for index in 0..<bytes.count {
        var byte = bytes[index]
        if byte >= 0x41 && byte <= 0x5a { byte |= 0x20 }
        if byte != literal[index] { return false }
    }
    return true
}

func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
    var start = bytes.startIndex, end = bytes.endIndex
    while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
    while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
    return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
}

/// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the only date form laio-httpd sends.
package enum HTTPDate {
    package static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    package static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The broken-down UTC time of `seconds` since the epoch.
    private static func utc(_ seconds: Int) -> tm {
        var time = seconds
        var parts = tm()
        gmtime_r(&time, &parts)
        return parts
    }

    /// Two digits, zero-padded.
    private static func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }

    package static func format(_ seconds: Int) -> String {
        let parts = utc(seconds)
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }

    /// The access log's time: "27/Nov/2026:00:01:44 +0000".
    package static func commonLogFormat(_ seconds: Int) -> String {
        let parts = utc(seconds)
        return "\(two(parts.tm_mday))/\(months[Int(parts.tm_mon)])/\(parts.tm_year + 1900):"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }

    /// Seconds since the epoch of an IMF-fixdate; nil for other forms (then the header is ignored).
    package static func parse(_ value: UnsafeRawBufferPointer) -> Int? {
        guard value.count == 29, value[3] == UInt8(ascii: ","), value[25...].elementsEqual(" GMT".utf8) else { return nil }
        func number(_ from: Int, _ count: Int) -> Int32? {
            parseDecimal(UnsafeRawBufferPointer(rebasing: value[from..<(from + count)])).map { Int32($0) }
        }
        let monthName = String(decoding: UnsafeRawBufferPointer(rebasing: value[8..<11]), as: UTF8.self)
        guard let day = number(5, 2), let month = months.firstIndex(of: monthName), let year = number(12, 4),
              let hour = number(17, 2), let minute = number(20, 2), let second = number(23, 2) else { return nil }
        var parts = tm()
        parts.tm_mday = day
        parts.tm_mon = Int32(month)
        parts.tm_year = year - 1900
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        return timegm(&parts)
    }
}

/// Content-Type by file extension.
package enum ContentType {
    package static let byExtension: [String: String] = [
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
        "js": "text/javascript; charset=utf-8", "mjs": "text/javascript; charset=utf-8",
        "json": "application/json", "txt": "text/plain; charset=utf-8", "xml": "application/xml",
        "svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "ico": "image/x-icon", "pdf": "application/pdf", "wasm": "application/wasm",
        "mp4": "video/mp4", "webm": "video/webm", "mp3": "audio/mpeg", "woff": "font/woff", "woff2": "font/woff2",
        "zip": "application/zip", "gz": "application/gzip", "tar": "application/x-tar", "md": "text/markdown; charset=utf-8",
    ]
    package static let fallback = "application/octet-stream"

    package static func of(path: [UInt8]) -> String {
        guard let dot = path.lastIndex(of: UInt8(ascii: ".")), !path[dot...].contains(UInt8(ascii: "/")) else { return fallback }
        let ext = String(decoding: path[(dot + 1)...], as: UTF8.self).lowercased()
        return byExtension[ext] ?? fallback
    }
}
