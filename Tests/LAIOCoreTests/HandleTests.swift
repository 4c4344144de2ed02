import LAIOCore
import Testing

@Suite("handle layout")
struct HandleTests {
    @Test("slot index plus one in bits 0-31, so no handle is zero")
    func slotBits() {
        let first = Handle(slot: 0, generation: 0)
        #expect(first.rawValue == 1)
        #expect(first.slot == 0 && !first.isRouteTagged)
        let last = Handle(slot: Int(UInt32.max) - 1, generation: 0)
        #expect(last.rawValue == UInt64(UInt32.max))
        #expect(last.slot == Int(UInt32.max) - 1)
        #expect(Handle(rawValue: 0).slot == -1, "a zero low half names no slot")
    }

    @Test("the generation in bits 32-62, kept to 31 bits, so a reused slot gives a new handle")
    func generationBits() {
        let handle = Handle(slot: 41, generation: 7)
        #expect(handle.rawValue == 7 << 32 | 42)
        #expect(handle.slot == 41)
        #expect(Handle(slot: 41, generation: 8) != handle)
        // The 32nd bit of a generation never reaches the route tag.
        let wrapped = Handle(slot: 3, generation: .max)
        #expect(wrapped.rawValue == 0x7fff_ffff << 32 | 4)
        #expect(!wrapped.isRouteTagged && wrapped.slot == 3)
        #expect(Handle(slot: 3, generation: 1 << 31) == Handle(slot: 3, generation: 0))
    }

    @Test("the route tag is bit 63 and changes neither slot nor generation")
    func routeTag() {
        let plain = Handle(slot: 5, generation: 9)
        let tagged = Handle(slot: 5, generation: 9, routeTagged: true)
        #expect(tagged.isRouteTagged && !plain.isRouteTagged)
        #expect(tagged.rawValue == plain.rawValue | 1 << 63)
        #expect(Handle.routeTag == 1 << 63)
        #expect(tagged.slot == 5)
        #expect(tagged != plain)
    }
}
