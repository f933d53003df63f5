// The netcode 1.02 server as a state machine (sans-IO): fed datagrams and the time, it answers with
// datagrams to send and connection events. The engine's I/O thread drives it; tests drive it with a
// fake clock. Every check of the standard runs in its order, and nothing is allocated for a request
// before all of them have passed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <sodium.h>

#include "protocol/delivery/ring.h"
#include "util/timer_wheel.h"
#include "protocol/netcode/address_table.h"
#include "protocol/netcode/connect_token.h"
#include "protocol/netcode/constants.h"
#include "protocol/netcode/datagram_out.h"
#include "protocol/netcode/private_keys.h"
#include "protocol/netcode/replay_window.h"
#include "protocol/netcode/server_address.h"
#include "protocol/netcode/timeout_pause.h"
#include "protocol/netcode/wiping_allocator.h"

namespace volley::netcode {

struct Clock {
  uint64_t monotonicUs = 0;  // for timers
  uint64_t unixSeconds = 0;  // for token expiry
};

// A private key replaced before the server started (Server.rotatePrivateKey() before listen()), still in its grace.
struct PreviousPrivateKey {
  uint8_t key[kKeyBytes] = {};
  uint64_t untilUs = 0;  // accepted until then, on the server's monotonic clock
};

struct ServerConfig {
  uint64_t protocolId = 0;
  uint8_t privateKey[kKeyBytes] = {};  // the current one
  // The ones it replaced that are still accepted, newest first (previousKeyCount of them, the rest ignored).
  PreviousPrivateKey previousKeys[kMaxPrivateKeys - 1];
  uint32_t previousKeyCount = 0;
  ServerAddress publicAddress;  // must be listed in a token for the server to accept it
  uint32_t maxClients = kDefaultMaxClients;
  uint64_t keepAliveIntervalUs = kDefaultKeepAliveIntervalUs;
  uint64_t disconnectIntervalUs = kDefaultDisconnectIntervalUs;
  uint32_t disconnectPackets = kDefaultDisconnectPackets;
  // Where the sequences start: the per-client ones of tokens the server has no record of, and the global one
  // (challenge and denied packets), at least 2^63. The engine draws both at random at each start
  // (netcode/sequence_starts.h), so that two processes serving one token (a token's next server address after
  // a failover, another reusePort shard, a restart) do not encrypt under one key and nonce; tests give them.
  uint64_t sequenceBase = 0;
  uint64_t globalSequenceStart = uint64_t{1} << 63;
  // Where the challenge sequence starts: the wall clock in µs at each start in the engine
  // (ChallengeSequenceStart), so that challenges count up across restarts; tests give it.
  uint64_t challengeSequenceStart = 0;
  ~ServerConfig() {
    sodium_memzero(privateKey, kKeyBytes);
    sodium_memzero(previousKeys, sizeof(previousKeys));
  }
};

enum class DisconnectReason : uint8_t { kTimeout = 1, kDisconnected = 2, kServerDisconnect = 3, kServerClosed = 4 };

// A client's last counters as it left its slot (PeerCounters' packetsIn, bytesIn, packetsOut, bytesOut, then its
// drops: malformed, replayed, tooOld, decryptionFailed): a next client may take the slot, and reset them, in
// the same call.
constexpr size_t kFinalCounters = 8;

// What a server's call did (ServerCore::PollEvent), in order.
struct ServerEvent {
  enum class Type : uint8_t {
    kConnected,     // clientId, from, data: the token's user data (kUserDataBytes)
    kPayload,       // data, size: the payload
    kDisconnected,  // reason, finalCounters
    // The layer above the client (SetPeerDeadline gave it a deadline) is to run its timer now; it then
    // gives its next deadline (SetPeerDeadline), with which the server decides on a keep-alive.
    kPeerTimer,
  };
  Type type = Type::kPayload;
  uint32_t client = 0;
  uint64_t clientId = 0;
  ServerAddress from;
  // Valid until the next call that feeds the core (decrypted straight into the core's memory for events).
  const uint8_t* data = nullptr;
  size_t size = 0;
  DisconnectReason reason = DisconnectReason::kTimeout;
  double finalCounters[kFinalCounters] = {};
};

struct ServerCounters {
  uint64_t packetsIn = 0, bytesIn = 0, packetsOut = 0, bytesOut = 0;
  // Drops by cause: nothing dropped is ever answered.
  uint64_t malformed = 0, replayed = 0, decryptionFailed = 0, unknownAddress = 0, tokenRefused = 0;
  uint64_t wrongProtocol = 0;  // requests of another netcode version or protocol id
  uint64_t tokenExpired = 0;   // requests whose token had expired (by the server's clock)
  uint64_t tooOld = 0;  // older than the replay window: delayed or reordered that far, or replayed
  uint64_t denied = 0;  // requests answered with "denied": the server was full
  // Requests ignored unopened: their address was sent a challenge less than kChallengeIntervalUs before.
  uint64_t requestsThrottled = 0;
  // Pending handshakes given up: for a newer request of the same client id from another address, and, the
  // oldest, to make room for a new one when as many were pending as the server holds.
  uint64_t handshakesReplaced = 0, handshakesEvicted = 0;
  // Requests whose token opened under a private key that is no longer the current one (in its grace): once this
  // stops growing after a rotation, no client uses the old key any more.
  uint64_t previousKeyRequests = 0;
};

// A received datagram, as ReceiveBatch takes it.
struct ReceivedDatagram {
  ServerAddress from;
  const uint8_t* data;
  size_t size;
  // Its length on the wire: size, or more for one too large to be a protocol packet, which comes as size 0
  // (malformed) and counts its bytes all the same.
  size_t wireSize;
};

// Per-client counters, written by the server's thread alone and read by JavaScript at any time with no
// native call: doubles (exact to 2^53) in memory JavaScript sees as a Float64Array, kPeerCounterFields per
// client in this order.
struct PeerCounters {
  std::atomic<double> packetsIn{0}, bytesIn{0}, packetsOut{0}, bytesOut{0};
  // Clients the slot has had, this one included: a reader that knows which of them it asks about (JavaScript's
  // Peer, whose tag counts the ones before it) can tell when the counters belong to a later one.
  std::atomic<double> clients{0};
  // Packets from the client's address that its connection refused, by cause (a spoofer of the address
  // counts here too): malformed or of a type a server never takes, replayed, too old, decryption failed.
  // Not connection requests (and empty datagrams): the server handles them before it looks for a connection.
  std::atomic<double> malformed{0}, replayed{0}, tooOld{0}, decryptionFailed{0};
};
constexpr uint32_t kPeerCounterFields = 9;
static_assert(sizeof(PeerCounters) == kPeerCounterFields * sizeof(double) && sizeof(std::atomic<double>) == sizeof(double),
              "peer counters are plain doubles in memory");

struct PeerCounterTable {
  explicit PeerCounterTable(uint32_t count) : entries(new PeerCounters[count]), size(count) {}
  std::unique_ptr<PeerCounters[]> entries;
  uint32_t size;
  // Per-peer doubles of the layer above (the delivery layer's link statistics), linkFields per peer;
  // made by that layer when it is in use.
  std::unique_ptr<std::atomic<double>[]> link;
  uint32_t linkFields = 0;
};

class ServerCore {
 public:
  // challengeKey: random, made at each start, never leaves the server.
  // out: where its datagrams go (it outlives the core).
  ServerCore(const ServerConfig& config, const uint8_t challengeKey[kKeyBytes], DatagramOut* out);
  ~ServerCore();  // wipes every key it holds
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  void Receive(const ServerAddress& from, const uint8_t* data, size_t size, const Clock& now);
  // The same as Receive() for each datagram in order, with their senders hashed and their lines of the table by
  // address asked for first: a gateway's peers spread that table over more than the cache holds, and its
  // misses then overlap rather than come one after the other.
  void ReceiveBatch(const ReceivedDatagram* datagrams, size_t count, const Clock& now);
  // Timers: keep-alives, timeouts, redundant disconnects, expiry of encryption mappings. Only the clients
  // whose timer is due are visited.
  void Update(const Clock& now);
  // When Update() next has work to do (monotonic µs; it may be called earlier or later), kNoDeadline if never.
  uint64_t NextDeadlineUs() const;
  static constexpr uint64_t kNoDeadline = TimerWheel::kNever;
  // False when the client index is not connected or the payload is not 1..1200 bytes.
  bool SendPayload(uint32_t clientIndex, const uint8_t* data, size_t size, const Clock& now);
  void Disconnect(uint32_t clientIndex, const Clock& now);
  // The next thing a call did, in order; false when none is left (their memory is reused then). Polled after
  // each call.
  bool PollEvent(ServerEvent* event);
  // The layer above a connected client (delivery) has work for it by dueUs (kNoDeadline: none): its timer is
  // brought forward if need be, and a kPeerTimer event it answers finishes with it.
  void SetPeerDeadline(uint32_t clientIndex, uint64_t dueUs, const Clock& now);
  // STOPPING: every client is disconnected (reason server-closed); the redundant disconnect packets go
  // out through Update() until Stopped() is true.
  void Stop(const Clock& now);
  bool Stopped() const { return stopping_ && farewells_.empty(); }
  // The engine stopped reading its socket (JavaScript holds every receive slab; `now`: since when) and then
  // resumed: what the clients sent meanwhile waits in the kernel, unseen, so no client times out while
  // reading is paused, and each is given the pause's length on resume.
  void PauseTimeouts(const Clock& now);
  void ResumeTimeouts(const Clock& now);
  // Tokens are opened under `key` from now on, first; the key it replaces is accepted graceUs more (0: no
  // longer), and earlier ones until their own grace ends (PrivateKeys says the rest).
  void RotatePrivateKey(const uint8_t key[kKeyBytes], uint64_t graceUs, const Clock& now);
  // The private keys whose tokens are accepted: the current one and those in their grace (wiped once it ends:
  // at the next request or Update()).
  size_t privateKeyCount() const { return privateKeys_.count(); }

  uint32_t connectedClients() const { return connected_; }
  size_t pendingHandshakes() const { return liveMappings_.size(); }
  // At most one challenge per pending handshake this often: a client resends its request at 10 Hz, and a
  // peer that resends faster is answered no faster (each challenge costs a token's sealing and a packet).
  static constexpr uint64_t kChallengeIntervalUs = 100000;
  const ServerCounters& counters() const { return counters_; }
  // Shared with whoever reads the counters from another thread; it outlives the server if need be.
  std::shared_ptr<PeerCounterTable> peerCounterTable() const { return peerCounters_; }
  // The same table, for the server's own thread: no reference count taken (per packet, it would be).
  PeerCounterTable& peerCounters() const { return *peerCounters_; }
  bool clientAddress(uint32_t clientIndex, ServerAddress* out) const;
  uint64_t nextGlobalSequence() const { return globalSequence_; }

 private:
  // The MAC of a private connect token: it names the token in the history of tokens used.
  struct TokenMac {
    uint8_t bytes[kMacBytes] = {};
    bool operator==(const TokenMac& other) const { return std::memcmp(bytes, other.bytes, kMacBytes) == 0; }
  };

  struct Slot {
    bool connected = false;
    bool confirmed = false;
    bool awaitingAbove = false;  // a kPeerTimer event is out: its keep-alive decision waits for SetPeerDeadline
    uint64_t aboveDueUs = kNoDeadline;  // the layer above's deadline (SetPeerDeadline)
    ServerAddress address;
    uint64_t clientId = 0;
    uint64_t sequence = 0;  // per-client send sequence: from config_.sequenceBase, or where the token's last connection ended
    TokenMac token;         // its connect token: where its last sequence is carried forward at the end
    int32_t timeoutSeconds = 0;
    uint64_t lastSendUs = 0;
    uint64_t lastReceiveUs = 0;
    uint8_t sendKey[kKeyBytes] = {};
    uint8_t receiveKey[kKeyBytes] = {};
    ReplayWindow replay;
  };

  // Keys for an address that has sent a valid request but is not connected yet.
  struct EncryptionMapping {
    bool used = false;
    AddressKey address;
    uint8_t sendKey[kKeyBytes] = {};
    uint8_t receiveKey[kKeyBytes] = {};
    int32_t timeoutSeconds = 0;
    uint64_t expireUnixSeconds = 0;  // the token's expiry: the bound of a handshake with no timeout
    // The latest request: a handshake lives the token's timeout from it (as in the reference), however
    // long the client has been resending.
    uint64_t requestedUs = 0;
    TokenMac token;
    uint64_t clientId = 0;  // the token's: a response must carry a challenge token for the same client
    // The first challenge sent for this handshake (this address and token): a response must carry it or a
    // later one, so that an earlier handshake's response, replayed, completes none.
    uint64_t firstChallenge = 0;
    uint64_t lastChallengeUs = 0;  // when the last challenge went (kChallengeIntervalUs)
    uint32_t livePosition = 0;  // in liveMappings_
    // The pending handshakes in the order they were made (indices in mappings_): the oldest is evicted first.
    uint32_t older = kNoMapping, newer = kNoMapping;
  };
  static constexpr uint32_t kNoMapping = UINT32_MAX;

  struct TokenUse {
    TokenMac mac;
    AddressKey address;  // the address that first used the token
    // Where a later connection with this token starts its send sequence: past every packet an earlier one
    // sent under the token's server-to-client key (its disconnects included), so that no nonce is used
    // twice with that key when a client connects again with the same token.
    uint64_t nextSequence = 0;
    // Where a later connection with this token starts receiving, if its client goes on with its sequence
    // (as this library's does): past every packet an earlier one took, so that those, captured and
    // replayed, are refused. A client that starts again at 0, as STANDARD.md has it, gets a window of its
    // own (ProcessResponse): refusing its packets would connect it and then drop all it sends.
    uint64_t receivedEnd = 0;
  };

  // Disconnect packets still owed to an address whose slot is already free. They stop when the address
  // is released again or sends a valid connection request (its client has left: were they sent on, one
  // would end the new connection of a client that connects again with the same token).
  struct Farewell {
    ServerAddress address;
    uint8_t sendKey[kKeyBytes];
    uint64_t sequence;
    uint32_t remaining;
    uint64_t nextUs;
    uint32_t releaseSerial;  // its entry in recentlyReleased_ while they are owed
  };

  // A datagram's sender as the address tables take it: its key, and the one hash the three give it.
  struct Sender {
    AddressKey key;
    uint64_t hash;
  };
  void Receive(const ServerAddress& from, const Sender& sender, const uint8_t* data, size_t size, size_t wireSize, const Clock& now);
  static constexpr size_t kLookahead = 32;  // datagrams whose table lines are asked for at once
  Sender lookahead_[kLookahead];
  void ProcessRequest(const ServerAddress& from, const Sender& sender, const uint8_t* data, size_t size, const Clock& now);
  void ProcessResponse(const ServerAddress& from, const Sender& sender, const uint8_t* data, size_t size, const Clock& now);
  void ProcessConnected(uint32_t index, const uint8_t* data, size_t size, const Clock& now);
  void SendToSlot(uint32_t index, PacketType type, const uint8_t* body, size_t size, const Clock& now);
  void SendWithGlobalSequence(const ServerAddress& to, const uint8_t sendKey[kKeyBytes], PacketType type,
                              const uint8_t* body, size_t size);
  void SendKeepAlive(uint32_t index, const Clock& now);
  void Release(uint32_t index, DisconnectReason reason, bool farewell, const Clock& now);
  void SendFarewells(const Clock& now);
  void SendFarewell(Farewell& entry, const Clock& now);  // one packet; queued again while some are left
  // A client's timer: its timeout, or a keep-alive when nothing was sent for the keep-alive interval, after
  // the layer above's timer (a kPeerTimer event, and FinishSlotTimer once it answers).
  void SlotTimer(uint32_t index, const Clock& now);
  void FinishSlotTimer(uint32_t index, const Clock& now);
  // kPeerTimer events left unanswered by the last call's events: finished with the deadlines held.
  void FinishAwaiting(const Clock& now);
  void Answered(Slot& slot);  // its kPeerTimer event is answered (or moot)
  std::vector<uint32_t> awaiting_;  // slots whose kPeerTimer event is out (some may have been answered since)
  uint32_t awaitingCount_ = 0;      // those not yet answered
  // Events, and the bytes they carry (offsets into eventBytes_, which may grow while they are queued).
  struct QueuedEvent {
    ServerEvent event;
    size_t offset = 0;
  };
  std::vector<QueuedEvent> events_;
  size_t nextEvent_ = 0;
  std::vector<uint8_t> eventBytes_;
  size_t eventBytesUsed_ = 0;
  // Room for `size` more event bytes at the end of those used (not yet taken: TakeEventBytes takes them).
  uint8_t* EventBytes(size_t size);
  ServerEvent& QueueEvent(ServerEvent::Type type, uint32_t client, size_t bytes);
  void ScheduleSlot(uint32_t index);
  // Expiry of encryption mappings and of the recently released addresses.
  void Housekeeping(const Clock& now);
  void Emit(const ServerAddress& to, const uint8_t* data, size_t size);
  void CountDrop(DropReason reason);
  void CountPeerDrop(uint32_t index, DropReason reason);  // and CountDrop: a connected client's refused packet
  bool TimedOut(int32_t timeoutSeconds, uint64_t sinceUs, const Clock& now) const;

  ServerConfig config_;  // its keys wiped once privateKeys_ holds them
  PrivateKeys privateKeys_;
  uint8_t challengeKey_[kKeyBytes];
  DatagramOut* out_;
  std::vector<Slot> slots_;
  uint32_t connected_ = 0;
  TimeoutPause timeoutPause_;
  std::vector<uint32_t> freeSlots_;      // a stack: O(1) to take and to give back
  TimerWheel slotTimers_;                // one timer per connected slot
  uint64_t nextHousekeepingUs_ = 0;
  // One hash key for the tables by address (slotByAddress_, mappingByAddress_, recentlyReleased_): a datagram's
  // sender is hashed once for all of them.
  TableHashKey addressHashKey_;
  AddressTable slotByAddress_;  // every datagram looks its sender up here
  // The same for the tables by client id (slotByClientId_, mappingByClientId_).
  TableHashKey clientIdHashKey_;
  FlatTable<uint64_t> slotByClientId_;
  // Pending handshakes: flat tables with their entries in vectors, so that a handshake allocates nothing
  // once the server has seen as many at a time before (a node-based map allocated and freed one per
  // handshake, and its hashing was a few per cent of a handshake's cost).
  EncryptionMapping* FindMapping(const Sender& sender);
  // Pending handshakes and remembered tokens scale with maxClients (4× and 8×), never below the
  // reference's fixed sizes: a small server still remembers enough tokens that a captured request cannot
  // soon be replayed from another address.
  static constexpr size_t kMinPendingHandshakes = 1024;
  static constexpr size_t kMinTokenHistory = 2048;
  // A new pending handshake for the sender; when maxMappings_ are held, the oldest makes room.
  EncryptionMapping& AddMapping(const Sender& sender);
  // clientIdHash: its client id's hash, where the caller has it (else computed).
  void RemoveMapping(EncryptionMapping& entry);
  void RemoveMapping(EncryptionMapping& entry, uint64_t clientIdHash);
  bool MappingExpired(const EncryptionMapping& entry, const Clock& now) const;
  FlatTable<AddressKey> mappingByAddress_;  // -> index in mappings_
  // At most one pending handshake per client id (-> index in mappings_): the newest request wins, so that one
  // account's tokens cannot fill the table, and a client that tries again from another address (a new NAT
  // binding, a restart) is not held off by its own stale handshake.
  FlatTable<uint64_t> mappingByClientId_;
  uint32_t oldestMapping_ = kNoMapping, newestMapping_ = kNoMapping;
  std::vector<EncryptionMapping, WipingAllocator<EncryptionMapping>> mappings_;  // keys: no copy left when it grows
  std::vector<uint32_t> freeMappings_;
  // The mappings in use, so that the housekeeping visits those only (not every entry a past burst of
  // handshakes left in mappings_).
  std::vector<uint32_t> liveMappings_;
  size_t maxMappings_;
  // Token history: each private token seen, with the address that first used it; the oldest goes first
  // once maxTokenHistory_ are held.
  void RememberToken(const TokenMac& mac, uint64_t macHash, const AddressKey& address);
  // Where a connection with this token starts: its send sequence, and its receive window. A token the history
  // does not hold starts sending past every forgotten token's packets, and receiving at 0 (a new token cannot
  // be told from a forgotten one, and a new client starts anywhere).
  struct Resumption {
    uint64_t nextSequence;
    uint64_t receivedEnd;
  };
  Resumption Resume(const TokenMac& mac, uint64_t macHash) const;
  // Where the next connection with this token will start.
  void CarryForward(const TokenMac& mac, uint64_t nextSequence, uint64_t receivedEnd);
  // At least the nextSequence of every token the history forgot (its oldest go once it is full): a
  // forgotten token used again starts past what it sent before, as does every new one after the first
  // such (a token cannot be told from a forgotten one).
  uint64_t forgottenSequenceFloor_ = 0;
  FlatTable<TokenMac> tokenHistory_;  // -> index in tokenUses_
  std::vector<TokenUse> tokenUses_;   // in arrival order, then a ring
  size_t oldestTokenUse_ = 0;
  size_t maxTokenHistory_;
  // In the order they are due: every entry waits the same interval after its last packet.
  // A ring: std::deque allocated a block for every few packets as the queue turned over.
  delivery::Ring<Farewell, WipingAllocator<Farewell>> farewells_;
  // Addresses of clients that just left, until their redundant disconnect packets have stopped coming:
  // those are expected, not drops; an address that sends a valid request is no longer among them. The
  // table holds the serial of each address's latest release; the queue is in the order of expiry (each is
  // kept for the same time), and an entry whose address was released again since (another serial) leaves
  // the table to the later one.
  struct Released {
    uint64_t untilUs;
    AddressKey address;
    uint32_t serial;
  };
  FlatTable<AddressKey> recentlyReleased_;  // -> serial
  delivery::Ring<Released> releaseOrder_;
  uint32_t releaseSerial_ = 0;
  uint64_t challengeSequence_ = 0;
  // Packets sent before a slot exists (challenge, denied) use this sequence under the client's key: it
  // starts at or above 2^63 (config_.globalSequenceStart) so it never meets the per-client sequences, which
  // start below 2^48 (IMPLEMENTERS.md: at 2^63, and per client at 0).
  uint64_t globalSequence_ = uint64_t{1} << 63;
  bool stopping_ = false;
  ServerCounters counters_;
  std::shared_ptr<PeerCounterTable> peerCounters_;
  uint8_t packetBuffer_[kMaxPacketBytes];
  uint8_t bodyBuffer_[kMaxPayloadBytes];  // handshake bodies (payloads go straight into eventBytes_)
};

}  // namespace volley::netcode
