// The CPU evaluator of mod expressions (the float64 reference): a walk of the typed tree in double,
// ints as int64, with the checks the GPU does not make (indices inside the captured tensors,
// integer division by zero) reported as aisp::Error. Also the host side of the emitted functors'
// layout (functor_bytes).
#include <cmath>
#include <cstdint>
#include <utility>

#include <fmt/format.h>

#include "compiler/flex/flex_expr.h"
#include "compiler/flex/flex_expr_ast.h"
#include "compiler/flex/flex_expr_range.h"
#include "core/error.h"

namespace aisp::compiler::flex {
namespace {

struct Value {
  double f = 0;
  std::int64_t i = 0;  // ints and bools
};

struct Env {
  double score;
  int b, h, q, kv;
  const std::vector<const HostCapture*>* captures;  // used_captures() order
  const std::string* text;
};

Value eval(const Node& n, const Env& env);

double num(const Node& n, const Env& env) {  // a float operand (the checker inserted to_float)
  return eval(n, env).f;
}
std::int64_t integer(const Node& n, const Env& env) { return eval(n, env).i; }

Value eval(const Node& n, const Env& env) {
  Value v;
  const auto& a = n.args;
  const bool is_int = n.type == ExprType::int_;
  auto both = [&](auto int_op, auto float_op) {
    if (is_int)
      v.i = int_op(integer(*a[0], env), integer(*a[1], env));
    else
      v.f = float_op(num(*a[0], env), num(*a[1], env));
  };
  auto cmp = [&](auto op) {
    if (a[0]->type == ExprType::float_)
      v.i = op(num(*a[0], env), num(*a[1], env));
    else
      v.i = op(integer(*a[0], env), integer(*a[1], env));
  };
  switch (n.op) {
    case Op::int_lit: case Op::bool_lit: v.i = n.ival; break;
    case Op::float_lit: v.f = n.fval; break;
    case Op::var:
      switch (n.var) {
        case Var::score: v.f = env.score; break;
        case Var::b: v.i = env.b; break;
        case Var::h: v.i = env.h; break;
        case Var::q: v.i = env.q; break;
        case Var::kv: v.i = env.kv; break;
      }
      break;
    case Op::to_float: v.f = a[0]->type == ExprType::float_ ? num(*a[0], env) : double(integer(*a[0], env)); break;
    case Op::index: {
      const HostCapture& c = *(*env.captures)[std::size_t(n.capture)];
      std::int64_t flat = 0;
      for (std::size_t d = 0; d < a.size(); ++d) {
        const std::int64_t i = integer(*a[d], env);
        if (i < 0 || i >= c.shape[d])
          throw Error(fmt::format("'{}': index {} of {}[...] (dimension {}) is outside [0, {}) at b={} h={} q={} kv={}",
                                  *env.text, i, c.spec.name, d, c.shape[d], env.b, env.h, env.q, env.kv));
        flat = flat * c.shape[d] + i;
      }
      if (c.spec.dtype == CaptureDType::f32)
        v.f = double(static_cast<const float*>(c.data)[flat]);
      else
        v.i = static_cast<const std::int32_t*>(c.data)[flat];
      break;
    }
    case Op::call: {
      auto f1 = [&] { return num(*a[0], env); };
      switch (n.fn) {
        case Fn::abs: if (is_int) v.i = std::llabs(integer(*a[0], env)); else v.f = std::fabs(f1()); break;
        case Fn::min: both([](auto x, auto y) { return x < y ? x : y; }, [](double x, double y) { return std::fmin(x, y); }); break;
        case Fn::max: both([](auto x, auto y) { return x > y ? x : y; }, [](double x, double y) { return std::fmax(x, y); }); break;
        case Fn::clamp:
          if (is_int) {
            const std::int64_t x = integer(*a[0], env), lo = integer(*a[1], env), hi = integer(*a[2], env);
            v.i = x < lo ? lo : (x > hi ? hi : x);
          } else {
            v.f = std::fmin(std::fmax(num(*a[0], env), num(*a[1], env)), num(*a[2], env));
          }
          break;
        case Fn::exp: v.f = std::exp(f1()); break;
        case Fn::exp2: v.f = std::exp2(f1()); break;
        case Fn::log: v.f = std::log(f1()); break;
        case Fn::log2: v.f = std::log2(f1()); break;
        case Fn::sqrt: v.f = std::sqrt(f1()); break;
        case Fn::tanh: case Fn::tanh_exact: v.f = std::tanh(f1()); break;
        case Fn::sigmoid: v.f = 1.0 / (1.0 + std::exp(-f1())); break;
        case Fn::floor: v.f = std::floor(f1()); break;
        case Fn::ceil: v.f = std::ceil(f1()); break;
        case Fn::to_float: v.f = f1(); break;
        case Fn::to_int: v.i = a[0]->type == ExprType::int_ ? integer(*a[0], env) : std::int64_t(std::trunc(num(*a[0], env))); break;
      }
      break;
    }
    case Op::neg: if (is_int) v.i = -integer(*a[0], env); else v.f = -num(*a[0], env); break;
    case Op::not_: v.i = !integer(*a[0], env); break;
    case Op::add: both([](auto x, auto y) { return x + y; }, [](double x, double y) { return x + y; }); break;
    case Op::sub: both([](auto x, auto y) { return x - y; }, [](double x, double y) { return x - y; }); break;
    case Op::mul: both([](auto x, auto y) { return x * y; }, [](double x, double y) { return x * y; }); break;
    case Op::div:
    case Op::mod:
      if (is_int) {
        const std::int64_t x = integer(*a[0], env), y = integer(*a[1], env);
        if (y == 0)
          throw Error(fmt::format("'{}': integer {} by zero at b={} h={} q={} kv={}", *env.text,
                                  n.op == Op::div ? "division" : "remainder", env.b, env.h, env.q, env.kv));
        v.i = n.op == Op::div ? x / y : x % y;
      } else {
        v.f = num(*a[0], env) / num(*a[1], env);
      }
      break;
    case Op::lt: cmp([](auto x, auto y) { return x < y; }); break;
    case Op::le: cmp([](auto x, auto y) { return x <= y; }); break;
    case Op::gt: cmp([](auto x, auto y) { return x > y; }); break;
    case Op::ge: cmp([](auto x, auto y) { return x >= y; }); break;
    case Op::eq: cmp([](auto x, auto y) { return x == y; }); break;
    case Op::ne: cmp([](auto x, auto y) { return x != y; }); break;
    case Op::and_: v.i = integer(*a[0], env) && integer(*a[1], env); break;  // short-circuit, as C
    case Op::or_: v.i = integer(*a[0], env) || integer(*a[1], env); break;
    case Op::select: v = integer(*a[0], env) ? eval(*a[1], env) : eval(*a[2], env); break;
  }
  return v;
}

// The used captures, found by name in `captures`, checked against their declared dtype and rank.
template <class Capture>
std::vector<const Capture*> resolve(const ModExpr& e, const std::vector<Capture>& captures) {
  std::vector<const Capture*> out;
  for (const CaptureSpec& u : e.used_captures()) {
    const Capture* found = nullptr;
    for (const Capture& c : captures)
      if (c.spec.name == u.name) found = &c;
    if (found == nullptr)
      throw Error(fmt::format("'{}' reads the captured tensor '{}', which was not given", e.text(), u.name));
    if (found->spec.dtype != u.dtype || int(found->shape.size()) != u.rank)
      throw Error(fmt::format("captured tensor '{}' is {} of rank {}, but '{}' was compiled for {} of rank {}", u.name,
                              name_of(found->spec.dtype), found->shape.size(), e.text(), name_of(u.dtype), u.rank));
    if (found->data == nullptr) throw Error(fmt::format("captured tensor '{}' has no data", u.name));
    out.push_back(found);
  }
  return out;
}

}  // namespace

double ModExpr::eval_score(double score, int b, int h, int q, int kv, const std::vector<HostCapture>& captures) const {
  return HostMod(*this, captures).score(score, b, h, q, kv);
}

bool ModExpr::eval_mask(int b, int h, int q, int kv, const std::vector<HostCapture>& captures) const {
  return HostMod(*this, captures).mask(b, h, q, kv);
}

HostMod::HostMod(ModExpr expr, std::vector<HostCapture> captures)
    : expr_(std::move(expr)), captures_(std::move(captures)), used_(resolve(expr_, captures_)) {}

double HostMod::score(double s, int b, int h, int q, int kv) const {
  if (expr_.kind_ != ModExpr::Kind::score_mod)
    throw Error(fmt::format("'{}' is a mask_mod, evaluated as a score_mod", expr_.text_));
  return eval(*expr_.root_, Env{s, b, h, q, kv, &used_, &expr_.text_}).f;
}

bool HostMod::mask(int b, int h, int q, int kv) const {
  if (expr_.kind_ != ModExpr::Kind::mask_mod)
    throw Error(fmt::format("'{}' is a score_mod, evaluated as a mask_mod", expr_.text_));
  return eval(*expr_.root_, Env{0.0, b, h, q, kv, &used_, &expr_.text_}).i != 0;
}

std::optional<std::pair<std::int64_t, std::int64_t>> HostMod::kv_range(int b, int h, int q) const {
  if (expr_.kind_ != ModExpr::Kind::mask_mod) return std::nullopt;
  const std::optional<std::vector<KvBound>> bounds = kv_bounds(*expr_.root_);
  if (!bounds) return std::nullopt;
  const Env env{0.0, b, h, q, 0, &used_, &expr_.text_};  // the bounds do not read kv
  std::int64_t lo = INT64_MIN, hi = INT64_MAX;
  for (const KvBound& bound : *bounds) {
    std::int64_t v = bound.offset;
    for (const KvTerm& t : bound.terms) v += t.sign * integer(*t.node, env);
    if (bound.lower)
      lo = v > lo ? v : lo;
    else
      hi = v < hi ? v : hi;
  }
  return std::make_pair(lo, hi);
}

std::vector<std::uint64_t> functor_bytes(const ModExpr& e, const std::vector<DeviceCapture>& captures) {
  std::vector<std::uint64_t> words;
  for (const DeviceCapture* c : resolve(e, captures)) {
    words.push_back(reinterpret_cast<std::uintptr_t>(c->data));
    // Row-major strides, in elements, of every dimension but the last (whose stride is 1).
    for (std::size_t d = 0; d + 1 < c->shape.size(); ++d) {
      std::int64_t stride = 1;
      for (std::size_t k = d + 1; k < c->shape.size(); ++k) stride *= c->shape[k];
      words.push_back(std::uint64_t(stride));
    }
  }
  return words;
}

}  // namespace aisp::compiler::flex
