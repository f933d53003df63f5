// The netcode server and client as protocols of engine sockets: the sans-IO cores of native/netcode,
// with their output turned into datagrams and records for JavaScript.
#pragma once

#include <memory>

#include "netcode/client.h"
#include "netcode/server.h"
#include "socket_protocol.h"

namespace volley {

class NetcodeServerProtocol : public SocketProtocol, private netcode::ServerSink {
 public:
  NetcodeServerProtocol(const netcode::ServerConfig& config, const uint8_t challengeKey[netcode::kKeyBytes]);

  void Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void Update(const netcode::Clock& now) override;
  uint64_t NextDeadlineUs() const override { return core_.NextDeadlineUs(); }
  void Send(uint32_t peer, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>& data, const netcode::Clock& now) override;
  bool Finished() const override { return core_.Stopped(); }
  size_t CopyCounters(double* out, size_t capacity) const override;
  std::shared_ptr<netcode::PeerCounterTable> peerCounters() const { return core_.peerCounterTable(); }

 private:
  void SendPacket(const netcode::ServerAddress& to, const uint8_t* data, size_t size) override;
  void Connected(uint32_t index, uint64_t clientId, const netcode::ServerAddress& from, const uint8_t* userData) override;
  void Disconnected(uint32_t index, netcode::DisconnectReason reason) override;
  void Payload(uint32_t index, const uint8_t* data, size_t size) override;

  netcode::ServerCore core_;
};

class NetcodeClientProtocol : public SocketProtocol, private netcode::ClientSink {
 public:
  explicit NetcodeClientProtocol(const netcode::ClientConfig& config);

  void Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void Update(const netcode::Clock& now) override;
  uint64_t NextDeadlineUs() const override { return core_.NextDeadlineUs(); }
  void Send(uint32_t peer, const uint8_t* data, size_t size, const netcode::Clock& now) override;
  void Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>& data, const netcode::Clock& now) override;
  bool Finished() const override { return stopping_ && !core_.HasPendingDisconnects(); }
  size_t CopyCounters(double* out, size_t capacity) const override;

 private:
  void SendPacket(const netcode::ServerAddress& to, const uint8_t* data, size_t size) override;
  void StateChanged(netcode::ClientState state) override;
  void Payload(const uint8_t* data, size_t size) override;

  netcode::ClientCore core_;
  bool stopping_ = false;
};

}  // namespace volley
