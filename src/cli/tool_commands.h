// Commands that live beside what they drive (`aisp gemm ...`, `aisp flex ...`): a source file in
// src/cli registers an adder during static initialization, and Commands::add_to calls every adder,
// so the core CLI needs no edit per tool. aisp_cli is an OBJECT library so these registrations are
// always linked.
//
//   namespace {
//   void add_gemm(CLI::App& app, const ToolCommandContext& ctx) {
//     auto* gemm = app.add_subcommand("gemm", "...");
//     auto options = std::make_shared<Options>();   // outlives parsing
//     gemm->add_option("--m", options->m, "...");
//     gemm->callback([ctx, options] { ctx.choose([ctx, options] { return run_gemm(*options, *ctx.out); }); });
//   }
//   const bool registered = register_tool_command(add_gemm);
//   }
#pragma once

#include <functional>
#include <iosfwd>
#include <vector>

namespace CLI {
class App;
}

namespace aisp::cli {

struct ToolCommandContext {
  std::ostream* out;
  std::ostream* err;
  // Call from a subcommand's callback with what runs once parsing succeeded (returns the exit status:
  // 0 ok, 1 failure, 2 usage error; throwing aisp::UsageError also gives 2).
  std::function<void(std::function<int()>)> choose;
};

using ToolCommandAdder = void (*)(CLI::App& app, const ToolCommandContext& ctx);

// Returns true so that a namespace-scope `const bool` can hold the call.
bool register_tool_command(ToolCommandAdder adder);

// Every adder registered so far, in registration order.
const std::vector<ToolCommandAdder>& tool_command_adders();

}  // namespace aisp::cli
