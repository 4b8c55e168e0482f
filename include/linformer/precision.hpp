// The precision of matrix products, for the whole process: float32 (the default), or bf16:
// both operands of every product rounded to bfloat16 (8 bits of mantissa) and the products
// accumulated in float32, on CPUs with native bf16 instructions (AVX512_BF16: Intel Cooper Lake,
// Sapphire Rapids or later, AMD Zen 4 or later), about twice the float32 speed for large
// products. It covers every matmul of the forward and backward passes (projections, attention,
// FFN, heads); softmax, LayerNorm, GELU, the loss, the optimizer and the weights stay float32.
// Accuracy cost and speed: docs/BENCHMARKS.md ("bf16 mode"). Command line: `--bf16`.
#pragma once

namespace linformer {

enum class MatmulPrecision { f32, bf16 };

// Throws ConfigError for bf16 on a CPU without native bf16. Set it before starting work, not while
// other threads run products.
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
bool bf16_supported();

}  // namespace linformer
