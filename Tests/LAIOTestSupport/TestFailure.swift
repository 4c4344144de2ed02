/// A check of a test or of laio-stress that failed, or a setup step (a pipe, a socket, a
/// file) that could not be made, with what happened.
///
/// The helpers of this target throw it instead of recording an issue, so that Swift
/// Testing tests and laio-stress, which does not link Swift Testing, share them: in a test
/// a thrown `TestFailure` fails the test with its description.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
