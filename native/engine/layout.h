// Byte layouts shared between the I/O thread and JavaScript. src/engine/native-layout.ts is generated from
// these numbers (scripts/emit-constants.cc), and JavaScript checks them against the addon's exported copy at
// load time, so that a build of other sources is refused.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/align.h"

namespace volley {

// Bumped whenever what this side and JavaScript exchange changes meaning with every size below the same
// (2: link field 3 became the RTT's variance; 3: a server's protocol stats grew to 23 counters; 4: to 24, its
// requests under a previous private key; 5: a key rotation carries its grace's end, not its length): JavaScript
// refuses an addon of other sources, not misreads it.
constexpr uint32_t kLayoutRevision = 5;

// Largest UDP payload: over IPv6, 65535 - 8 (the UDP header; IPv6's own header is not counted in its
// payload length). Over IPv4 the IP header counts too: 65507, which JavaScript checks per destination.
constexpr size_t kMaxDatagramSize = 65527;
// Receive buffers are sized for the largest datagram a socket can be handed, so truncation is detectable.
constexpr size_t kReceiveSlotSize = 65536;
// Each receive slot is two pieces: a small head, packed next to the other slots' heads so that a batch of
// typical datagrams touches few pages and no aliasing cache sets, and a tail for larger datagrams, which
// stays untouched (and unbacked) memory unless one arrives.
constexpr size_t kReceiveHeadSize = 2048;
constexpr uint32_t kMaxBatchSize = 1024;  // UIO_MAXIOV
constexpr uint32_t kDefaultBatchSize = 64;

// A received datagram in a receive slab, 8-byte aligned:
//   u32 length | u16 port | u8 family (4|6) | u8 flags | u8[16] address | u32 IPv6 scope id | u32 0 | data, padded to 8
// (The scope: a link-local sender's interface, without which a reply to it cannot be addressed.)
constexpr size_t kRecvHeaderSize = 32;
constexpr uint8_t kRecvFlagTruncated = 1;

// A datagram queued in a send slab by JavaScript, 8-byte aligned:
//   u32 socket id | u32 length | u16 port | u8 family | u8 channel | u32 IPv6 scope id | u8[16] address | data, padded to 8
// Protocol sockets read the u32 after the channel as the peer (a server's client index, tagged as
// socket_protocol.h's kPeerSlotBits says) and ignore the address.
constexpr size_t kSendHeaderSize = 32;

// Both kinds of slab are this size, made by the addon and shared with JavaScript (shared_memory.h).
constexpr size_t kSlabSize = 256 * 1024;

// Events handed to JavaScript, each kEventWords int32 words in the control array:
//   BATCH      socket, slab, offset, count, end offset
//   SEND_DONE  slab (only when JavaScript waits for a slab: finished slabs go back through released_slabs.h)
//   CLOSED     socket
//   ERROR      socket, -errno, count, operation
//   STARVED    (the I/O thread ran out of free receive slabs)
constexpr size_t kEventWords = 6;
constexpr size_t kEventCapacity = 1024;
enum EventType : int32_t { kEventBatch = 1, kEventSendDone = 2, kEventClosed = 3, kEventError = 4, kEventStarved = 5 };
enum Operation : int32_t { kOpReceive = 1, kOpSend = 2 };

}  // namespace volley
