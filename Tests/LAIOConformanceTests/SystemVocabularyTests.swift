#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

@Suite("swift-system's vocabulary")
struct SystemVocabularyTests {
    @Test("the FileDescriptor forms run the same calls as the raw forms", arguments: allBackends)
    func descriptorForms(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let file = try FileDescriptor.open(FilePath("\(dir)/data"), .readWrite, options: [.create], permissions: .ownerReadWrite)
            let content = pattern(count: 8192)
            try content.withUnsafeBytes { bytes throws in
                #expect(try complete(.write(file, from: UnsafeRawBufferPointer(rebasing: bytes[0..<4096])), in: laio) == .success(4096))
                #expect(try complete(.write(file, from: UnsafeRawBufferPointer(rebasing: bytes[4096...]), at: 4096), in: laio) == .success(4096))
            }
            #expect(try complete(.sync(file), in: laio) == .success(0))
            #expect(try complete(.sync(file, dataOnly: true), in: laio) == .success(0))
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
            defer { buffer.deallocate() }
            #expect(try complete(.read(file, into: buffer, at: 1000), in: laio) == .success(4096))
            #expect(Array(buffer) == Array(content[1000..<5096]))
            let info = UnsafeMutablePointer<stat>.allocate(capacity: 1)  // lives until the call is reported
            defer { info.deallocate() }
            #expect(try complete(.stat(file, into: info), in: laio) == .success(0))
            #expect(info.pointee.st_size == 8192)
            #expect(try complete(.close(file), in: laio) == .success(0))
            // A closed descriptor answers as the raw form does.
            #expect(try complete(.read(file, into: buffer, at: 0), in: laio) == .failure(.badFileDescriptor))
        }
    }
}
