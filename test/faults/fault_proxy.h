// The fault-injecting proxy (test/faults/proxy.js) as a child process of the
// fault suite: one JSON command a line on its stdin, one reply a line back.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "node_child.h"

class FaultProxy {
 public:
  explicit FaultProxy(int target_port)
      : node_("test/faults/proxy.js", {"--target", std::to_string(target_port)}) {
    const std::string hello = node_.read_line();
    const size_t colon = hello.find(':');
    if (colon == std::string::npos) throw std::runtime_error("the fault proxy did not start");
    port = std::atoi(hello.c_str() + colon + 1);
  }

  // Sends one command, returns the proxy's reply line.
  std::string send(const std::string &json) {
    node_.write_line(json);
    return node_.read_line();
  }
  void mode(const std::string &name, long after = 0, long bps = 0) {
    send("{\"mode\":\"" + name + "\",\"after\":" + std::to_string(after) + ",\"bps\":" + std::to_string(bps) + "}");
  }

  int port = 0;

 private:
  NodeChild node_;
};
