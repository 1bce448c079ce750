// The subcommands: their options (bound to CLI11) and what each does once parsed.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace CLI {
class App;
}
namespace aisp::ch14 {
struct CompiledGraphEntry;
}
namespace aisp::compiler {
class Graph;
}

namespace aisp::cli {

class Commands {
 public:
  Commands(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}
  void add_to(CLI::App& app);
  void set_command_line(int argc, char** argv) { command_line_.assign(argv, argv + argc); }
  int run();  // runs the parsed subcommand

 private:
  int list_targets();
  int bench_run();
  int update_expectations_from_run();
  int diff_runs();
  int list_runs();
  int show_kernels();
  int compare();
  int gpu_info();
  int run_variant();
  int inspect();  // inspect_command.cc
  int inspect_cuda(const ch14::CompiledGraphEntry& entry, const compiler::Graph& g, double trace_ms,
                   const std::string& dir);

  std::ostream& out_;
  std::ostream& err_;
  std::function<int()> chosen_;

  // bench list-targets
  std::string chapter_;
  // bench run / compare
  std::string targets_;
  std::string variants_;
  std::string examples_;
  std::string profile_ = "none";
  std::string mode_ = "cold";
  std::string format_ = "table";
  std::string artifacts_dir_ = "artifacts";
  std::string expectations_dir_;
  int iterations_ = 0;
  int warmup_ = 3;
  double timeout_s_ = 600;
  double max_time_s_ = 5;
  std::uint64_t seed_ = 20261126;
  bool update_expectations_ = false;
  std::string process_state_ = "multi-stream";  // bench run --process-state
  // bench update-expectations, bench diff
  std::string stored_run_dir_;
  std::string base_run_dir_;
  std::string diff_mode_;
  double tolerance_ = 0.02;
  bool fail_on_slower_ = false;
  // bench kernels
  int top_kernels_ = 10;
  // gpu info
  int device_ = 0;
  bool remeasure_ = false;
  std::string json_out_;
  // inspect
  std::string inspect_target_;
  std::string inspect_out_;
  std::string inspect_backend_ = "cpu";
  // __run-variant
  std::string request_file_;
  std::string result_file_;
  std::vector<std::string> command_line_;
};

}  // namespace aisp::cli
