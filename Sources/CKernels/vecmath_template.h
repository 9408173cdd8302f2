// Lane-wise maths written once for every vector width: e^x and erf with the Gaussian factor
// (gelu_template.h builds the GELU loops on them). Each includer defines the operations for its
// vectors, then includes this file; the 8-lane (vecmath_avx2.h) and 16-lane (gelu_avx512.c)
// forms thereby run the same operations in the same order on every lane, so they give the same
// values bit for bit.
//
// The includer defines: VM_TARGET (target attribute), VM_V (vector type), VM_SUFFIX (8 or 16:
// the functions' name suffix), VM_SET1(x), VM_ADD, VM_MUL, VM_DIV, VM_MIN, VM_MAX, VM_FMADD(a, b,
// c) (a*b+c), VM_FMSUB (a*b-c), VM_FNMADD (-(a*b)+c), VM_ROUND(x) (to nearest), VM_POW2(n) (2^n
// for whole-number lanes n, by building the float's exponent) and the bitwise VM_AND, VM_ANDNOT
// (~a & b), VM_OR, VM_XOR. It defines exp<VM_SUFFIX> and erf_gauss<VM_SUFFIX>.

#define VM_PASTE2(a, b) a##b
#define VM_PASTE(a, b) VM_PASTE2(a, b)
#define VM_EXP VM_PASTE(exp, VM_SUFFIX)
#define VM_ERF_GAUSS VM_PASTE(erf_gauss, VM_SUFFIX)

/// e^x: Cody-Waite reduction and the degree-6 polynomial of the Swift FastMath.exp (|relative
/// error| < 2e-7); inputs clamped to [-87.3, 88.7].
__attribute__((target(VM_TARGET))) static inline VM_V VM_EXP(VM_V x) {
    x = VM_MIN(VM_MAX(x, VM_SET1(-87.3f)), VM_SET1(88.7f));
    VM_V n = VM_ROUND(VM_MUL(x, VM_SET1(1.4426950408889634f)));
    VM_V r = VM_FNMADD(n, VM_SET1(0.693359375f), x);
    r = VM_FMADD(n, VM_SET1(2.1219444005469058e-4f), r);
    VM_V y = VM_SET1(1.9875691500e-4f);
    y = VM_FMADD(y, r, VM_SET1(1.3981999507e-3f));
    y = VM_FMADD(y, r, VM_SET1(8.3334519073e-3f));
    y = VM_FMADD(y, r, VM_SET1(4.1665795894e-2f));
    y = VM_FMADD(y, r, VM_SET1(1.6666665459e-1f));
    y = VM_FMADD(y, r, VM_SET1(5.0000001201e-1f));
    y = VM_FMADD(y, VM_MUL(r, r), VM_ADD(r, VM_SET1(1.0f)));
    return VM_MUL(y, VM_POW2(n));
}

/// erf(x) (Abramowitz & Stegun 7.1.26, as the Swift FastMath.erf) and exp(-x^2), lanewise.
__attribute__((target(VM_TARGET))) static inline void VM_ERF_GAUSS(VM_V x, VM_V *erf, VM_V *gauss) {
    const VM_V sign = VM_SET1(-0.0f);
    VM_V ax = VM_ANDNOT(sign, x);
    VM_V t = VM_DIV(VM_SET1(1.0f), VM_FMADD(VM_SET1(0.3275911f), ax, VM_SET1(1.0f)));
    VM_V p = VM_SET1(1.061405429f);
    p = VM_FMSUB(p, t, VM_SET1(1.453152027f));
    p = VM_FMADD(p, t, VM_SET1(1.421413741f));
    p = VM_FMSUB(p, t, VM_SET1(0.284496736f));
    p = VM_FMADD(p, t, VM_SET1(0.254829592f));
    p = VM_MUL(p, t);
    VM_V g = VM_EXP(VM_XOR(VM_MUL(ax, ax), sign));
    VM_V e = VM_FNMADD(p, g, VM_SET1(1.0f));
    *erf = VM_OR(e, VM_AND(x, sign));   // erf is odd: copy x's sign
    *gauss = g;
}

#undef VM_PASTE
#undef VM_PASTE2
#undef VM_EXP
#undef VM_ERF_GAUSS
