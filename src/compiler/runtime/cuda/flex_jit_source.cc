#include "compiler/runtime/cuda/flex_jit_source.h"

#include <elf.h>

#include <cstring>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler::flex {
namespace {

// What NVRTC gets instead of the standard / driver headers the device code includes.
const char* shim_for(const std::string& header) {
  if (header == "cstdint")
    return "namespace std {\n"
           "using int8_t = signed char; using uint8_t = unsigned char; using int16_t = short;\n"
           "using uint16_t = unsigned short; using int32_t = int; using uint32_t = unsigned;\n"
           "using int64_t = long long; using uint64_t = unsigned long long; using uintptr_t = unsigned long long;\n"
           "using size_t = decltype(sizeof(0));\n"
           "}  // namespace std\n";
  if (header == "type_traits")
    return "namespace std {\n"
           "template <class T> struct remove_cvref { using type = T; };\n"
           "template <class T> struct remove_cvref<const T> { using type = T; };\n"
           "template <class T> struct remove_cvref<T&> : remove_cvref<T> {};\n"
           "template <class T> struct remove_cvref<T&&> : remove_cvref<T> {};\n"
           "template <class T> using decay_t = typename remove_cvref<T>::type;  // class types only\n"
           "}  // namespace std\n";
  if (header == "cmath")
    return "#define INFINITY __int_as_float(0x7f800000)\n"
           "namespace std { inline double exp2(double x) { return ::exp2(x); } }\n";
  if (header == "cuda.h")  // the kernels pass CUtensorMap by value and take its address only
    return "struct alignas(64) CUtensorMap_st { unsigned long long opaque[16]; };\n"
           "typedef CUtensorMap_st CUtensorMap;\n";
  return nullptr;
}

const char* embedded(const std::string& path) {
  for (const EmbeddedFile& f : flex_jit_embedded_headers())
    if (path == f.path) return f.text;
  return nullptr;
}

struct Flattener {
  std::set<std::string> done;  // headers and shims already emitted
  std::string out;

  void add(const std::string& path, const std::string& from) {
    const char* text = embedded(path);
    if (text == nullptr)
      throw Error(fmt::format("flex JIT: {} (included by {}) is not embedded; add it to _aisp_flex_jit_headers in "
                              "src/compiler/CMakeLists.txt",
                              path, from.empty() ? "the JIT" : from));
    if (!done.insert(path).second) return;
    out += fmt::format("#line 1 \"{}\"\n", path);
    std::istringstream lines(text);
    std::string line;
    int number = 0;
    while (std::getline(lines, line)) {
      ++number;
      std::size_t p = line.find_first_not_of(" \t");
      if (p != std::string::npos && line.compare(p, 12, "#pragma once") == 0) {
        out += "\n";
        continue;
      }
      if (p == std::string::npos || line.compare(p, 8, "#include") != 0) {
        out += line + "\n";
        continue;
      }
      const std::size_t open = line.find_first_of("<\"", p + 8);
      const std::size_t close = open == std::string::npos ? open : line.find_first_of(">\"", open + 1);
      if (close == std::string::npos) {
        out += line + "\n";
        continue;
      }
      const std::string name = line.substr(open + 1, close - open - 1);
      if (line[open] == '"' && name.rfind("kernels/", 0) == 0) {
        add(name, path);
        out += fmt::format("#line {} \"{}\"\n", number + 1, path);
      } else if (const char* shim = shim_for(name)) {
        if (done.insert("<" + name + ">").second) out += shim;
        else out += "\n";
      } else if (name == "cuda_bf16.h" || name == "cuda_fp16.h") {
        out += line + "\n";
      } else {
        out += "// host only, left out: " + line.substr(p) + "\n";
      }
    }
  }
};

// score_grad: the score's derivative() (the backward's Score has grad()), or none (the forward).
std::string functors(const ModExpr& score, const ModExpr* mask, const ModExpr* score_grad = nullptr) {
  std::string s = "namespace aisp_flex_jit {\n" + cuda_prelude() + score.cuda_functor("Score", score_grad);
  if (mask != nullptr) s += mask->cuda_functor("Mask");
  return s + "}  // namespace aisp_flex_jit\n";
}

}  // namespace

std::string flatten_kernel_header(const std::string& header) {
  Flattener f;
  f.add(header, "");
  return f.out;
}

std::vector<std::string> flex_jit_nvrtc_flags() { return {"-std=c++20", "-default-device", "-lineinfo"}; }

namespace {

void check_head_dim(int head_dim) {
  if (head_dim != 64 && head_dim != 128) throw Error(fmt::format("flex JIT: head dim {} (64 or 128)", head_dim));
}

// The kernels' element type (Fa3Config / flex_backward_sm90_kernel's Elem) as CUDA source.
const char* element_type(kernels::flex::FlexDtype dtype) {
  return dtype == kernels::flex::FlexDtype::fp16 ? "__half" : "__nv_bfloat16";
}

std::string mask_type(const ModExpr* mask) {
  return mask != nullptr ? "aisp_flex_jit::Mask" : "aisp::kernels::flex::NoMask";
}

// One JIT translation unit: a comment naming it, the flattened kernel header, the mods' functors
// (#line-tagged, so NVRTC's messages point into the expressions) and the explicit instantiation of
// the kernel inside the kernels' namespace.
std::string jit_unit(const std::string& what, const std::string& header, const std::string& mods,
                     const std::string& instantiation) {
  return fmt::format(
      "// aisp flex JIT: {}\n{}\n#line 1 \"flex_jit_mods\"\n{}\n"
      "namespace aisp::kernels::flex::detail {{\n{}}}  // namespace aisp::kernels::flex::detail\n",
      what, flatten_kernel_header(header), mods, instantiation);
}

// The builders need no score_mod; an identity one keeps functors() simple.
ModExpr identity_score() { return ModExpr::parse("score", ModExpr::Kind::score_mod); }

}  // namespace

std::string fa3_forward_source(const ModExpr& score, const ModExpr* mask, int head_dim,
                               kernels::flex::FlexDtype dtype) {
  check_head_dim(head_dim);
  return jit_unit(fmt::format("the fa3 forward (kernels/attention/flex_forward_fa3.cuh), head dim {}, {}", head_dim,
                              kernels::flex::flex_dtype_name(dtype)),
                  "kernels/attention/flex_attention_kernel.cuh", functors(score, mask),
                  fmt::format("template __global__ void flex_forward_fa3_kernel<{0}, aisp_flex_jit::Score, {1}, "
                              "Fa3Default<{0}, {2}>>(\n"
                              "    const __grid_constant__ Fa3Maps, const FwdParams, const aisp_flex_jit::Score, "
                              "const {1});\n",
                              head_dim, mask_type(mask), element_type(dtype)));
}

std::string mma_sync_forward_source(const ModExpr& score, const ModExpr* mask, int head_dim,
                                    kernels::flex::FlexDtype dtype) {
  check_head_dim(head_dim);
  return jit_unit(fmt::format("the mma.sync forward (kernels/attention/flex_attention_kernel.cuh), head dim {}, {}",
                              head_dim, kernels::flex::flex_dtype_name(dtype)),
                  "kernels/attention/flex_attention_kernel.cuh", functors(score, mask),
                  fmt::format("template __global__ void flex_forward_kernel<{0}, aisp_flex_jit::Score, {1}, {2}>(\n"
                              "    const FwdParams, const aisp_flex_jit::Score, const {1});\n",
                              head_dim, mask_type(mask), element_type(dtype)));
}

std::string block_mask_source(const ModExpr& mask) {
  return jit_unit("the block-mask builder (kernels/attention/flex_attention_kernel.cuh)",
                  "kernels/attention/flex_attention_kernel.cuh", functors(identity_score(), &mask),
                  "template __global__ void block_mask_kernel<aisp_flex_jit::Mask>(const aisp_flex_jit::Mask, int, "
                  "int, int, int,\n"
                  "    int, int, std::int32_t*, std::int32_t*, std::int32_t*, std::int32_t*);\n");
}

std::string sm90_backward_source(const ModExpr& score, const ModExpr& score_grad, const ModExpr* mask, int head_dim,
                                 kernels::flex::FlexDtype dtype) {
  check_head_dim(head_dim);
  return jit_unit(
      fmt::format("the wgmma backward (kernels/attention/flex_backward_sm90.cuh), head dim {}, {}", head_dim,
                  kernels::flex::flex_dtype_name(dtype)),
      "kernels/attention/flex_backward_kernel.cuh", functors(score, mask, &score_grad),
      fmt::format("template __global__ void flex_backward_sm90_kernel<{0}, aisp_flex_jit::Score, {1}, {2}>(\n"
                  "    const __grid_constant__ BwdSm90Maps, const BwdParams, const aisp_flex_jit::Score, const {1});\n",
                  head_dim, mask_type(mask), element_type(dtype)));
}

std::string mma_sync_backward_source(const ModExpr& score, const ModExpr& score_grad, const ModExpr* mask,
                                     int head_dim, kernels::flex::FlexDtype dtype) {
  check_head_dim(head_dim);
  return jit_unit(fmt::format("the mma.sync backward (kernels/attention/flex_backward_kernel.cuh), head dim {}, {}",
                              head_dim, kernels::flex::flex_dtype_name(dtype)),
                  "kernels/attention/flex_backward_kernel.cuh", functors(score, mask, &score_grad),
                  fmt::format("template __global__ void flex_backward_kernel<{0}, aisp_flex_jit::Score, {1}, {2}>(\n"
                              "    const BwdParams, const aisp_flex_jit::Score, const {1});\n",
                              head_dim, mask_type(mask), element_type(dtype)));
}

std::string backward_block_mask_source(const ModExpr& mask) {
  return jit_unit("the backward's kv-major block-mask builder (kernels/attention/flex_backward_kernel.cuh)",
                  "kernels/attention/flex_backward_kernel.cuh", functors(identity_score(), &mask),
                  "template __global__ void backward_block_mask_kernel<aisp_flex_jit::Mask>(const aisp_flex_jit::Mask, "
                  "int, int,\n"
                  "    int, int, std::int32_t*, std::int32_t*, std::int32_t*, std::int32_t*, std::int32_t*);\n");
}

std::string find_kernel_symbol(const std::string& cubin, const std::string& part) {
  auto bad = [](const char* why) { return Error(fmt::format("flex JIT: the CUBIN is not a valid ELF file ({})", why)); };
  if (cubin.size() < sizeof(Elf64_Ehdr) || std::memcmp(cubin.data(), ELFMAG, SELFMAG) != 0) throw bad("no ELF header");
  Elf64_Ehdr eh;
  std::memcpy(&eh, cubin.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shoff + std::uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > cubin.size())
    throw bad("section table");
  auto section = [&](std::size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, cubin.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof sh);
    return sh;
  };
  std::vector<std::string> found;
  for (std::size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr symtab = section(i);
    if (symtab.sh_type != SHT_SYMTAB || symtab.sh_link >= eh.e_shnum) continue;
    const Elf64_Shdr strtab = section(symtab.sh_link);
    if (symtab.sh_offset + symtab.sh_size > cubin.size() || strtab.sh_offset + strtab.sh_size > cubin.size())
      throw bad("symbol table");
    for (std::uint64_t off = 0; off + sizeof(Elf64_Sym) <= symtab.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, cubin.data() + symtab.sh_offset + off, sizeof sym);
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_name >= strtab.sh_size) continue;
      const char* name = cubin.data() + strtab.sh_offset + sym.st_name;
      const std::string s(name, strnlen(name, std::size_t(strtab.sh_size - sym.st_name)));
      if (s.find(part) != std::string::npos) found.push_back(s);
    }
  }
  if (found.size() != 1)
    throw Error(fmt::format("flex JIT: {} kernels named like '{}' in the CUBIN (expected one)", found.size(), part));
  return found[0];
}

}  // namespace aisp::compiler::flex
