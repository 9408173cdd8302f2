import Testing
@testable import Tensor

@Suite struct BufferPoolTests {
    let mb = 1 << 20

    @Test func sizeClassesAreHugePageMultiplesFromOneMegabyte() {
        #expect(BufferPool.sizeClass(forBytes: mb - 4) == nil)
        #expect(BufferPool.sizeClass(forBytes: mb) == 2 * mb)
        #expect(BufferPool.sizeClass(forBytes: 2 * mb) == 2 * mb)
        #expect(BufferPool.sizeClass(forBytes: 2 * mb + 4) == 4 * mb)
        #expect(BufferPool.sizeClass(forBytes: 33_686_528) == 34 * mb)
    }

    @Test func freedBufferIsReusedForTheSameClassAndIsHugePageAligned() {
        let pool = BufferPool()
        let a = pool.allocate(sizeClass: 4 * mb).base
        #expect(UInt(bitPattern: a) % UInt(BufferPool.granularity) == 0)
        a.storeBytes(of: 42, toByteOffset: 4 * mb - 4, as: Float.self)   // the whole class is writable
        pool.deallocate(a, sizeClass: 4 * mb)
        let b = pool.allocate(sizeClass: 4 * mb).base
        #expect(b == a)
        let s = pool.statistics
        #expect(s.hits == 1 && s.misses == 1 && s.liveBytes == 4 * mb && s.cachedBytes == 0)
        pool.deallocate(b, sizeClass: 4 * mb)
        pool.trim()
        #expect(pool.statistics.cachedBytes == 0 && pool.statistics.liveBytes == 0)
    }

    @Test func aMissReturnsCachedMemoryBeforeMappingMore() {
        let pool = BufferPool()
        let small = [pool.allocate(sizeClass: 2 * mb).base, pool.allocate(sizeClass: 2 * mb).base, pool.allocate(sizeClass: 2 * mb).base]
        for p in small { pool.deallocate(p, sizeClass: 2 * mb) }
        #expect(pool.statistics.cachedBytes == 6 * mb)
        // No 4 MiB buffer cached: two 2 MiB ones make room, one unmapped and one grown to 4 MiB.
        let big = pool.allocate(sizeClass: 4 * mb).base
        var s = pool.statistics
        #expect(s.misses == 4 && s.evictions == 1 && s.recycled == 1 && s.cachedBytes == 2 * mb && s.liveBytes == 4 * mb)
        #expect(s.peakOwnedBytes == 6 * mb)
        pool.deallocate(big, sizeClass: 4 * mb)
        pool.trim()
        s = pool.statistics
        #expect(s.cachedBytes == 0 && s.liveBytes == 0)
    }

    @Test func ownedMemoryNeverExceedsTheLivePeak() {
        let pool = BufferPool()
        var rng = RandomGenerator(seed: 7)
        var live: [(UnsafeMutableRawPointer, Int)] = []
        var liveBytes = 0, maxLive = 0
        for _ in 0..<2000 {
            if live.count < 3 || (live.count < 24 && rng.nextInt(below: 2) == 0) {
                let got = pool.allocate(sizeClass: (1 + rng.nextInt(below: 6)) * BufferPool.granularity)
                live.append(got)
                liveBytes += got.bytes
                maxLive = max(maxLive, liveBytes)
            } else {
                let (p, bytes) = live.remove(at: rng.nextInt(below: live.count))
                pool.deallocate(p, sizeClass: bytes)
                liveBytes -= bytes
            }
            #expect(pool.statistics.liveBytes == liveBytes)
        }
        let s = pool.statistics
        #expect(s.peakOwnedBytes <= maxLive, "pool owned \(s.peakOwnedBytes) bytes, live peak \(maxLive)")
        for (p, bytes) in live { pool.deallocate(p, sizeClass: bytes) }
        pool.trim()
    }

    @Test func aRepeatedStepAllocatesNothingNewAfterTheFirst() {
        let pool = BufferPool()
        var rng = RandomGenerator(seed: 3)
        let sizes = (0..<40).map { _ in (1 + rng.nextInt(below: 8)) * BufferPool.granularity }
        var missesPerStep: [Int] = []
        for _ in 0..<3 {
            let before = pool.statistics.misses
            // Forward: activations stay, a temporary comes and goes per layer; backward: reverse order.
            var kept: [(UnsafeMutableRawPointer, Int)] = []
            for s in sizes {
                let temp = pool.allocate(sizeClass: 2 * BufferPool.granularity)
                kept.append(pool.allocate(sizeClass: s))
                pool.deallocate(temp.base, sizeClass: temp.bytes)
            }
            while let (p, s) = kept.popLast() { pool.deallocate(p, sizeClass: s) }
            missesPerStep.append(pool.statistics.misses - before)
        }
        #expect(missesPerStep[0] > 0 && missesPerStep[1] == 0 && missesPerStep[2] == 0, "\(missesPerStep)")
        pool.trim()
    }

    @Test func aSmallerRequestTakesTheSmallestCachedBufferUpToTwiceItsSize() {
        let pool = BufferPool()
        let four = pool.allocate(sizeClass: 4 * mb), ten = pool.allocate(sizeClass: 10 * mb)
        pool.deallocate(ten.base, sizeClass: ten.bytes)
        pool.deallocate(four.base, sizeClass: four.bytes)
        let got = pool.allocate(sizeClass: 3 * mb - mb)           // 2 MiB: the 4 MiB buffer serves it
        #expect(got.base == four.base && got.bytes == 4 * mb)
        let s = pool.statistics
        #expect(s.hits == 1 && s.misses == 2 && s.liveBytes == 4 * mb && s.cachedBytes == 10 * mb)
        // 10 MiB is more than twice 4: a miss, which must make room, so the 10 MiB buffer is
        // shrunk in place to 4 MiB rather than unmapped.
        let other = pool.allocate(sizeClass: 4 * mb)
        #expect(other.base == ten.base && other.bytes == 4 * mb)
        #expect(pool.statistics.misses == 3 && pool.statistics.recycled == 1 && pool.statistics.evictions == 0)
        #expect(pool.statistics.cachedBytes == 0)
        pool.deallocate(got.base, sizeClass: got.bytes)
        pool.deallocate(other.base, sizeClass: other.bytes)
        pool.trim()
    }

    @Test func aMissThatMustMakeRoomResizesACachedBufferKeepingItsPages() {
        let pool = BufferPool()
        // Grown: a cached 4 MiB buffer serves a 6 MiB request; its first 4 MiB keep their contents.
        let four = pool.allocate(sizeClass: 4 * mb)
        four.base.storeBytes(of: 7, toByteOffset: 0, as: Float.self)
        four.base.storeBytes(of: 9, toByteOffset: 4 * mb - 4, as: Float.self)
        pool.deallocate(four.base, sizeClass: four.bytes)
        let six = pool.allocate(sizeClass: 6 * mb)
        #expect(six.bytes == 6 * mb && UInt(bitPattern: six.base) % UInt(BufferPool.granularity) == 0)
        #expect(six.base.load(fromByteOffset: 0, as: Float.self) == 7)
        #expect(six.base.load(fromByteOffset: 4 * mb - 4, as: Float.self) == 9)
        six.base.storeBytes(of: 1, toByteOffset: 6 * mb - 4, as: Float.self)   // the added pages are writable
        var s = pool.statistics
        #expect(s.misses == 2 && s.recycled == 1 && s.evictions == 0 && s.liveBytes == 6 * mb && s.cachedBytes == 0)
        #expect(s.peakOwnedBytes == 6 * mb)
        // Shrunk: a 2 MiB request after it (the 6 MiB buffer is more than twice 2) keeps its place.
        pool.deallocate(six.base, sizeClass: six.bytes)
        let two = pool.allocate(sizeClass: 2 * mb)
        #expect(two.base == six.base && two.bytes == 2 * mb)
        #expect(two.base.load(fromByteOffset: 0, as: Float.self) == 7)
        s = pool.statistics
        #expect(s.misses == 3 && s.recycled == 2 && s.liveBytes == 2 * mb && s.cachedBytes == 0)
        pool.deallocate(two.base, sizeClass: two.bytes)
        pool.trim()
    }

    @Test func disabledPoolKeepsNothing() {
        let pool = BufferPool(enabled: false)
        let a = pool.allocate(sizeClass: 2 * mb).base
        pool.deallocate(a, sizeClass: 2 * mb)
        _ = pool.allocate(sizeClass: 2 * mb)
        let s = pool.statistics
        #expect(s.hits == 0 && s.misses == 2 && s.cachedBytes == 0)
    }

    @Test func concurrentUseHandsOutDisjointBuffers() {
        let pool = BufferPool()
        let bad = SendablePointer(UnsafeMutablePointer<Float>.allocate(capacity: 64))
        bad.base.initialize(repeating: 0, count: 64)
        defer { bad.base.deallocate() }
        Parallel.$threads.withValue(4) {
            parallelFor(64, grain: 1) { range in
                for i in range {
                    let got = pool.allocate(sizeClass: (1 + i % 3) * BufferPool.granularity)
                    let bytes = got.bytes
                    let p = got.base.bindMemory(to: Float.self, capacity: bytes / 4)
                    for j in stride(from: 0, to: bytes / 4, by: 1024) { p[j] = Float(i) }
                    for j in stride(from: 0, to: bytes / 4, by: 1024) where p[j] != Float(i) { bad.base[i] = 1 }
                    pool.deallocate(UnsafeMutableRawPointer(p), sizeClass: bytes)
                }
            }
        }
        #expect((0..<64).allSatisfy { bad.base[$0] == 0 })
        #expect(pool.statistics.liveBytes == 0)
        pool.trim()
    }

    @Test func largeTensorsComeFromThePool() {
        let t = Tensor.zeros([512, 1024])                        // 2 MiB
        #expect(UInt(bitPattern: t.storage.base) % UInt(BufferPool.granularity) == 0)
        let small = Tensor.zeros([16])
        #expect(UInt(bitPattern: small.storage.base) % 64 == 0)
        #expect(t.sum() == 0)
    }
}
