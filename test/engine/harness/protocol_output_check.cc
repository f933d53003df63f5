// Drives a protocol's outbox (native/sockets/socket_protocol.cc) directly, as a server's timers do when they fire
// for thousands of peers in one update, and prints what the engine's drain saw, as JSON, for
// test/engine/protocol-output.test.ts.
#include <cstdio>
#include <cstring>

#include "sockets/socket_protocol.h"

int main() {
  volley::ProtocolOutput output;
  volley::netcode::ServerAddress to;
  to.ip.family = 4;
  to.ip.bytes[0] = 127;
  to.ip.bytes[3] = 1;
  to.port = 40000;

  size_t drains = 0, drained = 0, largestDrain = 0, largestOutbox = 0;
  bool inOrder = true;
  uint32_t expected = 0;
  // What the engine does: sends [0, outboxCount) and empties the outbox.
  output.drain = [&] {
    ++drains;
    largestDrain = std::max(largestDrain, output.outboxCount);
    for (size_t i = 0; i < output.outboxCount; ++i) {
      uint32_t index;
      std::memcpy(&index, output.outbox[i].data, 4);
      inOrder = inOrder && index == expected++ && output.outbox[i].size == 64;
    }
    drained += output.outboxCount;
    output.outboxCount = 0;
  };
  uint8_t payload[64] = {};
  for (uint32_t index = 0; index < 10000; ++index) {
    std::memcpy(payload, &index, 4);
    output.Send(to, payload, sizeof payload, false);
    largestOutbox = std::max(largestOutbox, output.outbox.size());
  }
  std::printf("{\"drains\":%zu,\"drained\":%zu,\"left\":%zu,\"largestDrain\":%zu,\"largestOutbox\":%zu,\"inOrder\":%s}\n", drains,
              drained, output.outboxCount, largestDrain, largestOutbox, inOrder ? "true" : "false");
  return 0;
}
