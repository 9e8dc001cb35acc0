#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace replayrail::testing {

// A program the test starts, with its stdout read line by line. The destructor SIGKILLs and
// reaps it if it still runs, so a failing test leaves no process behind.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The next line of stdout (without "\n"); nullopt at end of output or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  void kill(int signal);
  // Waits for the process to end; returns its wait status.
  int wait();
  // The same, giving up after `timeout` (nullopt: still running).
  std::optional<int> wait_for(std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
  bool reaped_ = false;
  int status_ = 0;  // once reaped
};

// Runs a program to its end: all its output lines; throws with them when it fails.
std::vector<std::string> run_lines(const std::vector<std::string>& argv);

}  // namespace replayrail::testing
