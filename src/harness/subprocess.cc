#include "harness/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace aisp::harness {

ProcessOutcome run_process(const std::vector<std::string>& argv, const std::filesystem::path& log_file,
                           double timeout_s, const std::vector<std::pair<std::string, std::string>>& environment) {
  ProcessOutcome outcome;
  if (argv.empty()) {
    outcome.error = "empty command";
    return outcome;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    outcome.error = fmt::format("cannot open log {}: {}", log_file.string(), std::strerror(errno));
    return outcome;
  }
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    outcome.error = fmt::format("fork failed: {}", std::strerror(errno));
    ::close(log_fd);
    return outcome;
  }
  if (pid == 0) {
    // Child: own process group (so a timeout can kill all it starts), killed with its parent (so
    // it never outlives a killed run: the group would otherwise escape the parent's killer),
    // stdin from /dev/null, stdout+stderr to the log, then exec.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) ::_exit(126);  // the parent died before prctl took effect
    for (const auto& [name, value] : environment) ::setenv(name.c_str(), value.c_str(), 1);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(args[0], args.data());
    const std::string msg = fmt::format("exec {} failed: {}\n", argv[0], std::strerror(errno));
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so the group exists before any kill below
  ::close(log_fd);
  outcome.started = true;

  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      outcome.error = fmt::format("waitpid failed: {}", std::strerror(errno));
      return outcome;
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > timeout_s) {
      outcome.timed_out = true;
      ::kill(-pid, SIGTERM);
      for (int i = 0; i < 50 && ::waitpid(pid, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(elapsed < 1.0 ? 2 : 20));
  }
  outcome.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
  return outcome;
}

std::string describe(const ProcessOutcome& o) {
  if (!o.started) return fmt::format("could not start: {}", o.error);
  if (o.timed_out)
    return fmt::format("timed out after {:.0f} s and was killed (a hung variant? raise --timeout if it is just slow)",
                       o.wall_s);
  if (o.signal) return fmt::format("crashed with signal {} ({})", o.signal, strsignal(o.signal));
  return fmt::format("exited with status {}", o.exit_code);
}

std::filesystem::path self_executable() { return std::filesystem::read_symlink("/proc/self/exe"); }

std::filesystem::path find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return {};
  std::string p = path;
  std::size_t begin = 0;
  while (begin <= p.size()) {
    const std::size_t end = p.find(':', begin);
    const std::string dir = p.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (!dir.empty()) {
      const auto candidate = std::filesystem::path(dir) / program;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return {};
}

}  // namespace aisp::harness
