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
        let big = pool.allocate(sizeClass: 4 * mb).base            // no 4 MiB buffer cached: two 2 MiB ones go
        var s = pool.statistics
        #expect(s.misses == 4 && s.evictions == 2 && s.cachedBytes == 2 * mb && s.liveBytes == 4 * mb)
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
        let other = pool.allocate(sizeClass: 4 * mb)              // 10 MiB is more than twice 4: a miss
        #expect(other.base != ten.base && pool.statistics.misses == 3)
        pool.deallocate(got.base, sizeClass: got.bytes)
        pool.deallocate(other.base, sizeClass: other.bytes)
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
