// The socket ledger (see sockets.h): open and close accounting per origin,
// closes libcurl did not report found out by the socket's identity.
#include "sockets.h"

#include <sys/stat.h>
#include <unistd.h>

namespace esp {

bool SocketLedger::same_socket(curl_socket_t fd, const Entry &e) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && st.st_dev == e.dev && st.st_ino == e.ino;
}

void SocketLedger::account_closed_locked(Origin &o, bool aborted) {
  o.sockets_open.fetch_sub(1, std::memory_order_relaxed);
  o.sockets_closed.fetch_add(1, std::memory_order_relaxed);
  if (aborted) o.sockets_closed_aborted.fetch_add(1, std::memory_order_relaxed);
  open_count_.fetch_sub(1, std::memory_order_relaxed);
}

void SocketLedger::opened(curl_socket_t fd, Origin &o) {
  struct stat st;
  Entry e{&o, 0, 0};
  if (::fstat(fd, &st) == 0) {
    e.dev = st.st_dev;
    e.ino = st.st_ino;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(fd);
  if (it != entries_.end()) {
    account_closed_locked(*it->second.origin, false);
    entries_.erase(it);
  }
  entries_.emplace(fd, e);
  o.sockets_open.fetch_add(1, std::memory_order_relaxed);
  open_count_.fetch_add(1, std::memory_order_relaxed);
}

void SocketLedger::closed(curl_socket_t fd, bool aborted) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(fd);
  if (it == entries_.end()) return;
  account_closed_locked(*it->second.origin, aborted);
  entries_.erase(it);
}

bool SocketLedger::still_open(curl_socket_t fd) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(fd);
  if (it == entries_.end()) return false;
  if (same_socket(fd, it->second)) return true;
  account_closed_locked(*it->second.origin, false);
  entries_.erase(it);
  return false;
}

void SocketLedger::forget_all() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto &kv : entries_) account_closed_locked(*kv.second.origin, false);
  entries_.clear();
}

void SocketLedger::close_inherited_locked() {
  for (auto &kv : entries_)
    if (same_socket(kv.first, kv.second)) ::close(kv.first);
  entries_.clear();
}

}  // namespace esp
