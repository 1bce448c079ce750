// FlexAttention mods written at run time as small expressions (issue 5): the same score_mod /
// mask_mod the built-in functors of kernels/attention/flex_mods.h express, parsed here into a typed
// AST, evaluated on the CPU in double (the float64 reference) and emitted as a CUDA functor with the
// built-ins' interface, which flex_jit (runtime/cuda) JIT-compiles into the fa3 kernel through NVRTC.
// CUDA-free: CPU-only builds and tests use it.
//
//   score_mod(score, b, h, q, kv) -> float      e.g.  score + slopes[h] * (kv - q)
//   mask_mod(b, h, q, kv)         -> bool       e.g.  doc[q] == doc[kv] && q >= kv
//
// Grammar (C precedence, lowest first):
//   expr    := or ('?' expr ':' expr)?
//   or      := and ('||' and)*            and  := cmp_eq ('&&' cmp_eq)*
//   cmp_eq  := cmp (('==' | '!=') cmp)*   cmp  := add (('<' | '<=' | '>' | '>=') add)*
//   add     := mul (('+' | '-') mul)*     mul  := unary (('*' | '/' | '%') unary)*
//   unary   := ('-' | '+' | '!') unary | postfix
//   postfix := name '[' expr (',' expr)* ']' | name '(' expr (',' expr)* ')' | primary
//   primary := int literal | float literal (has '.' or an exponent) | true | false | name | '(' expr ')'
// Names: score (score_mod only), b, h, q, kv (int), and the captured tensors, which are indexed with
// one expression per dimension (row-major; an index outside the tensor is an error on the CPU and
// undefined behaviour on the GPU, as in C: use clamp).
// Types: int (32-bit on the GPU), float (the score's type: fp32 in the kernel, double in the
// reference), bool. Arithmetic on two ints is integer arithmetic (/ and % truncate, as in C);
// with a float it is float. Comparisons give bool; && || ! and the ?: condition need bool.
// Functions: abs, min, max, clamp(x, lo, hi) (int when every argument is int, else float); exp,
// exp2, log, log2, sqrt, tanh, sigmoid, floor, ceil (float); float(x), int(x) (truncates). On the
// GPU tanh is the hardware approximation (tanh.approx.f32, relative error 2^-10.99, as the built-in
// soft-cap); the rest are CUDA's fp32 math functions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aisp::compiler::flex {

enum class ExprType : std::uint8_t { int_, float_, bool_ };
const char* name_of(ExprType t);

// Element types of a captured tensor (float32: slopes, bias tables; int32: document ids).
enum class CaptureDType : std::uint8_t { f32, i32 };
const char* name_of(CaptureDType t);

// What the parser and the code generator need to know of a captured tensor: its name, element type
// and rank (sizes are run-time values: the same expression over another shape reuses the kernel).
struct CaptureSpec {
  std::string name;
  CaptureDType dtype = CaptureDType::f32;
  int rank = 1;
};

// A captured tensor's values on the host for the CPU evaluator (row-major, contiguous).
struct HostCapture {
  CaptureSpec spec;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
};

struct Node;  // the AST (flex_expr_ast.h)
class HostMod;

class ModExpr {
 public:
  enum class Kind : std::uint8_t { score_mod, mask_mod };

  // Parses and type-checks `text`; the captures are the tensors it may index. A syntax or type error
  // throws aisp::Error with the position, what was expected, and the text with a caret under it.
  static ModExpr parse(const std::string& text, Kind kind, const std::vector<CaptureSpec>& captures = {});

  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }
  ExprType type() const;
  // True when the score_mod is `score` itself (the kernel then folds the scale into its exp2).
  bool is_identity() const;
  // Whether the expression reads b / h: a block mask of a mask_mod that reads neither is built once
  // and broadcast over batch and heads.
  bool uses_batch() const { return uses_batch_; }
  bool uses_head() const { return uses_head_; }
  // The captures the expression reads, in the order of the list given to parse(): the members of
  // the emitted functor, in this order.
  const std::vector<CaptureSpec>& used_captures() const { return used_; }
  // A mask_mod whose kept keys are one interval per row, read off its form (flex_expr_range.h:
  // `q >= kv`, `q - kv < 256`, `kv < lens[b]`, their &&): its functor then has kv_range(b, h, q)
  // (flex_mods.h MaskKeepsKvRange) and HostMod::kv_range gives the same interval on the CPU.
  bool keeps_kv_range() const;

  // CPU evaluation in double (ints as int64). `captures` must hold at least the used ones (by name).
  // An index outside a captured tensor, or an integer division by zero, throws aisp::Error.
  double eval_score(double score, int b, int h, int q, int kv, const std::vector<HostCapture>& captures) const;
  bool eval_mask(int b, int h, int q, int kv, const std::vector<HostCapture>& captures) const;

  // The CUDA functor `struct <name> { ... }` with the interface of the built-ins (flex_mods.h):
  //   score_mod: kIdentity, template <class T> T operator()(T score, int b, int h, int q, int kv)
  //   mask_mod:  kAlwaysTrue, bool operator()(int b, int h, int q, int kv)
  // and the fa3 forward's fast-path traits where the tree has their form (flex_mods.h; README, v7):
  // kPositionLinear + position_slope(b, h) for `score + X * (kv - q)`, kTanhSoftCap + soft_cap()
  // for `C * tanh(score / C)`.
  // Members, per used capture: `const <float|int>* cap_<name>;` then `long long stride_<name>_<i>;`
  // for every dimension but the last: 8-byte fields only, so functor_bytes() lays out the same bytes
  // (the prefixes keep user names apart from C++ keywords, T and the helpers).
  // Math goes through the helpers of cuda_prelude() (float and double overloads).
  // With `grad` (this score_mod's derivative(), for the backward) the functor also has
  //   template <class T> T grad(T score, int b, int h, int q, int kv)      (flex_mods.h's grad())
  std::string cuda_functor(const std::string& struct_name, const ModExpr* grad = nullptr) const;

  // d score_mod / d score, symbolically (flex_expr_grad.cc): another score_mod over the same
  // captures (used_captures() identical, so one functor value serves both), simplified as it is
  // built (0 x, 1 x, x + 0, x - 0, x / 1, --x), text() its printed form. Rules: the
  // chain rule through + - * / and the functions; ?: and min / max / clamp / abs differentiate the
  // branch the value takes (at a tie, the first); captured-tensor reads, b, h, q, kv and everything
  // integer are constant (0). Refused with aisp::Error naming the construct and its column:
  // floor, ceil and int() of a value that depends on the score (piecewise constant: the gradient
  // would be 0 almost everywhere and undefined at the steps), and a mask_mod.
  ModExpr derivative() const;

  ~ModExpr();
  ModExpr(ModExpr&&) noexcept;
  ModExpr& operator=(ModExpr&&) noexcept;
  ModExpr(const ModExpr&);
  ModExpr& operator=(const ModExpr&);

 private:
  friend class HostMod;
  ModExpr() = default;
  Kind kind_ = Kind::score_mod;
  std::string text_;
  std::shared_ptr<const Node> root_;  // immutable once built: copies share it
  std::vector<CaptureSpec> used_;
  bool uses_batch_ = false, uses_head_ = false;
};

// A mod bound to its captured tensors on the host, for the CPU reference loops: the lookups by
// name are done once here, not per element. Callable like the built-in functors (flex_mods.h):
// score(s, b, h, q, kv) with any arithmetic T (evaluated in double), mask(b, h, q, kv).
class HostMod {
 public:
  HostMod(ModExpr expr, std::vector<HostCapture> captures);
  HostMod(const HostMod&) = delete;  // used_ points into captures_
  HostMod& operator=(const HostMod&) = delete;
  HostMod(HostMod&&) = default;      // a moved vector keeps its elements where they are
  const ModExpr& expr() const { return expr_; }
  double score(double s, int b, int h, int q, int kv) const;
  bool mask(int b, int h, int q, int kv) const;
  template <class T>
  T operator()(T s, int b, int h, int q, int kv) const {
    return T(score(double(s), b, h, q, kv));
  }
  bool operator()(int b, int h, int q, int kv) const { return mask(b, h, q, kv); }
  // [lo, hi): the keys row q keeps, for a mask_mod with keeps_kv_range() (else nothing).
  std::optional<std::pair<std::int64_t, std::int64_t>> kv_range(int b, int h, int q) const;

 private:
  ModExpr expr_;
  std::vector<HostCapture> captures_;
  std::vector<const HostCapture*> used_;  // expr_.used_captures() order, into captures_
};

// Device helpers the emitted functors call (fj_exp, fj_tanh, ...): once per translation unit.
std::string cuda_prelude();

// The bytes of an emitted functor's value: per used capture the device pointer and the row-major
// strides of every dimension but the last, as 8-byte words. `captures` (device data, real shapes)
// must hold every used capture with its declared dtype and rank, else aisp::Error.
struct DeviceCapture {
  CaptureSpec spec;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;  // device pointer
};
std::vector<std::uint64_t> functor_bytes(const ModExpr& e, const std::vector<DeviceCapture>& captures);

}  // namespace aisp::compiler::flex
