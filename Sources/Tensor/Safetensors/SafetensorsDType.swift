/// An element type of a safetensors tensor, spelled as in the file header (`"F32"`, `"BF16"`, ...).
///
/// Every case converts to Float32 (``SafetensorsFile/tensor(_:)``); the integer cases and `BOOL`
/// also read as Int64 (``SafetensorsFile/int64s(_:)``). The sub-byte (`F4`, `F6_*`), `F8_E8M0`
/// and complex types of the format are not supported: a file holding one is rejected when opened.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    /// One byte per value, 0 or 1 (any non-zero byte reads as 1).
    case bool = "BOOL"
    /// Unsigned 8-bit integer.
    case u8 = "U8"
    /// Signed 8-bit integer.
    case i8 = "I8"
    /// 8-bit float with 4 exponent and 3 mantissa bits, no infinities (PyTorch `float8_e4m3fn`).
    case f8E4M3 = "F8_E4M3"
    /// 8-bit float with 5 exponent and 2 mantissa bits (the top byte of an IEEE half).
    case f8E5M2 = "F8_E5M2"
    /// Signed 16-bit integer.
    case i16 = "I16"
    /// Unsigned 16-bit integer.
    case u16 = "U16"
    /// IEEE 754 half precision.
    case f16 = "F16"
    /// bfloat16 (the top half of a Float32).
    case bf16 = "BF16"
    /// Signed 32-bit integer.
    case i32 = "I32"
    /// Unsigned 32-bit integer.
    case u32 = "U32"
    /// IEEE 754 single precision.
    case f32 = "F32"
    /// IEEE 754 double precision (rounded to nearest Float32 on reading; large values become inf).
    case f64 = "F64"
    /// Signed 64-bit integer.
    case i64 = "I64"
    /// Unsigned 64-bit integer.
    case u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E4M3, .f8E5M2: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// True for the integer types and `BOOL` (readable with ``SafetensorsFile/int64s(_:)``).
    public var isInteger: Bool {
        switch self {
        case .bool, .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64: return true
        case .f8E4M3, .f8E5M2, .f16, .bf16, .f32, .f64: return false
        }
    }
}

/// Bit-exact conversions from the narrow float formats to Float32.
///
/// Every finite value, subnormal, signed zero and infinity maps to the identical Float32 value;
/// NaNs stay NaN (half and bfloat16 NaN payloads are kept).
public enum FloatConversion {
    /// IEEE half (binary16) bits to Float32.
    @inlinable
    public static func float(fromHalfBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {                       // inf (mantissa 0) or NaN (payload kept)
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {                          // zero or subnormal: mantissa * 2^-24, exact
            let magnitude = Float(mantissa) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// bfloat16 bits to Float32 (the bits are the top half of the Float32).
    @inlinable
    public static func float(fromBFloat16Bits b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// F8_E5M2 bits to Float32 (the byte is the top half of an IEEE half).
    @inlinable
    public static func float(fromF8E5M2Bits b: UInt8) -> Float {
        float(fromHalfBits: UInt16(b) << 8)
    }

    /// F8_E4M3 (`float8_e4m3fn`: bias 7, no infinities, `S.1111.111` is NaN) bits to Float32.
    @inlinable
    public static func float(fromF8E4M3Bits b: UInt8) -> Float {
        let negative = b & 0x80 != 0
        let exponent = Int((b >> 3) & 0x0F)
        let mantissa = Float(b & 0x07)
        let magnitude: Float
        if exponent == 0x0F && b & 0x07 == 0x07 {
            magnitude = .nan
        } else if exponent == 0 {
            magnitude = mantissa * 0x1p-9             // subnormal
        } else {
            magnitude = (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
        }
        return negative ? -magnitude : magnitude
    }
}

/// Converting stored little-endian elements to Float32 or Int64 (also used by the `TorchCheckpoint` library).
public enum SafetensorsConvert {
    /// Converts `dst.count` elements of `dtype` at `src` (any alignment) to Float32.
    public static func floats(from src: UnsafeRawPointer, dtype: SafetensorsDType, into dst: UnsafeMutableBufferPointer<Float>) {
        guard let out = dst.baseAddress else { return }
        let n = dst.count
        @inline(__always) func le<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
            T(littleEndian: src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
        }
        switch dtype {
        case .f32:
            #if _endian(little)
            UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: n * 4)
            #else
            for i in 0..<n { out[i] = Float(bitPattern: le(i, UInt32.self)) }
            #endif
        case .f64: for i in 0..<n { out[i] = Float(Double(bitPattern: le(i, UInt64.self))) }
        case .f16: for i in 0..<n { out[i] = FloatConversion.float(fromHalfBits: le(i, UInt16.self)) }
        case .bf16: for i in 0..<n { out[i] = FloatConversion.float(fromBFloat16Bits: le(i, UInt16.self)) }
        case .f8E4M3: for i in 0..<n { out[i] = FloatConversion.float(fromF8E4M3Bits: le(i, UInt8.self)) }
        case .f8E5M2: for i in 0..<n { out[i] = FloatConversion.float(fromF8E5M2Bits: le(i, UInt8.self)) }
        case .bool: for i in 0..<n { out[i] = le(i, UInt8.self) != 0 ? 1 : 0 }
        case .u8: for i in 0..<n { out[i] = Float(le(i, UInt8.self)) }
        case .i8: for i in 0..<n { out[i] = Float(le(i, Int8.self)) }
        case .u16: for i in 0..<n { out[i] = Float(le(i, UInt16.self)) }
        case .i16: for i in 0..<n { out[i] = Float(le(i, Int16.self)) }
        case .u32: for i in 0..<n { out[i] = Float(le(i, UInt32.self)) }
        case .i32: for i in 0..<n { out[i] = Float(le(i, Int32.self)) }
        case .u64: for i in 0..<n { out[i] = Float(le(i, UInt64.self)) }
        case .i64: for i in 0..<n { out[i] = Float(le(i, Int64.self)) }
        }
    }

    /// Converts `dst.count` integer elements of `dtype` at `src` to Int64; false when a U64
    /// value does not fit (or `dtype` is a float type).
    public static func int64s(from src: UnsafeRawPointer, dtype: SafetensorsDType, into dst: UnsafeMutableBufferPointer<Int64>) -> Bool {
        guard let out = dst.baseAddress else { return true }
        let n = dst.count
        @inline(__always) func le<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
            T(littleEndian: src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
        }
        switch dtype {
        case .bool: for i in 0..<n { out[i] = le(i, UInt8.self) != 0 ? 1 : 0 }
        case .u8: for i in 0..<n { out[i] = Int64(le(i, UInt8.self)) }
        case .i8: for i in 0..<n { out[i] = Int64(le(i, Int8.self)) }
        case .u16: for i in 0..<n { out[i] = Int64(le(i, UInt16.self)) }
        case .i16: for i in 0..<n { out[i] = Int64(le(i, Int16.self)) }
        case .u32: for i in 0..<n { out[i] = Int64(le(i, UInt32.self)) }
        case .i32: for i in 0..<n { out[i] = Int64(le(i, Int32.self)) }
        case .i64: for i in 0..<n { out[i] = le(i, Int64.self) }
        case .u64:
            for i in 0..<n {
                guard let v = Int64(exactly: le(i, UInt64.self)) else { return false }
                out[i] = v
            }
        case .f8E4M3, .f8E5M2, .f16, .bf16, .f32, .f64:
            return false
        }
        return true
    }
}
