#include "compiler/ir/op.h"

#include <array>

namespace aisp::compiler {

std::string_view name_of(OpKind k) {
  static constexpr std::array<std::string_view, kNumOps> names = {
      "input", "constant", "iota",                                                        //
      "neg", "exp", "log", "sqrt", "rsqrt", "tanh", "erf", "abs", "relu", "sigmoid", "cast",  //
      "add", "sub", "mul", "div", "max", "min", "pow", "cmp_lt", "cmp_gt", "cmp_eq",          //
      "where",                                                                            //
      "reduce_sum", "reduce_max", "reduce_mean",                                          //
      "reshape", "permute", "slice", "broadcast",                                         //
      "concat", "matmul", "gather", "attention"};
  return names[std::size_t(k)];
}

std::string_view name_of(Activation a) { return a == Activation::gelu_tanh ? "gelu_tanh" : "none"; }

}  // namespace aisp::compiler
