// The config-keyed, refcounted client registry and its lease handles. A
// client whose last lease is released lingers idle_ttl_ms, so that
// create-use-release loops keep one warm pool.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "client.h"
#include "handles.h"

namespace esp {

struct ClientState {
  std::shared_ptr<Client> client;
  size_t leases = 0;            // under the registry lock
  int64_t linger_until_us = 0;  // when leases == 0
  std::vector<std::string> raw_configs;  // config texts seen for it (fast path)
};

struct RegistryCounts {
  size_t clients_live = 0;
  size_t clients_lingering = 0;
  size_t leases_live = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
};

class Registry {
 public:
  Registry() : leases_(1) {}
  uint64_t acquire(const char *config_json);
  void release(uint64_t lease);
  // The client behind a live lease; throws Error(ESP_EHANDLE).
  std::shared_ptr<Client> resolve(uint64_t lease) const;
  size_t leases_of(const Client &c);
  RegistryCounts counts();
  std::vector<std::shared_ptr<ClientState>> snapshot();
  void clear();  // esp_shutdown: every lease becomes stale
  void lock_for_fork();
  void unlock_after_fork();
  void after_fork_child();

 private:
  // Clients unlinked by a sweep. Declared before the lock is taken, so they
  // are logged and freed after it is released: freeing an isolated client
  // joins its I/O thread, and a logger may take locks of its own (fork()
  // holds the registry lock).
  struct Evicted {
    std::vector<std::shared_ptr<ClientState>> states;
    ~Evicted();
  };
  void sweep_locked(int64_t now, Evicted &out);

  HandleTable<ClientState> leases_;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<ClientState>> by_canonical_;
  std::unordered_map<std::string, std::shared_ptr<ClientState>> by_raw_;
  uint64_t next_id_ = 1;
  int64_t next_sweep_us_ = 0;
  RegistryCounts counts_;
};

Registry &registry();

}  // namespace esp
