// A protocol run on a socket's datagrams (the netcode server or client, with its delivery layer): it takes
// datagrams, payloads from JavaScript, control requests and the time; it gives datagrams to send and
// records for JavaScript. It does no I/O: the native engine's I/O thread runs it, and so does the fallback
// engine, built to WebAssembly (native/wasm/). Raw sockets have none.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "protocol/netcode/server.h"
#include "sockets/large_messages.h"
#include "util/address.h"

namespace volley {

// A record for JavaScript in a receive slab, 8-byte aligned:
//   u32 length | u8 kind | u8 code | u16 port | u32 peer | u8 family | u8[3] 0 | u8[16] address | data
// Payload records carry the channel in `code`; a large payload's data is the u32 id of its parked bytes
// (large_messages.h); a drain record says the peer's send queue went below half its limit, a flushed record
// that it emptied (everything sent, and acknowledged on the reliable channels), a settings record what the
// peer's delivery layer announced (data: u32 its largest message, then a u8 mode per channel; code 1 when they
// do not work with this side's: the connection is ending). A client state record carries the state in `code`,
// in `peer` the number JavaScript gave the connect (kControlConnect's argument) that the state belongs to,
// and, while an attempt or a connection is under way, its server's address; for kClientStateChannelsMismatch
// because the server's settings did not come in time, data: u32 the wait in ms.
constexpr size_t kPeerRecordHeaderSize = 32;
enum PeerRecordKind : uint8_t {
  kPeerPayload = 1,
  kPeerConnect = 2,
  kPeerDisconnect = 3,
  kClientState = 4,
  kPeerLargePayload = 5,
  kPeerDrain = 6,
  kPeerFlushed = 7,
  kPeerSettings = 8,
};
// The disconnect record's code (a server's peer) and the client state record's, when the two sides' channels
// do not work together (delivery::Mismatch), or the peer's settings did not come in time (a peer without
// channels, or all it sent lost; DeliveryLink::settingsDeadlineUs): past netcode's own reasons and states.
constexpr uint8_t kDisconnectChannelsMismatch = 5;
constexpr uint8_t kDisconnectSettingsLate = 6;
constexpr uint8_t kDisconnectReassemblyStalled = 7;  // the delivery core stalled (DeliveryCore::stalled())
constexpr int8_t kClientStateChannelsMismatch = -7;
// Control requests from JavaScript. kControlWatchPeer: a send was refused, report (drain record) when the
// peer's queue has room again, for it too (data: its charge, u32 LE). kControlWatchFlush: report (flushed
// record) when the queue is empty. kControlRotatePrivateKey: a server's new private key (data: the 32-byte key,
// then when the replaced key's grace ends, monotonic µs, u64 LE: JavaScript's deadline, not one counted from
// whenever the engine's thread applies it; any other length is ignored), its bytes wiped once applied.
enum ProtocolControl : uint32_t {
  kControlDisconnectPeer = 1,
  kControlConnect = 2,
  kControlDisconnect = 3,
  kControlStop = 4,
  kControlWatchPeer = 5,
  kControlSendLarge = 6,  // arg: peer; data: the message (too large for a send slab), then a u8 channel
  kControlWatchFlush = 7,
  kControlRotatePrivateKey = 8,
};
// How JavaScript names a server's peer in sends and control requests: its slot (client index) in the low
// kPeerSlotBits (maxClients is at most 2^20), and above them how many clients the slot had before, mod 4096
// (the disconnect records JavaScript has seen for it). A send or control for a client that left while
// JavaScript was behind is then dropped, not taken for the client that has its slot now.
constexpr uint32_t kPeerSlotBits = 20;
constexpr uint32_t kMaxClientsLimit = 1u << kPeerSlotBits;  // the most maxClients a server may have

// Largest datagram a protocol sends (a connection request).
constexpr size_t kMaxProtocolDatagram = 1280;
// Datagrams the outbox holds before it is sent on (~330 KiB). A server whose timers fire for every peer at
// once (after a stall, or its redundant disconnects to 10,000 peers) would otherwise grow it to megabytes,
// which it keeps: it is reused, never shrunk.
constexpr size_t kOutboxDrainAt = 256;

class ProtocolOutput {
 public:
  struct Datagram {
    sockaddr_in6 name;
    socklen_t nameLength;
    uint16_t size;
    uint8_t data[kMaxProtocolDatagram];
  };

  void Send(const netcode::ServerAddress& to, const uint8_t* data, size_t size, bool socketIsV6);
  // Set by the engine: sends the outbox on (and empties it) when it holds kOutboxDrainAt datagrams.
  std::function<void()> drain;
  // Appends a record; returns where its `size` data bytes go.
  uint8_t* Record(PeerRecordKind kind, uint8_t code, uint32_t peer, const netcode::ServerAddress* address, size_t size);

  std::vector<Datagram> outbox;  // [0, outboxCount) are waiting for sendmmsg
  size_t outboxCount = 0;
  std::vector<uint8_t> records;  // [recordsStart, end) wait for slab space
  size_t recordsStart = 0;
  uint32_t recordCount = 0;
  uint64_t sendDropped = 0;      // datagrams the kernel would not take at once (counted, not retried)
  std::shared_ptr<LargeMessages> large;  // set by the engine

  // A payload record for `peer`, or a large-payload record when it does not belong in a slab.
  // owned (may be null): a buffer holding exactly the message, taken rather than copied when it is parked.
  void Payload(uint8_t channel, uint32_t peer, const uint8_t* data, size_t size, std::vector<uint8_t>* owned = nullptr);
};

class NetworkSimulator;

class SocketProtocol {
 public:
  SocketProtocol();
  virtual ~SocketProtocol();
  virtual void Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size, const netcode::Clock& now) = 0;
  // A received batch: Receive() for each in order, unless the protocol does better with all of them at hand.
  virtual void ReceiveBatch(const netcode::ReceivedDatagram* datagrams, size_t count, const netcode::Clock& now) {
    for (size_t i = 0; i < count; ++i) Receive(datagrams[i].from, datagrams[i].data, datagrams[i].size, now);
  }
  virtual void Update(const netcode::Clock& now) = 0;
  // When Update() next has work to do (monotonic µs), UINT64_MAX if never. Receive() and Control() may
  // move it earlier (the engine asks again after them); Send() only moves it later.
  virtual uint64_t NextDeadlineUs() const = 0;
  // A payload from JavaScript for `peer` (clients: 0) on `channel`.
  virtual void Send(uint32_t peer, uint8_t channel, const uint8_t* data, size_t size, const netcode::Clock& now) = 0;
  // Follows each batch of Receive() or Send() calls: work that one batch needs once (a flush per peer).
  virtual void EndBatch(const netcode::Clock&) {}
  virtual void Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>& data, const netcode::Clock& now) = 0;
  // A message too large for a send slab (kControlSendLarge), whose bytes the protocol may keep.
  virtual void SendOwned(uint32_t peer, uint8_t channel, std::vector<uint8_t>&& data, const netcode::Clock& now) {
    Send(peer, channel, data.data(), data.size(), now);
  }
  // True once a stop has finished its work (redundant disconnects sent): the engine closes the socket.
  virtual bool Finished() const = 0;
  // Counters for JavaScript, copied out as doubles.
  virtual size_t CopyCounters(double* out, size_t capacity) const = 0;
  // The engine stopped reading the socket for want of slab space (paused; now: since when) or read again:
  // what the peers sent meanwhile waits in the kernel, so their timeouts wait too.
  virtual void ReadingPaused(bool /*paused*/, const netcode::Clock& /*now*/) {}

  ProtocolOutput output;
  bool socketIsV6 = false;
  // Tests and benchmarks: a simulated network between the outbox and the wire (network_simulator.h).
  std::unique_ptr<NetworkSimulator> simulator;
};

}  // namespace volley
