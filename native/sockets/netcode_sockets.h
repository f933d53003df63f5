// The netcode server and client as protocols of engine sockets: the sans-IO cores of native/protocol/netcode,
// with their output turned into datagrams and records for JavaScript. With channels configured, each
// connection also runs the delivery layer (native/protocol/delivery/) inside its payload packets.
#pragma once

#include <memory>
#include <vector>

#include "protocol/delivery/delivery.h"
#include "protocol/delivery/delivery_clock.h"
#include "protocol/netcode/client.h"
#include "protocol/netcode/server.h"
#include "protocol/netcode/timeout_pause.h"
#include "sockets/socket_protocol.h"

namespace volley {

// The counters a server's disconnect record begins with (src/api/peer-records.ts reads them): PeerCounters'
// packetsIn, bytesIn, packetsOut, bytesOut, then its drops: malformed, replayed, tooOld, decryptionFailed.
constexpr size_t kFinalReadingsCounters = 8;

// Where CopyCounters puts each counter (JavaScript's readProtocolStats; src/engine/native-layout.ts names them):
// the first eight and kCounterTooOld in both protocols, then each one's own.
enum ProtocolCounter : uint32_t {
  kCounterPacketsIn = 0,
  kCounterBytesIn,
  kCounterPacketsOut,
  kCounterBytesOut,
  kCounterMalformed,
  kCounterReplayed,
  kCounterDecryptionFailed,
  kCounterUnknownAddress,
  kServerTokenRefused = 8,
  kServerDenied,
  kServerConnectedClients,
  kServerSendDropped,
  kServerRequestsThrottled,
  kServerWrongProtocol,
  kServerTokenExpired,
  kCounterTooOld = 15,
  kServerPendingHandshakes = 16,
  kServerHandshakesReplaced,
  kServerHandshakesEvicted,
  kServerReassemblyBudget,
  kServerReassemblyUsed,
  kServerReassemblyEvictions,
  kServerReassemblyRefusals,
  kServerPreviousKeyRequests,
  kServerCounterCount,
  kClientIndex = 8,  // the client's slot on its server
  kClientMaxClients,
  kClientSendDropped,
  kClientCounterCount = kCounterTooOld + 1,
};

struct DeliveryOptions {
  bool enabled = false;  // false: payloads are raw netcode payloads (any netcode 1.02 peer understands them)
  delivery::DeliveryConfig config;
  // A server's: the reassembly memory its connections share (delivery/reassembly_budget.h); 0: none.
  uint64_t reassemblyBudgetBytes = 0;
  uint64_t queueLimitBytes = 0;  // JavaScript's per-connection send limit: a drain record at half of it
  DeliveryClock clock;           // the time the delivery layer reads (set off only by the network simulator)
};

// One connection's delivery core, and what its netcode connection keeps about it.
class DeliveryLink {
 public:
  // Each connection skips packet numbers by a key of its own (delivery::kPacketSkipKeyBytes).
  DeliveryLink(uint32_t peer, const delivery::DeliveryConfig& config, delivery::ReassemblyBudget* budget = nullptr)
      : peer_(peer), core(config, RandomPacketSkipKey().data(), budget, peer) {}
  static std::array<uint8_t, delivery::kPacketSkipKeyBytes> RandomPacketSkipKey();
  // Hands the messages the last Receive delivered to `output`, after the peer's settings (the first message
  // comes in the packet that brings them).
  void ReportMessages(ProtocolOutput& output);
  // A send was refused: a drain record once the queue has room for it. data: the refused message's charge
  // (u32, little-endian; its bytes and its record's overhead), the largest since the last drain counting.
  void WatchRoom(const std::vector<uint8_t>& data);
  // The drain and flushed records JavaScript waits for, once their moment has come (queueLimitBytes: its
  // send limit; a drain at half of it, or lower: room for what was refused).
  void ReportQueue(ProtocolOutput& output, uint64_t queueLimitBytes);
  // The settings record once the peer's settings are known; true when the two sides' channels do not work
  // together (delivery::Mismatch).
  bool ReportSettings(ProtocolOutput& output);
  // Whether the peer's settings are still to come: neither known nor found wanting.
  bool AwaitsSettings() const { return !core.peerSettings().known && core.mismatch() == delivery::Mismatch::kNone; }
  // Their wait is over (nowUs on the core's clock): the connection ends as for a mismatch.
  bool SettingsLate(uint64_t nowUs) const { return WaitsForSettings() && nowUs >= settingsDeadlineUs; }
  // Marks the connection as ending for its delivery layer, with the disconnect record's code that says why
  // (socket_protocol.h: kDisconnectChannelsMismatch, kDisconnectSettingsLate, kDisconnectReassemblyStalled);
  // true the first time.
  bool BeginEnding(uint8_t code) {
    if (ending != 0) return false;
    ending = code;
    return true;
  }
  // The engine stopped reading (SocketProtocol::ReadingPaused; nowUs on the core's clock, from when the
  // pause began) or read again. The wait for the peer's settings stops meanwhile and ends the pause's length
  // later; what was sent before the end of the pause gives no RTT sample.
  void ReadingPaused(bool paused, uint64_t nowUs) {
    if (paused) {
      settingsPause_.Pause(nowUs);
      return;
    }
    core.DiscardRttSamplesBefore(nowUs);
    const uint64_t pausedUs = settingsPause_.Resume(nowUs);
    if (settingsDeadlineUs != UINT64_MAX) settingsDeadlineUs += pausedUs;
  }
  // The core's next deadline, or the end of the wait for the peer's settings.
  uint64_t NextDeadlineUs(uint64_t nowUs) const {
    const uint64_t next = core.NextDeadlineUs(nowUs);
    return WaitsForSettings() && settingsDeadlineUs < next ? settingsDeadlineUs : next;
  }

 private:
  // The wait for the peer's settings is running: not over, and not stopped by a pause.
  bool WaitsForSettings() const { return ending == 0 && AwaitsSettings() && !settingsPause_.paused(); }

  uint32_t peer_;
  netcode::TimeoutPause settingsPause_;

 public:
  delivery::DeliveryCore core;
  bool dirty = false;    // sent to or received from since the last flush
  bool watched = false;  // JavaScript waits for room in the queue
  uint64_t watchedCharge = 0;  // for a message of this charge (WatchRoom)
  bool flushWatched = false;  // JavaScript waits for the queue to empty: all sent, the reliable acknowledged
  bool settingsReported = false;  // the peer's settings went to JavaScript
  // 0, or why the connection ends for its delivery layer (BeginEnding): a mismatch of channels
  // (delivery::Mismatch), the peer's settings not come by settingsDeadlineUs, or the core stalled.
  uint8_t ending = 0;
  // A peer with channels sends its settings first thing and in every packet until it has a pong; one without
  // never does. Set as the connection opens: kSettingsWait from then (core clock, µs).
  uint64_t settingsDeadlineUs = UINT64_MAX;
};

// Where a socket protocol's connection core sends its datagrams: the protocol's outbox.
class OutboxWriter : public netcode::DatagramOut {
 public:
  explicit OutboxWriter(SocketProtocol* protocol) : protocol_(protocol) {}
  void Send(const netcode::ServerAddress& to, const uint8_t* data, size_t size) override {
    protocol_->output.Send(to, data, size, protocol_->socketIsV6);
  }

 private:
  SocketProtocol* protocol_;
};

class NetcodeServerProtocol : public SocketProtocol {
 public:
  NetcodeServerProtocol(const netcode::ServerConfig& config, const uint8_t challengeKey[netcode::kKeyBytes],
                        const DeliveryOptions& delivery);

  void Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void ReceiveBatch(const netcode::ReceivedDatagram* datagrams, size_t count, const netcode::Clock& now) override;
  void Update(const netcode::Clock& now) override;
  uint64_t NextDeadlineUs() const override { return core_.NextDeadlineUs(); }
  void Send(uint32_t peer, uint8_t channel, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void SendOwned(uint32_t peer, uint8_t channel, std::vector<uint8_t>&& data, const netcode::Clock& now) override;
  void EndBatch(const netcode::Clock& now) override;
  void Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>& data, const netcode::Clock& now) override;
  bool Finished() const override { return core_.Stopped(); }
  size_t CopyCounters(double* out, size_t capacity) const override;
  void ReadingPaused(bool paused, const netcode::Clock& now) override;
  std::shared_ptr<netcode::PeerCounterTable> peerCounters() const { return core_.peerCounterTable(); }

 private:
  // What the connection core's last call did (ServerCore::PollEvent), handled in order.
  void HandleEvents();
  void Connected(const netcode::ServerEvent& event);
  void Disconnected(const netcode::ServerEvent& event);
  void Payload(uint32_t index, const uint8_t* data, size_t size);
  void PeerTimer(uint32_t index);

  // Sends the packets the delivery core of `peer` has due.
  void SendDue(uint32_t peer);
  // Marks a peer whose delivery core stalled as ending (EndMismatched disconnects it): its own, or one the
  // reassembly budget evicted during another's receive.
  void EndStalled(uint32_t peer);
  // After the delivery core of `peer` did something: its link statistics, drain and flushed records, its timer.
  void AfterDelivery(uint32_t peer);
  // Disconnects the peers whose channels do not work with this server's, or whose reassembly stalled (once the
  // events that found them are handled).
  void EndMismatched(const netcode::Clock& now);
  void MarkDirty(uint32_t peer);
  // The slot JavaScript's name for a peer (kPeerSlotBits) stands for, if that client still has it.
  bool Current(uint32_t peer, uint32_t* slot) const;
  uint64_t LocalUs(const netcode::Clock& now) const { return delivery_.clock.Local(now.monotonicUs); }

  OutboxWriter outbox_{this};
  netcode::ServerCore core_;
  DeliveryOptions delivery_;
  // Shared by the links' cores: made before them and gone after them.
  std::unique_ptr<delivery::ReassemblyBudget> budget_;
  std::vector<std::unique_ptr<DeliveryLink>> links_;  // by client index, while connected (delivery on)
  std::vector<uint32_t> dirty_;
  std::vector<uint32_t> mismatched_;
  netcode::Clock now_;
};

class NetcodeClientProtocol : public SocketProtocol {
 public:
  NetcodeClientProtocol(const netcode::ClientConfig& config, const DeliveryOptions& delivery);

  void Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void Update(const netcode::Clock& now) override;
  uint64_t NextDeadlineUs() const override;
  void Send(uint32_t peer, uint8_t channel, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void SendOwned(uint32_t peer, uint8_t channel, std::vector<uint8_t>&& data, const netcode::Clock& now) override;
  void EndBatch(const netcode::Clock& now) override;
  void Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>& data, const netcode::Clock& now) override;
  bool Finished() const override { return stopping_ && !core_.HasPendingDisconnects(); }
  size_t CopyCounters(double* out, size_t capacity) const override;
  void ReadingPaused(bool paused, const netcode::Clock& now) override;
  // One row (peer 0): the link statistics of the connection, when delivery is on.
  std::shared_ptr<netcode::PeerCounterTable> peerCounters() const { return table_; }

 private:
  // What the connection core's last call did (ClientCore::PollEvent), handled in order.
  void HandleEvents();
  void StateChanged(const netcode::ClientEvent& event);
  void Payload(const uint8_t* data, size_t size);
  void SendDue();  // the packets the delivery core has due
  // Link statistics, drain and flushed records; a mismatch of channels ends the connection (link_ is gone
  // after it).
  void AfterDelivery();
  uint64_t LocalUs(const netcode::Clock& now) const { return delivery_.clock.Local(now.monotonicUs); }

  OutboxWriter outbox_{this};
  netcode::ClientCore core_;
  DeliveryOptions delivery_;
  std::unique_ptr<DeliveryLink> link_;  // while connected (delivery on)
  std::shared_ptr<netcode::PeerCounterTable> table_;
  netcode::Clock now_;
  // The connect() this is (JavaScript numbers them): state records carry it, so that the end of an
  // attempt JavaScript gave up on is not taken for the outcome of the next one.
  uint32_t attempt_ = 0;
  bool stopping_ = false;
};

}  // namespace volley
