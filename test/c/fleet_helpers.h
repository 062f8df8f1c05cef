// Fixtures of the fleet tests: a real redis-server started by the test on a
// free loopback port (no persistence), and fleet_worker processes
// (test/fleet/worker.c) run side by side, each printing one JSON line.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loopback.h"

extern char **environ;

class RedisServer {
 public:
  RedisServer() : port(free_loopback_port()) { start(); }
  ~RedisServer() { kill_now(); }

  void start() {
    const std::string p = std::to_string(port);
    std::vector<const char *> argv = {"redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--logfile", "/dev/null", nullptr};
    if (posix_spawnp(&pid_, "redis-server", nullptr, nullptr, const_cast<char **>(argv.data()), environ) != 0)
      throw std::runtime_error("cannot start redis-server");
    for (int i = 0; i < 200 && !ping(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!ping()) throw std::runtime_error("redis-server did not answer");
  }
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGSTOP / SIGCONT: a Redis that accepts connections and never answers.
  void freeze(bool frozen) { ::kill(pid_, frozen ? SIGSTOP : SIGCONT); }
  bool ping() const { return command("PING\r\n").rfind("+PONG", 0) == 0; }
  // One inline command on a fresh connection; the raw reply ("" when none).
  std::string command(const std::string &inline_cmd) const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
        write(fd, inline_cmd.data(), inline_cmd.size()) == static_cast<ssize_t>(inline_cmd.size())) {
      char buf[65536];
      timeval tv{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) out.assign(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port) + "/0"; }

  const int port;

 private:
  pid_t pid_ = -1;
};

// A fleet_worker process; wait() returns its JSON line.
class Worker {
 public:
  explicit Worker(const std::vector<std::string> &args) {
    const char *root = std::getenv("ESP_ROOT");
    const std::string bin = std::string(root ? root : ".") + "/build/fleet_worker";
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<const char *> argv = {bin.c_str()};
    for (auto &a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, const_cast<char **>(argv.data()), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) throw std::runtime_error("cannot start " + bin);
    out_ = fdopen(out[0], "r");
  }
  ~Worker() { wait(); }
  // Its output (one JSON line), once it exited; exit_code is set.
  std::string wait() {
    if (pid_ > 0) {
      char buf[1 << 16];
      while (out_ && fgets(buf, sizeof buf, out_)) output_ += buf;
      if (out_) fclose(out_);
      out_ = nullptr;
      int st = 0;
      waitpid(pid_, &st, 0);
      exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      pid_ = -1;
    }
    return output_;
  }
  int exit_code = -1;

 private:
  pid_t pid_ = -1;
  FILE *out_ = nullptr;
  std::string output_;
};
