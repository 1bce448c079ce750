// The CUDA emitter of mod expressions: the typed tree printed as one C++ expression inside a functor
// with the built-ins' interface (flex_mods.h), fully parenthesized so C's precedence never has to be
// re-derived. Conversions are the tree's explicit to_float nodes, printed as T(x) exactly where the
// built-ins write them (Alibi: s + T(slopes[h]) * T(kv - q)), so a JIT mod and its built-in twin
// compile to the same arithmetic.
#include <fmt/format.h>

#include "compiler/flex/flex_expr.h"
#include "compiler/flex/flex_expr_ast.h"
#include "compiler/flex/flex_expr_range.h"
#include "core/error.h"

namespace aisp::compiler::flex {
namespace {

const char* fn_name(Fn f) {
  switch (f) {
    case Fn::abs: return "fj_abs";
    case Fn::min: return "fj_min";
    case Fn::max: return "fj_max";
    case Fn::clamp: return "fj_clamp";
    case Fn::exp: return "fj_exp";
    case Fn::exp2: return "fj_exp2";
    case Fn::log: return "fj_log";
    case Fn::log2: return "fj_log2";
    case Fn::sqrt: return "fj_sqrt";
    case Fn::tanh: return "fj_tanh";
    case Fn::tanh_exact: return "fj_tanh_exact";
    case Fn::sigmoid: return "fj_sigmoid";
    case Fn::floor: return "fj_floor";
    case Fn::ceil: return "fj_ceil";
    case Fn::to_float: return "T";
    case Fn::to_int: return "int";
  }
  return "?";
}

const char* var_name(Var v) {
  switch (v) {
    case Var::score: return "score";
    case Var::b: return "b";
    case Var::h: return "h";
    case Var::q: return "q";
    default: return "kv";
  }
}

std::string emit(const Node& n, const std::vector<CaptureSpec>& used) {
  const auto& a = n.args;
  auto bin = [&](const char* op) { return fmt::format("({} {} {})", emit(*a[0], used), op, emit(*a[1], used)); };
  switch (n.op) {
    case Op::int_lit: return std::to_string(n.ival);
    case Op::float_lit: return fmt::format("T({})", n.text);
    case Op::bool_lit: return n.ival ? "true" : "false";
    case Op::var: return var_name(n.var);
    case Op::to_float: return fmt::format("T({})", emit(*a[0], used));
    case Op::index: {
      const CaptureSpec& c = used[std::size_t(n.capture)];
      std::string flat;
      for (std::size_t d = 0; d < a.size(); ++d) {
        // 64-bit only where a stride multiplies; a rank-1 index stays an int, as the built-ins index.
        const std::string term = d + 1 < a.size() ? fmt::format("(long long)({}) * stride_{}_{}", emit(*a[d], used), c.name, d)
                                                  : emit(*a[d], used);
        flat += (d == 0 ? "" : " + ") + term;
      }
      return c.dtype == CaptureDType::f32 ? fmt::format("T(cap_{}[{}])", c.name, flat) : fmt::format("cap_{}[{}]", c.name, flat);
    }
    case Op::call: {
      std::string args;
      for (std::size_t i = 0; i < a.size(); ++i) args += (i == 0 ? "" : ", ") + emit(*a[i], used);
      return fmt::format("{}({})", fn_name(n.fn), args);
    }
    case Op::neg: return fmt::format("(-{})", emit(*a[0], used));
    case Op::not_: return fmt::format("(!{})", emit(*a[0], used));
    case Op::add: return bin("+");
    case Op::sub: return bin("-");
    case Op::mul: return bin("*");
    case Op::div: return bin("/");
    case Op::mod: return bin("%");
    case Op::lt: return bin("<");
    case Op::le: return bin("<=");
    case Op::gt: return bin(">");
    case Op::ge: return bin(">=");
    case Op::eq: return bin("==");
    case Op::ne: return bin("!=");
    case Op::and_: return bin("&&");
    case Op::or_: return bin("||");
    case Op::select:
      return fmt::format("({} ? {} : {})", emit(*a[0], used), emit(*a[1], used), emit(*a[2], used));
  }
  return "?";
}

// ---- Traits the fa3 forward reads (flex_mods.h: ScoreModIsPositionLinear, ScoreModIsTanhSoftCap),
// derived from the tree so a JIT mod takes the same fast paths, with the same
// arithmetic, as its built-in twin. Each recognizes one written form; other forms of the same
// function keep the generic path (correct, only slower).

// A number written in the text: a float literal, or an int literal made float by the type checker.
bool literal_value(const Node& n, double& value) {
  if (n.op == Op::float_lit) {
    value = n.fval;
    return true;
  }
  if (n.op == Op::to_float && n.args[0]->op == Op::int_lit) {
    value = double(n.args[0]->ival);
    return true;
  }
  return false;
}

// f(a, b) on the two operands of a commutative binary node, in both orders: the first non-null
// result (the forms below may be written either way round).
template <class F>
const Node* either_order(const Node& n, F&& f) {
  for (int side = 0; side < 2; ++side)
    if (const Node* found = f(*n.args[std::size_t(side)], *n.args[std::size_t(1 - side)])) return found;
  return nullptr;
}

// `score + X * (kv - q)` (either order of + and of *), X a float that reads neither score, q nor
// kv: X, the slope. ALiBi's `score + slopes[h] * (kv - q)` is this form.
const Node* position_slope(const Node& root) {
  if (root.op != Op::add) return nullptr;
  return either_order(root, [](const Node& s, const Node& bias) -> const Node* {
    if (!is_var(s, Var::score) || bias.op != Op::mul) return nullptr;
    return either_order(bias, [](const Node& delta, const Node& slope) -> const Node* {
      const bool is_delta = delta.op == Op::to_float && delta.args[0]->op == Op::sub &&
                            is_var(*delta.args[0]->args[0], Var::kv) && is_var(*delta.args[0]->args[1], Var::q);
      const bool constant_slope = slope.type == ExprType::float_ && !reads_var(slope, Var::score) &&
                                  !reads_var(slope, Var::q) && !reads_var(slope, Var::kv);
      return is_delta && constant_slope ? &slope : nullptr;
    });
  });
}

// `C * tanh(score / C)` (either order of *), the same nonzero number C twice: the C node.
const Node* tanh_soft_cap(const Node& root) {
  if (root.op != Op::mul) return nullptr;
  return either_order(root, [](const Node& c, const Node& t) -> const Node* {
    double outer = 0, inner = 0;
    if (!literal_value(c, outer) || outer == 0 || t.op != Op::call || t.fn != Fn::tanh) return nullptr;
    const Node& d = *t.args[0];
    const bool score_over_literal =
        d.op == Op::div && is_var(*d.args[0], Var::score) && literal_value(*d.args[1], inner);
    return score_over_literal && inner == outer ? &c : nullptr;
  });
}

// A mask_mod of one interval of keys per row (flex_expr_range.h) gets kv_range(b, h, q): the bounds
// in 64 bits, clamped into int by flex_kv_range (flex_mods.h), as the built-in masks do.
std::string kv_range_member(const Node& root, const std::vector<CaptureSpec>& used) {
  const std::optional<std::vector<KvBound>> bounds = kv_bounds(root);
  if (!bounds) return "";
  std::string body;
  for (const KvBound& bound : *bounds) {
    std::string v = fmt::format("{}LL", bound.offset);
    for (const KvTerm& t : bound.terms) v += fmt::format(" {} (long long)({})", t.sign > 0 ? '+' : '-', emit(*t.node, used));
    body += fmt::format("    v = {};\n    if (v {} {}) {} = v;\n", v, bound.lower ? ">" : "<", bound.lower ? "lo" : "hi",
                        bound.lower ? "lo" : "hi");
  }
  return fmt::format(
      "  // one interval of keys per row (flex_mods.h MaskKeepsKvRange)\n"
      "  __device__ __forceinline__ ::aisp::kernels::flex::FlexKvRange kv_range(int b, int h, int q) const {{\n"
      "    using T = float;\n"
      "    (void)b;\n"
      "    (void)h;\n"
      "    (void)q;\n"
      "    long long lo = -2147483648LL, hi = 2147483647LL, v = 0;\n"
      "{}"
      "    return ::aisp::kernels::flex::flex_kv_range(lo, hi);\n"
      "  }}\n",
      body);
}

std::string score_traits(const Node& root, const std::vector<CaptureSpec>& used) {
  std::string t;
  if (const Node* slope = position_slope(root))
    t += fmt::format(
        "  static constexpr bool kPositionLinear = true;  // score + position_slope(b, h) * (kv - q)\n"
        "  __device__ __forceinline__ float position_slope(int b, int h) const {{\n"
        "    using T = float;\n"
        "    (void)b;\n"
        "    (void)h;\n"
        "    return {};\n"
        "  }}\n",
        emit(*slope, used));
  if (const Node* cap = tanh_soft_cap(root))
    t += fmt::format(
        "  static constexpr bool kTanhSoftCap = true;  // soft_cap() * tanh(score / soft_cap())\n"
        "  __device__ __forceinline__ float soft_cap() const {{\n"
        "    using T = float;\n"
        "    return {};\n"
        "  }}\n",
        emit(*cap, used));
  return t;
}

}  // namespace

std::string ModExpr::cuda_functor(const std::string& struct_name, const ModExpr* grad) const {
  if (grad != nullptr && (kind_ != Kind::score_mod || grad->used_.size() != used_.size()))
    throw Error(fmt::format("'{}': cuda_functor's grad must be this score_mod's derivative()", text_));
  std::string members;
  for (const CaptureSpec& c : used_) {
    members += fmt::format("  const {}* cap_{};\n", c.dtype == CaptureDType::f32 ? "float" : "int", c.name);
    for (int d = 0; d + 1 < c.rank; ++d) members += fmt::format("  long long stride_{}_{};\n", c.name, d);
  }
  const std::string body = emit(*root_, used_);
  // The derivative reads the same members: its tree is built from this one's nodes (same capture
  // numbering), so it is printed against this expression's capture list.
  const std::string grad_member =
      grad == nullptr ? ""
                      : fmt::format(
                            "  // d score_mod / d score: {}\n"
                            "  template <class T>\n"
                            "  __device__ __forceinline__ T grad(T score, int b, int h, int q, int kv) const {{\n"
                            "    return {};\n"
                            "  }}\n",
                            grad->text_, emit(*grad->root_, used_));
  if (kind_ == Kind::score_mod)
    return fmt::format(
        "// score_mod: {}\n"
        "struct {} {{\n"
        "  static constexpr bool kIdentity = {};\n"
        "{}"
        "{}"
        "  template <class T>\n"
        "  __device__ __forceinline__ T operator()(T score, int b, int h, int q, int kv) const {{\n"
        "    return {};\n"
        "  }}\n"
        "{}"
        "}};\n",
        text_, struct_name, is_identity() ? "true" : "false", score_traits(*root_, used_), members, body, grad_member);
  // A mask that reads captured tensors says so, as the built-in Document does (flex_mods.h,
  // MaskReadsMemory): the fa3 kernel then evaluates it on every element at clamped coordinates, so
  // its loads issue together instead of one after another behind a branch per element. Without it,
  // `doc[q] == doc[kv]` ran 15 % slower than its built-in twin.
  return fmt::format(
      "// mask_mod: {}\n"
      "struct {} {{\n"
      "  static constexpr bool kAlwaysTrue = false;\n"
      "{}"
      "{}"
      "  __device__ __forceinline__ bool operator()(int b, int h, int q, int kv) const {{\n"
      "    using T = float;\n"
      "    return {};\n"
      "  }}\n"
      "{}"
      "}};\n",
      text_, struct_name, used_.empty() ? "" : "  static constexpr bool kReadsMemory = true;\n", members, body,
      kv_range_member(*root_, used_));
}

bool ModExpr::keeps_kv_range() const { return kind_ == Kind::mask_mod && kv_bounds(*root_).has_value(); }

std::string cuda_prelude() {
  // Overloads for int, float (the kernel) and double, each the plain CUDA math function, except the
  // float tanh: the built-in SoftCap's one-instruction tanh.approx.f32 (relative error 2^-10.99;
  // flex_mods.h flex_tanh_fast), since libm's tanhf made soft-cap run at 29 % of the plain kernel;
  // derivatives use fj_tanh_exact (flex_expr_ast.h, Fn::tanh_exact).
  return R"(// Math helpers of the JIT mods (compiler/flex/flex_expr_emit.cc).
__device__ __forceinline__ int fj_abs(int x) { return x < 0 ? -x : x; }
__device__ __forceinline__ float fj_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double fj_abs(double x) { return fabs(x); }
__device__ __forceinline__ int fj_min(int x, int y) { return x < y ? x : y; }
__device__ __forceinline__ float fj_min(float x, float y) { return fminf(x, y); }
__device__ __forceinline__ double fj_min(double x, double y) { return fmin(x, y); }
__device__ __forceinline__ int fj_max(int x, int y) { return x > y ? x : y; }
__device__ __forceinline__ float fj_max(float x, float y) { return fmaxf(x, y); }
__device__ __forceinline__ double fj_max(double x, double y) { return fmax(x, y); }
template <class T>
__device__ __forceinline__ T fj_clamp(T x, T lo, T hi) { return fj_min(fj_max(x, lo), hi); }
__device__ __forceinline__ float fj_exp(float x) { return expf(x); }
__device__ __forceinline__ double fj_exp(double x) { return exp(x); }
__device__ __forceinline__ float fj_exp2(float x) { return exp2f(x); }
__device__ __forceinline__ double fj_exp2(double x) { return exp2(x); }
__device__ __forceinline__ float fj_log(float x) { return logf(x); }
__device__ __forceinline__ double fj_log(double x) { return log(x); }
__device__ __forceinline__ float fj_log2(float x) { return log2f(x); }
__device__ __forceinline__ double fj_log2(double x) { return log2(x); }
__device__ __forceinline__ float fj_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double fj_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float fj_tanh(float x) { float y; asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
__device__ __forceinline__ double fj_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float fj_tanh_exact(float x) { return tanhf(x); }
__device__ __forceinline__ double fj_tanh_exact(double x) { return tanh(x); }
__device__ __forceinline__ float fj_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ double fj_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
__device__ __forceinline__ float fj_floor(float x) { return floorf(x); }
__device__ __forceinline__ double fj_floor(double x) { return floor(x); }
__device__ __forceinline__ float fj_ceil(float x) { return ceilf(x); }
__device__ __forceinline__ double fj_ceil(double x) { return ceil(x); }
)";
}

}  // namespace aisp::compiler::flex
