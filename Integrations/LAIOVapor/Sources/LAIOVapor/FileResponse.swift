#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIO
import LAIONIOFiles
import NIOCore
import SystemPackage
import Vapor

// The response for an open file, shared by LAIOFileMiddleware and `req.laio.streamFile`:
// the answers of Vapor's `FileIO.asyncStreamFile` (its headers, 304, single ranges and the
// 400s of bad ones), from one `fstat` of the descriptor the body then reads. Only the file
// calls differ: they go through LAIO, on the descriptor already open.

extension LAIOFiles {
    /// The response to `request` for `file` (status `status`), whose path is `path`: a
    /// streamed body of the file or the requested range, or 304. A GET of at most
    /// `bufferedUpTo` bytes is read before the response is made and sent from one buffer
    /// (the same answer without a body task and a hop per chunk; the descriptor is closed
    /// at once).
    ///
    /// Throws `Abort(.badRequest)` for a `Range` header that does not parse or that the file
    /// cannot satisfy, as Vapor does. The descriptor is closed when the body ends or fails,
    /// or, if the body never runs (HEAD, 304, an error), when the response is released.
    func response(
        to request: Request,
        for file: OpenDescriptor,
        status: FileStatus,
        path: String,
        mediaType: HTTPMediaType?,
        advancedETagComparison: Bool,
        bufferedUpTo: Int = 0,
        onCompleted: @escaping @Sendable (Result<Void, any Error>) async throws -> Void
    ) async throws -> Response {
        let range: HTTPHeaders.Range.Value?
        if let header = request.headers.range {
            // Several ranges, or another unit: the whole file (Vapor sends no multipart).
            range = header.unit == .bytes && header.ranges.count == 1 ? header.ranges[0] : nil
        } else if request.headers.contains(name: .range) {
            throw Abort(.badRequest)
        } else {
            range = nil
        }

        let eTag = advancedETagComparison
            ? try await contentHash(of: file, size: status.size, path: path)
            : "\"\(status.modifiedSeconds)-\(status.size)\""

        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .lastModified, value: HTTPDate(seconds: status.modifiedSeconds).description)
        headers.replaceOrAdd(name: .eTag, value: eTag)

        if eTag == request.headers.first(name: .ifNoneMatch) {
            // 304 keeps the ETag and the Content-Length a 200 would have had (RFC 9110).
            headers.replaceOrAdd(name: .contentLength, value: String(status.size))
            return Response(status: .notModified, version: .http1_1, headersNoUpdate: headers, body: .empty)
        }
        headers.replaceOrAdd(name: .acceptRanges, value: "bytes")

        let response = Response(status: .ok, headers: headers)
        var bytes = 0..<status.size
        if let range {
            response.status = .partialContent
            do {
                let served = try range.asResponseContentRange(limit: status.size)
                response.headers.contentRange = HTTPHeaders.ContentRange(unit: .bytes, range: served)
                bytes = try Self.bytes(of: range, size: status.size)
            } catch {
                throw Abort(.badRequest)
            }
        }
        // The type from the text after the path's last dot, as Vapor looks it up.
        let suffix = path.split(separator: ".", omittingEmptySubsequences: false).last.map(String.init) ?? path
        if let type = mediaType ?? HTTPMediaType.fileExtension(suffix) {
            response.headers.contentType = type
        }

        if bytes.count <= bufferedUpTo && request.method != .HEAD {
            let body: ByteBuffer
            do {
                body = try await read(file, range: bytes, path: path)
            } catch {
                await close(file)
                throw error
            }
            await close(file)
            response.body = .init(buffer: body, byteBufferAllocator: request.byteBufferAllocator)
            return response
        }
        let files = self
        let served = bytes
        response.body = .init(asyncStream: { stream in
            do {
                try await files.stream(file, range: served, path: path) { try await stream.writeBuffer($0) }
                await files.close(file)
                try await stream.write(.end)
                try await onCompleted(.success(()))
            } catch {
                await files.close(file)
                try? await stream.write(.error(error))
                try await onCompleted(.failure(error))
            }
        }, count: served.count, byteBufferAllocator: request.byteBufferAllocator)
        return response
    }

    /// The bytes a single range asks for, with Vapor's bounds: a start or a suffix length
    /// up to the size, `a-b` with `a <= b <= size` (so `b == size` asks for one byte past
    /// the end, which ends the body early, as under Vapor's own FileIO).
    static func bytes(of range: HTTPHeaders.Range.Value, size: Int) throws -> Range<Int> {
        switch range {
        case .start(let start):
            guard start >= 0, start <= size else { throw Abort(.badRequest) }
            return start..<size
        case .tail(let length):
            guard length >= 0, length <= size else { throw Abort(.badRequest) }
            return (size - length)..<size
        case .within(let start, let end):
            guard start >= 0, end >= 0, start <= end, start <= size, end <= size, end < Int.max else {
                throw Abort(.badRequest)
            }
            return start..<(end + 1)
        }
    }

    /// The hex SHA-256 of the file's `size` bytes, for `advancedETagComparison` (as Vapor
    /// computes it; read one chunk at a time).
    func contentHash(of file: OpenDescriptor, size: Int, path: String) async throws -> String {
        var hash = SHA256()
        try await stream(file, range: 0..<size, path: path) { chunk in
            chunk.withUnsafeReadableBytes { hash.update(bufferPointer: $0) }
        }
        return hash.finalize().hex
    }
}
