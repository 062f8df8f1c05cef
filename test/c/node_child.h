// A Node.js script of this repository run as a child process of a test, spoken to
// line by line over its stdin and stdout: the mock LLM server and the fault proxy
// both start this way, and both print one line saying where they listen.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

class NodeChild {
 public:
  // script: a path under ESP_ROOT (the repository; "." when unset).
  NodeChild(const std::string &script, const std::vector<std::string> &args) {
    const char *root = std::getenv("ESP_ROOT");
    script_ = script;
    const std::string path = std::string(root ? root : ".") + "/" + script;
    // Built before fork: the child of a threaded test process may not allocate.
    std::vector<const char *> argv = {"node", path.c_str()};
    for (const std::string &a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execvp("node", const_cast<char **>(argv.data()));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = fdopen(in[1], "w");
    from_ = fdopen(out[0], "r");
  }
  ~NodeChild() { stop(); }
  NodeChild(const NodeChild &) = delete;
  NodeChild &operator=(const NodeChild &) = delete;

  // The child's next line; throws when it exited or closed its output.
  std::string read_line() {
    char buf[4096];
    if (!from_ || !std::fgets(buf, sizeof buf, from_)) throw std::runtime_error(script_ + " went away");
    return buf;
  }
  void write_line(const std::string &line) {
    std::fputs((line + "\n").c_str(), to_);
    std::fflush(to_);
  }
  // For a child that has nothing more to say once it listens: its later writes go nowhere.
  void stop_reading() {
    if (from_) std::fclose(from_);
    from_ = nullptr;
  }
  void stop() {
    if (pid_ <= 0) return;
    if (to_) std::fclose(to_);
    stop_reading();
    to_ = nullptr;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string script_;
  pid_t pid_ = -1;
  FILE *to_ = nullptr;
  FILE *from_ = nullptr;
};
