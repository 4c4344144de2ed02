#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A time as HTTP writes it (RFC 9110's IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"), from
/// whole seconds: the text of Vapor's `HTTPHeaders.LastModified`, which makes a
/// `DateFormatter` per response, made here with `gmtime_r` and a few appends.
struct HTTPDate: CustomStringConvertible {
    let seconds: Int

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    var description: String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var year = String(parts.tm_year + 1900)
        while year.utf8.count < 4 { year = "0" + year }
        return "\(Self.days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(Self.months[Int(parts.tm_mon)]) \(year) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
