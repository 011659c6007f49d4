// The quantizer kernels' dispatch stubs (declared in quant_kernels.h); the argument checks and
// the quantization state live in precision/quant_4bit.cpp and precision/quant_int8.cpp.
#include "tensor/quant_kernels.h"

namespace fabric {

FABRIC_DEFINE_STUB(quantize_4bit_stub, Quantize4bitFn);
FABRIC_DEFINE_STUB(dequantize_4bit_stub, Dequantize4bitFn);
FABRIC_DEFINE_STUB(dequantize_4bit_via_stub, Dequantize4bitViaFn);
FABRIC_DEFINE_STUB(quantize_8bit_blockwise_stub, Quantize8bitBlockwiseFn);
FABRIC_DEFINE_STUB(dequantize_8bit_blockwise_stub, Dequantize8bitBlockwiseFn);
FABRIC_DEFINE_STUB(int8_row_quant_stub, Int8RowQuantFn);
FABRIC_DEFINE_STUB(int8_col_quant_stub, Int8ColQuantFn);
FABRIC_DEFINE_STUB(int8_row_dequant_stub, Int8RowDequantFn);
FABRIC_DEFINE_STUB(int8_linear_epilogue_stub, Int8LinearEpilogueFn);
FABRIC_DEFINE_STUB(int8_gemm_stub, Int8GemmFn);
FABRIC_DEFINE_STUB(fp8_gemm_stub, Fp8GemmFn);

}  // namespace fabric
