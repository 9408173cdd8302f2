// The GELU forward and backward loops, written once for every vector width on vecmath_template.h's
// maths (include that first, with the same operations). The includer also defines VM_GELU (the
// functions' name suffix: maskdm_gelu_forward_<VM_GELU>, maskdm_gelu_backward_<VM_GELU>),
// VM_LOADU(p), VM_STOREU(p, v), VM_ZERO() and VM_GELU_TAIL_FORWARD / VM_GELU_TAIL_BACKWARD:
// statements that finish the last n - i values (they may use inv_sqrt2 and inv_sqrt2pi, below).
#define VM_PASTE2(a, b) a##b
#define VM_PASTE(a, b) VM_PASTE2(a, b)
#define VM_ERF_GAUSS VM_PASTE(erf_gauss, VM_SUFFIX)

/// 1 / sqrt 2 and 1 / sqrt(2 pi), for the loops and the includer's tail statements.
static const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt2pi = 0.3989422804014327f;

__attribute__((target(VM_TARGET))) void VM_PASTE(maskdm_gelu_forward_, VM_GELU)(const float *x, float *y, long n) {
    long i = 0;
    for (; i + VM_SUFFIX <= n; i += VM_SUFFIX) {
        VM_V v = VM_LOADU(x + i), e, g;
        VM_ERF_GAUSS(VM_MUL(v, VM_SET1(inv_sqrt2)), &e, &g);
        VM_V half = VM_MUL(VM_SET1(0.5f), v);
        VM_STOREU(y + i, VM_FMADD(half, e, half));
    }
    VM_GELU_TAIL_FORWARD
}

__attribute__((target(VM_TARGET))) void VM_PASTE(maskdm_gelu_backward_, VM_GELU)(const float *dy, const float *x, float *dx,
                                                                               long n, int accumulate) {
    long i = 0;
    for (; i + VM_SUFFIX <= n; i += VM_SUFFIX) {
        VM_V v = VM_LOADU(x + i), e, g;
        VM_ERF_GAUSS(VM_MUL(v, VM_SET1(inv_sqrt2)), &e, &g);
        VM_V cdf = VM_FMADD(VM_SET1(0.5f), e, VM_SET1(0.5f));
        VM_V pdf = VM_MUL(VM_SET1(inv_sqrt2pi), g);
        VM_V d = VM_FMADD(v, pdf, cdf);
        VM_V cur = accumulate ? VM_LOADU(dx + i) : VM_ZERO();
        VM_STOREU(dx + i, VM_FMADD(VM_LOADU(dy + i), d, cur));
    }
    VM_GELU_TAIL_BACKWARD
}

#undef VM_PASTE
#undef VM_PASTE2
#undef VM_ERF_GAUSS
