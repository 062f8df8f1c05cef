// Loopback endpoints the tests make by hand: a free port, and a listener
// that never reads (a stalled peer) whose accept queue can be filled (then
// the kernel drops new SYNs: a connect that hangs).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// A listening socket on 127.0.0.1 and an ephemeral port.
class LoopbackListener {
 public:
  explicit LoopbackListener(int backlog = 16) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = address(0);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0 || listen(fd_, backlog) != 0)
      throw std::runtime_error("cannot listen on loopback");
    port = ntohs(a.sin_port);
  }
  ~LoopbackListener() {
    for (int f : fillers_) close(f);
    close(fd_);
  }
  LoopbackListener(const LoopbackListener &) = delete;
  LoopbackListener &operator=(const LoopbackListener &) = delete;

  // Connects (and never accepts) until the accept queue is full: from then
  // on the kernel drops this port's SYNs, so a client's connect hangs.
  // Needs a backlog of 0 (the queue then holds one connection).
  void fill_accept_queue() {
    for (int i = 0; i < 4; ++i) {
      int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      sockaddr_in a = address(port);
      connect(f, reinterpret_cast<sockaddr *>(&a), sizeof a);
      fillers_.push_back(f);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the handshakes settle
  }

  std::string origin() const { return "http://127.0.0.1:" + std::to_string(port); }
  std::string url(const std::string &path = "/v1") const { return origin() + path; }

  int port = 0;

 private:
  static sockaddr_in address(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }
  int fd_ = -1;
  std::vector<int> fillers_;
};

// A loopback port nothing listens on (free a moment ago).
inline int free_loopback_port() {
  LoopbackListener probe;
  return probe.port;
}
