/// Fast kernels on raw buffers. Each op has a forward and a backward that *accumulates* (`+=`)
/// into gradient buffers, so zeroing gradients is one fill. Shapes are in the doc comments using
/// B (batch), T (tokens), C (channels), NH (heads), HS (head size), P (patch).
public enum Kernels {}

/// Straightforward reference implementations of the fast kernels ("naive twins"), used by the
/// tests as oracles and by the benchmarks as baselines. Correct, simple, slow.
public enum Naive {}
