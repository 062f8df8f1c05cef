// The fault-injecting proxy (test/faults/proxy.js) as a child process of the
// fault suite: one JSON command a line on its stdin, one reply a line back.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

class FaultProxy {
 public:
  explicit FaultProxy(int target_port) {
    const char *root = std::getenv("ESP_ROOT");
    std::string script = std::string(root ? root : ".") + "/test/faults/proxy.js";
    std::string target = std::to_string(target_port);
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execlp("node", "node", script.c_str(), "--target", target.c_str(), static_cast<char *>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = fdopen(in[1], "w");
    from_ = fdopen(out[0], "r");
    std::string hello = read_line();
    size_t colon = hello.find(':');
    if (colon == std::string::npos) throw std::runtime_error("the fault proxy did not start");
    port = std::atoi(hello.c_str() + colon + 1);
  }
  ~FaultProxy() {
    if (to_) fclose(to_);
    if (from_) fclose(from_);
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  FaultProxy(const FaultProxy &) = delete;
  FaultProxy &operator=(const FaultProxy &) = delete;

  // Sends one command, returns the proxy's reply line.
  std::string send(const std::string &json) {
    std::fputs((json + "\n").c_str(), to_);
    std::fflush(to_);
    return read_line();
  }
  void mode(const std::string &name, long after = 0, long bps = 0) {
    send("{\"mode\":\"" + name + "\",\"after\":" + std::to_string(after) + ",\"bps\":" + std::to_string(bps) + "}");
  }

  int port = 0;

 private:
  std::string read_line() {
    char buf[1024];
    if (!std::fgets(buf, sizeof buf, from_)) throw std::runtime_error("the fault proxy went away");
    return buf;
  }
  pid_t pid_ = -1;
  FILE *to_ = nullptr;
  FILE *from_ = nullptr;
};
