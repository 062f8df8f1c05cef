// Connections to one origin (scheme, host, port and transport settings) on
// one engine, shared by the engine's shards: counters, connection slots,
// HTTP/2 openers and the circuit breaker; and the interface a transfer
// reports its connection through.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "breaker.h"
#include "metrics.h"

namespace esp {

class Transfer;

// An engine has at most this many shards (I/O threads; ESP_IO_THREADS).
constexpr int kMaxShards = 16;

// HTTP/2 streams per connection. libcurl 7.88 opens a new connection for
// every transfer that finds the open ones full (measured: 150 concurrent
// transfers, 51 connections), so the engine admits transfers by capacity.
constexpr long kStreamsPerConnection = 100;

struct Origin {
  Origin(std::string k, std::string l) : key(std::move(k)), label(std::move(l)) {}
  const std::string key;
  const std::string label;  // "scheme://host:port"
  int home_shard = 0;       // where its shared (HTTP/2) connections live, set at creation
  Counters stats;
  std::atomic<int64_t> sockets_open{0};
  std::atomic<uint64_t> sockets_closed{0};
  // Of those: closed by libesp stopping a transfer midway (cancel, first-byte
  // or idle timeout, shutdown); the rest closed by libcurl (the server closed
  // it, an error, too old to reuse, the cache full).
  std::atomic<uint64_t> sockets_closed_aborted{0};
  std::atomic<bool> multiplexed{false};  // the server spoke HTTP/2 here
  std::atomic<bool> http1_only{false};   // it answered HTTP/1.x where HTTP/2 was offered

  // Every shard's driver admits transfers here: the fields below, the
  // breaker's, and the Transfer::slot_* fields of its transfers are
  // guarded by mu.
  std::mutex mu;
  Breaker breaker;
  int active = 0;  // transfers holding a slot, on every shard
  // Waiting for a slot, first come first served across the shards; a
  // transfer that stopped waiting stays until it reaches the front.
  std::deque<std::shared_ptr<Transfer>> waiting;
  // HTTP/1.1 connections as tokens (one transfer at a time each): a slot
  // comes with one of its shard's idle connections, else another shard's
  // idle one (the transfer then runs on that shard), else a new one. So
  // the connections to an origin stay within max_connections (and the peak
  // of transfers in flight) whatever the shards: no shard opens one while
  // another has one idle.
  int tokens_owned = 0;            // connections (to be) opened, on every shard
  int tokens_idle[kMaxShards] = {};  // of those, per shard, not carrying a transfer
  // Transfers allowed past the open connections' stream capacity, to open
  // one more connection each; others wait for them instead of each opening
  // one, but never longer than about a connect of their own (a slow connect
  // must not starve them): then the next waiter opens one too.
  int openers = 0;
  int64_t last_opener_us = 0;
  int64_t connect_us = 0;  // openers' recent connect + handshake time (average), 0: none yet
};

// ---- slot admission (driver only) ----------------------------------------------

enum class SlotGrant {
  kWait,    // no room: queue
  kGranted, // a slot on an open (or, for HTTP/1.1, a new) connection
  kOpener,  // a slot, and this transfer opens the next HTTP/2 connection
};
// A transfer that may be multiplexed (HTTP/2 over TLS) shares connections
// with the origin's others unless the origin is known to speak HTTP/1.x.
bool shares_connections(const Origin &o, bool multiplexable);
// Takes a slot when there is room (max_connections per origin, or 100
// streams per open HTTP/2 connection plus openers), for a transfer on
// shard `shard`. An HTTP/1.1 slot comes with a connection token: *token is
// the shard the transfer must run on (its own, or one with an idle
// connection); -1 for shared (HTTP/2) connections. Under o.mu.
SlotGrant take_slot(Origin &o, bool multiplexable, int64_t max_connections, int64_t now_us, int shard, int *token);
// The token of the connection a transfer ran on: `token`, or for one admitted
// as an HTTP/2 stream (none) to an origin since found HTTP/1.1-only that
// reached a connection, a new one of `shard`: that connection is one of the
// origin's. Under o.mu.
int token_of_connection(Origin &o, bool multiplexable, bool connected, int token, int shard);
// Gives back what take_slot granted (an opener that never connected
// included; the token's connection is idle again). Under o.mu.
void give_back_slot(Origin &o, bool holds_slot, bool opening, int token);
// An opener's connection is up after took_us: its waiters may use it. Under o.mu.
void opener_connected(Origin &o, int64_t took_us);
// How long waiters wait for an opener before the next one opens a connection.
int64_t opener_grace_us(const Origin &o);

// What a transfer tells the driving engine about its connection, from
// libcurl's pre-request callback (the engine implements it).
class ConnectionWatcher {
 public:
  // The request is about to go out on the connection with this local port.
  virtual void connection_in_use(Transfer &t, int local_port) = 0;
  // The connection is up: an opener's waiters may use it.
  virtual void connection_ready(Transfer &t) = 0;

 protected:
  ~ConnectionWatcher() = default;
};

}  // namespace esp
