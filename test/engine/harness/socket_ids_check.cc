// SocketIds around the wrap: prints what Next() gives, as JSON, for test/engine/socket-ids.test.ts.
#include <cstdint>
#include <cstdio>
#include <set>

#include "engine/socket_ids.h"

int main() {
  volley::SocketIds ids;
  std::set<uint32_t> live;
  const auto inUse = [&live](uint32_t id) { return live.count(id) != 0; };
  const auto open = [&] {
    const uint32_t id = ids.Next(inUse);
    live.insert(id);
    return id;
  };
  const uint32_t first = open(), second = open();  // 1 and 2, held open for the whole run
  live.erase(second);                               // 2 closes and is forgotten
  live.insert(3);                                   // 3 is still held (closed, not yet forgotten)
  ids.SkipTo(UINT32_MAX - 1);                        // as after 2^32 - 2 sockets
  const uint32_t last = open(), highest = open(), wrapped = open(), next = open();
  ids.SkipTo(0);
  const uint32_t fromZero = ids.Next([](uint32_t) { return false; });
  std::printf("{\"first\":%u,\"second\":%u,\"last\":%u,\"highest\":%u,\"wrapped\":%u,\"next\":%u,\"fromZero\":%u}\n", first, second,
              last, highest, wrapped, next, fromZero);
  return 0;
}
