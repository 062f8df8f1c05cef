// The sockets an engine's libcurl opened and has not closed, per origin. Each
// is known by its descriptor and its identity (device, inode), because
// libcurl 7.88 closes some sockets without the close callback (a connect
// that ran out of time): such a close is found out, not counted open forever,
// and a forked child closes only descriptors that are still the parent's sockets.
#pragma once

#include <curl/curl.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "origin.h"

namespace esp {

class SocketLedger {
 public:
  // fd was just opened for o. A descriptor number still listed belonged to a
  // socket closed unseen: that one is accounted closed first.
  void opened(curl_socket_t fd, Origin &o);
  // libcurl's close callback, before the close; `aborted`: libesp stopped a
  // transfer midway (see Origin::sockets_closed_aborted).
  void closed(curl_socket_t fd, bool aborted);
  // True while fd is still the socket opened as fd; false once it was
  // closed unseen (then it is accounted closed).
  bool still_open(curl_socket_t fd);
  // Accounts every listed socket closed (the multi is gone: so are they).
  void forget_all();
  int64_t open() const { return open_count_.load(std::memory_order_relaxed); }

  // fork(): the parent holds the lock across fork(); the child, with it held,
  // closes the inherited sockets raw (no TLS close_notify) and forgets them.
  void lock() { mu_.lock(); }
  void unlock() { mu_.unlock(); }
  void close_inherited_locked();

 private:
  struct Entry {
    Origin *origin;
    dev_t dev;
    ino_t ino;
  };
  static bool same_socket(curl_socket_t fd, const Entry &e);
  void account_closed_locked(Origin &o, bool aborted);

  std::mutex mu_;  // guards entries_ (taken by fork and the driver)
  std::unordered_map<curl_socket_t, Entry> entries_;
  std::atomic<int64_t> open_count_{0};
};

}  // namespace esp
