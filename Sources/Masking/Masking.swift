// Masking module
