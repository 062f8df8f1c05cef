// Slot admission per origin (see origin.h): how many transfers may run at
// once, and how a burst of HTTP/2 requests opens a few connections one
// opener at a time instead of one each.
#include "origin.h"

#include <algorithm>

namespace esp {

// About what a connection of their own would take (four times the origin's
// recent connects, at least 250 ms: a connect in a burst is slower than one
// alone), so a burst opens a few connections, not dozens, and a connect that
// hangs delays the others by this much, not by their timeouts.
int64_t opener_grace_us(const Origin &o) {
  return std::min<int64_t>(std::max<int64_t>(4 * o.connect_us, 250000), 2000000);
}

bool shares_connections(const Origin &o, bool multiplexable) {
  return o.multiplexed || (multiplexable && !o.http1_only);
}

namespace {

int64_t slot_limit(const Origin &o, bool multiplexable, int64_t max_connections) {
  if (!shares_connections(o, multiplexable)) return max_connections;
  // Streams only once the server is known to speak HTTP/2 (ALPN on the
  // first connection, else its first head): admitted as streams to one
  // that refuses h2, each would open a connection past max_connections.
  if (!o.multiplexed) return 0;
  // An opener's connection takes streams only once it is up.
  int64_t ready = o.sockets_open.load(std::memory_order_relaxed) - o.openers;
  return std::min<int64_t>(std::max<int64_t>(ready, 0), max_connections) * kStreamsPerConnection;
}

}  // namespace

namespace {

// The shard whose connection an HTTP/1.1 slot uses: this shard's idle one,
// else another shard's idle one, else a new one here (fewer than
// max_connections exist: fewer slots than that are taken). A new one only
// when none is idle keeps the connections to the peak of requests in flight.
int take_token(Origin &o, int shard) {
  if (o.tokens_idle[shard] > 0) {
    --o.tokens_idle[shard];
    return shard;
  }
  for (int s = 0; s < kMaxShards; ++s) {
    if (o.tokens_idle[s] > 0) {
      --o.tokens_idle[s];
      return s;
    }
  }
  ++o.tokens_owned;
  return shard;
}

}  // namespace

SlotGrant take_slot(Origin &o, bool multiplexable, int64_t max_connections, int64_t now_us, int shard, int *token) {
  *token = -1;
  SlotGrant grant = o.active < slot_limit(o, multiplexable, max_connections) ? SlotGrant::kGranted : SlotGrant::kWait;
  if (grant == SlotGrant::kWait && shares_connections(o, multiplexable) &&
      o.sockets_open.load(std::memory_order_relaxed) < max_connections &&
      (o.openers == 0 || now_us - o.last_opener_us >= opener_grace_us(o))) {
    grant = SlotGrant::kOpener;  // this one opens the next connection; the rest wait for it
    ++o.openers;
    o.last_opener_us = now_us;
  }
  if (grant == SlotGrant::kWait) return grant;
  ++o.active;
  if (!shares_connections(o, multiplexable)) *token = take_token(o, shard);
  return grant;
}

int token_of_connection(Origin &o, bool multiplexable, bool connected, int token, int shard) {
  if (token >= 0 || !connected || shares_connections(o, multiplexable)) return token;
  ++o.tokens_owned;
  return shard;
}

void give_back_slot(Origin &o, bool holds_slot, bool opening, int token) {
  if (opening) --o.openers;
  if (holds_slot) --o.active;
  if (token >= 0) ++o.tokens_idle[token];
}

void opener_connected(Origin &o, int64_t took_us) {
  --o.openers;
  o.connect_us = o.connect_us ? (3 * o.connect_us + took_us) / 4 : took_us;
}

}  // namespace esp
