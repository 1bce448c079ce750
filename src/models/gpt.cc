#include "models/gpt.h"

#include <fmt/format.h>

#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "core/error.h"
#include "core/random.h"

namespace aisp::models {
using namespace aisp::compiler;

std::int64_t GptConfig::parameters() const {
  const std::int64_t c = d_model, f = mlp_ratio * d_model;
  const std::int64_t block = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * f + f) + (f * c + c);
  return vocab * c + max_seq * c + layers * block + 2 * c;
}

GptConfig gpt_preset(std::string_view name) {
  GptConfig c;
  c.name = std::string(name);
  if (name == "tiny") {
    c.vocab = 67, c.max_seq = 16, c.d_model = 32, c.heads = 4, c.layers = 2;
  } else if (name == "small") {
    c.vocab = 32000, c.max_seq = 1024, c.d_model = 512, c.heads = 8, c.layers = 6;
  } else if (name == "medium") {
    c.vocab = 32000, c.max_seq = 1024, c.d_model = 1024, c.heads = 16, c.layers = 12;
  } else if (name == "large") {
    c.vocab = 32000, c.max_seq = 2048, c.d_model = 2048, c.heads = 16, c.layers = 24;
  } else {
    throw Error(fmt::format("unknown GPT preset '{}' (tiny, small, medium, large)", name));
  }
  return c;
}

namespace {

struct Builder {
  Graph& g;
  const GptConfig& c;
  // The input `name`, created on first use (the tied wte is read by both the embedding and the head).
  Tensor param(const std::string& name, Shape shape) {
    for (NodeId id : g.inputs())
      if (g.node(id).name == name) return g.tensor(id);
    return g.input(name, std::move(shape), c.dtype);
  }

  // One composite, like an eager framework's Linear (addmm): the eager plan may then run the bias add
  // as the GEMM's epilogue, as PyTorch's does, but never fuse across layers. The weight is stored
  // [out, in] as PyTorch's nn.Linear stores it (x @ w.T: a "T,N" GEMM, no copy), the layout aisp's
  // sm_90a GEMM takes (max-autotune's candidate) and the one real checkpoints come in.
  Tensor linear(Tensor x, const std::string& name, std::int64_t in, std::int64_t out) {
    const Tensor w = param(name + ".w", {out, in}), b = param(name + ".b", {out});
    const Graph::CompositeScope scope(g);
    return matmul(x, transpose(w, 0, 1)) + b;
  }
  Tensor norm(Tensor x, const std::string& name) {
    return layer_norm(x, param(name + ".w", {c.d_model}), param(name + ".b", {c.d_model}), c.ln_eps);
  }

  // x [B, T, C] -> causal self-attention, heads split from one fused qkv projection.
  Tensor attention_block(Tensor x, const std::string& name) {
    const std::int64_t b = x.dim(0), t = x.dim(1), d = c.d_model, h = c.heads;
    const Tensor qkv = linear(x, name + ".qkv", d, 3 * d);
    auto head = [&](int i) {  // [B, T, C] slice -> [B, H, T, D]: a strided view, no copy
      return permute(reshape(slice(qkv, -1, i * d, (i + 1) * d), {b, t, h, d / h}), {0, 2, 1, 3});
    };
    const Tensor o = compiler::attention(head(0), head(1), head(2), true);
    return linear(reshape(permute(o, {0, 2, 1, 3}), {b, t, d}), name + ".proj", d, d);
  }

  Tensor mlp(Tensor x, const std::string& name) {
    const std::int64_t d = c.d_model, f = c.mlp_ratio * c.d_model;
    const Tensor h = linear(x, name + ".fc", d, f);
    return linear(c.gelu_tanh ? gelu_tanh(h) : gelu(h), name + ".out", f, d);
  }

  // One pre-norm transformer block; parameter names start with `p` ("h3." or "" for a region).
  Tensor block(Tensor x, const std::string& p) {
    x = x + attention_block(norm(x, p + "ln1"), p + "attn");
    return x + mlp(norm(x, p + "ln2"), p + "mlp");
  }
  Tensor embed(Tensor tokens, std::int64_t seq) {
    return gather(param("wte", {c.vocab, c.d_model}), tokens) + slice(param("wpe", {c.max_seq, c.d_model}), 0, 0, seq);
  }
  Tensor head(Tensor x) {  // tied head: wte^T as a strided view
    return matmul(norm(x, "ln_f"), transpose(param("wte", {c.vocab, c.d_model}), 0, 1));
  }
};

void check(const GptConfig& c, std::int64_t seq) {
  if (seq > c.max_seq) throw Error(fmt::format("sequence {} exceeds the model's {} positions", seq, c.max_seq));
  if (c.d_model % c.heads != 0) throw Error("d_model must be a multiple of heads");
}

}  // namespace

GptGraph build_gpt(const GptConfig& c, std::int64_t batch, std::int64_t seq, bool with_loss) {
  check(c, seq);
  GptGraph out;
  Graph& g = out.graph;
  Builder bld{g, c};
  const Tensor tokens = g.input("tokens", {batch, seq}, DType::i32);
  const Tensor targets = with_loss ? g.input("targets", {batch, seq}, DType::i32) : Tensor{};
  Tensor x = bld.embed(tokens, seq);  // [B, T, C] + [T, C]
  for (std::int64_t l = 0; l < c.layers; ++l) x = bld.block(x, fmt::format("h{}.", l));
  out.logits = bld.head(x);
  g.output(out.logits);
  if (with_loss) {
    out.loss = cross_entropy(reshape(out.logits, {batch * seq, c.vocab}), reshape(targets, {batch * seq}));
    g.output(out.loss);
  }
  return out;
}

RegionalProgram build_gpt_regions(const GptConfig& c, std::int64_t batch, std::int64_t seq) {
  check(c, seq);
  RegionalProgram p;
  p.regions.resize(3);
  {
    Builder bld{p.regions[0], c};
    p.regions[0].output(bld.embed(p.regions[0].input("tokens", {batch, seq}, DType::i32), seq));
  }
  {
    Builder bld{p.regions[1], c};
    p.regions[1].output(bld.block(p.regions[1].input(p.carry, {batch, seq, c.d_model}, c.dtype), ""));
  }
  {
    Builder bld{p.regions[2], c};
    p.regions[2].output(bld.head(p.regions[2].input(p.carry, {batch, seq, c.d_model}, c.dtype)));
  }
  p.calls.push_back({0, ""});
  for (std::int64_t l = 0; l < c.layers; ++l) p.calls.push_back({1, fmt::format("h{}.", l)});
  p.calls.push_back({2, ""});
  return p;
}

std::vector<HostTensor> gpt_inputs(const GptGraph& gpt, const GptConfig& c, std::uint64_t seed) {
  std::vector<HostTensor> ins;
  std::uint64_t stream = seed * 100003;
  for (NodeId id : gpt.graph.inputs()) {
    const Node& n = gpt.graph.node(id);
    const std::int64_t count = numel(n.shape);
    std::vector<double> v(static_cast<std::size_t>(count));
    const bool gain = n.name.size() > 2 && n.name.ends_with(".w") && n.name.find(".ln") != std::string::npos;
    const bool is_ln_f = n.name == "ln_f.w";
    for (std::int64_t i = 0; i < count; ++i) {
      if (n.dtype == DType::i32) v[std::size_t(i)] = double(std::int64_t(rng::uniform_at(stream, std::uint64_t(i)) * double(c.vocab)));
      else if (gain || is_ln_f) v[std::size_t(i)] = 1.0 + 0.1 * rng::normal_at(stream, std::uint64_t(i));
      else v[std::size_t(i)] = 0.02 * rng::normal_at(stream, std::uint64_t(i));
    }
    ins.push_back(HostTensor::from_values(n.dtype, n.shape, v));
    ++stream;
  }
  return ins;
}

}  // namespace aisp::models
