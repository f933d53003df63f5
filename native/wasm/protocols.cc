// The WebAssembly build's exports: the engine's socket protocols (sockets/netcode_sockets.h: the netcode server
// and client, with the delivery layer on their connections) for the fallback engine, which does the I/O on
// node:dgram (src/engine/fallback/). Plain C functions over numbers and pointers into this module's memory:
// JavaScript writes a request or a datagram there, calls, and reads the datagrams to send and the records
// (sockets/socket_protocol.h) where these say they are. Nothing here throws: a refused request returns null and
// says why (vp_error).
#include <emscripten/emscripten.h>
#include <malloc.h>
#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "sockets/protocol_request.h"
#include "sockets/socket_protocol.h"

namespace volley {
namespace {

netcode::Clock ClockAt(double nowUs) {
  netcode::Clock clock;
  clock.monotonicUs = nowUs > 0 ? static_cast<uint64_t>(nowUs) : 0;
  clock.unixSeconds = static_cast<uint64_t>(time(nullptr));
  return clock;
}

// UINT64_MAX (never) as Infinity.
double Deadline(uint64_t us) { return us == UINT64_MAX ? INFINITY : static_cast<double>(us); }

ProtocolRequestError gError;

}  // namespace

// A protocol socket: its protocol and the received datagrams of the batch under way.
struct WasmSocket {
  MadeProtocol made;
  std::vector<netcode::ReceivedDatagram> batch;
};

}  // namespace volley

using volley::ProtocolRequest;
using volley::WasmSocket;

extern "C" {

#ifndef VOLLEY_SOURCE_HASH
#define VOLLEY_SOURCE_HASH "unknown"
#endif

EMSCRIPTEN_KEEPALIVE int vp_init() { return sodium_init() < 0 ? -1 : 0; }
// Bytes of this module's memory in use (its allocator's count), and the memory's size.
EMSCRIPTEN_KEEPALIVE double vp_heap_used() { return static_cast<double>(mallinfo().uordblks); }
// The hash of the sources it was built from (scripts/source-hash.mjs --wasm): a stale module is found out.
EMSCRIPTEN_KEEPALIVE const char* vp_source_hash() { return VOLLEY_SOURCE_HASH; }

// Where JavaScript finds things in this module's memory (sockets/socket_protocol.h's ProtocolOutput::Datagram).
EMSCRIPTEN_KEEPALIVE uint32_t vp_layout(uint32_t what) {
  using Datagram = volley::ProtocolOutput::Datagram;
  switch (what) {
    case 0: return sizeof(Datagram);
    case 1: return offsetof(Datagram, name);
    case 2: return offsetof(Datagram, size);
    case 3: return offsetof(Datagram, data);
    case 4: return AF_INET;
    case 5: return AF_INET6;
    case 6: return sizeof(volley::netcode::PeerCounters) / sizeof(double);
    default: return 0;
  }
}

// The request's numeric fields by their JavaScript names (sockets/protocol_request.h).
EMSCRIPTEN_KEEPALIVE uint32_t vp_request_field_count() { return volley::kRequestNumberFieldCount; }
EMSCRIPTEN_KEEPALIVE const char* vp_request_field_name(uint32_t i) {
  return i < volley::kRequestNumberFieldCount ? volley::kRequestNumberFields[i].name : nullptr;
}

EMSCRIPTEN_KEEPALIVE ProtocolRequest* vp_request_new(int server) {
  auto* request = new ProtocolRequest();
  request->server = server != 0;
  return request;
}
EMSCRIPTEN_KEEPALIVE void vp_request_free(ProtocolRequest* request) { delete request; }
EMSCRIPTEN_KEEPALIVE void vp_request_number(ProtocolRequest* request, uint32_t field, double value) {
  if (field < volley::kRequestNumberFieldCount) request->*volley::kRequestNumberFields[field].member = value;
}
EMSCRIPTEN_KEEPALIVE void vp_request_protocol_id(ProtocolRequest* request, uint32_t low, uint32_t high) {
  request->hasProtocolId = true;
  request->protocolId = uint64_t{high} << 32 | low;
}
// The 32 bytes JavaScript wrote at `key` (wiped there by it).
EMSCRIPTEN_KEEPALIVE void vp_request_private_key(ProtocolRequest* request, const uint8_t* key) {
  request->hasPrivateKey = true;
  std::memcpy(request->privateKey, key, volley::netcode::kKeyBytes);
}
EMSCRIPTEN_KEEPALIVE void vp_request_previous_key(ProtocolRequest* request, const uint8_t* key, double untilUs) {
  if (request->previousKeyCount >= volley::netcode::kMaxPrivateKeys - 1 || !(untilUs >= 0)) return;
  volley::netcode::PreviousPrivateKey& into = request->previousKeys[request->previousKeyCount++];
  std::memcpy(into.key, key, volley::netcode::kKeyBytes);
  into.untilUs = static_cast<uint64_t>(untilUs);
}
EMSCRIPTEN_KEEPALIVE void vp_request_public_address(ProtocolRequest* request, const char* text) { request->publicAddress = text; }
// A channel by its name; 0 for a name that is none.
EMSCRIPTEN_KEEPALIVE int vp_request_channel(ProtocolRequest* request, const char* mode) {
  request->hasChannels = true;
  volley::delivery::ChannelMode parsed;
  if (!volley::ParseChannelMode(mode, &parsed)) return 0;
  if (request->channels.size() <= 255) request->channels.push_back(parsed);  // past 255: refused by vp_make
  return 1;
}
EMSCRIPTEN_KEEPALIVE void vp_request_clock_skew(ProtocolRequest* request, double offsetUs, double driftPpm) {
  request->skewedClock = true;
  request->clockOffsetUs = offsetUs;
  request->clockDriftPpm = driftPpm;
}

// The protocol the request asks for, or null: vp_error() says why, vp_error_kind() 1 (a TypeError) or 2 (a RangeError).
EMSCRIPTEN_KEEPALIVE WasmSocket* vp_make(const ProtocolRequest* request, uint32_t boundPort, int socketIsV6, double nowUs) {
  volley::MadeProtocol made = volley::MakeSocketProtocol(*request, static_cast<uint16_t>(boundPort), volley::ClockAt(nowUs).monotonicUs, &volley::gError);
  if (!made.protocol) return nullptr;
  made.protocol->socketIsV6 = socketIsV6 != 0;
  auto* socket = new WasmSocket();
  socket->made = std::move(made);
  return socket;
}
EMSCRIPTEN_KEEPALIVE const char* vp_error() { return volley::gError.message.c_str(); }
EMSCRIPTEN_KEEPALIVE int vp_error_kind() { return static_cast<int>(volley::gError.kind); }
// The socket closed: the protocol goes, and with it every key it held (wiped). Its peers' counters stay
// until vp_release(), for the views JavaScript may still hold on them.
EMSCRIPTEN_KEEPALIVE void vp_close(WasmSocket* socket) { socket->made.protocol.reset(); }
EMSCRIPTEN_KEEPALIVE void vp_release(WasmSocket* socket) { delete socket; }

// A received datagram, into the batch vp_receive_end() hands over: `data` stays where it is until then.
// family 4 or 6; ip: its 16 bytes (IPv4 in the first 4). size 0 and wireSize: one too large to be a packet.
EMSCRIPTEN_KEEPALIVE void vp_receive(WasmSocket* socket, uint32_t family, const uint8_t* ip, uint32_t scopeId, uint32_t port,
                                     const uint8_t* data, uint32_t size, uint32_t wireSize) {
  volley::netcode::ReceivedDatagram datagram;
  datagram.from.ip.family = static_cast<uint8_t>(family);
  std::memcpy(datagram.from.ip.bytes, ip, 16);
  datagram.from.ip.scopeId = scopeId;
  datagram.from.port = static_cast<uint16_t>(port);
  datagram.data = data;
  datagram.size = size;
  datagram.wireSize = wireSize;
  socket->batch.push_back(datagram);
}
EMSCRIPTEN_KEEPALIVE void vp_receive_end(WasmSocket* socket, double nowUs) {
  if (socket->batch.empty()) return;
  socket->made.protocol->ReceiveBatch(socket->batch.data(), socket->batch.size(), volley::ClockAt(nowUs));
  socket->batch.clear();
}
EMSCRIPTEN_KEEPALIVE void vp_update(WasmSocket* socket, double nowUs) { socket->made.protocol->Update(volley::ClockAt(nowUs)); }
EMSCRIPTEN_KEEPALIVE double vp_next_deadline(WasmSocket* socket) { return volley::Deadline(socket->made.protocol->NextDeadlineUs()); }
EMSCRIPTEN_KEEPALIVE void vp_send(WasmSocket* socket, uint32_t peer, uint32_t channel, const uint8_t* data, uint32_t size, double nowUs) {
  socket->made.protocol->Send(peer, static_cast<uint8_t>(channel), data, size, volley::ClockAt(nowUs));
}
EMSCRIPTEN_KEEPALIVE void vp_end_batch(WasmSocket* socket, double nowUs) { socket->made.protocol->EndBatch(volley::ClockAt(nowUs)); }
EMSCRIPTEN_KEEPALIVE void vp_control(WasmSocket* socket, uint32_t op, uint32_t arg, const uint8_t* data, uint32_t size, double nowUs) {
  const std::vector<uint8_t> bytes(data, data + size);
  socket->made.protocol->Control(op, arg, bytes, volley::ClockAt(nowUs));
}
EMSCRIPTEN_KEEPALIVE void vp_reading_paused(WasmSocket* socket, int paused, double nowUs) {
  socket->made.protocol->ReadingPaused(paused != 0, volley::ClockAt(nowUs));
}
EMSCRIPTEN_KEEPALIVE int vp_finished(WasmSocket* socket) { return socket->made.protocol->Finished() ? 1 : 0; }
EMSCRIPTEN_KEEPALIVE uint32_t vp_copy_counters(WasmSocket* socket, double* out, uint32_t capacity) {
  return static_cast<uint32_t>(socket->made.protocol->CopyCounters(out, capacity));
}

// The per-peer counters and link statistics (doubles, written in place as the protocol runs): where they are
// and how many peers they cover. Null where there are none.
EMSCRIPTEN_KEEPALIVE const void* vp_peer_counters(WasmSocket* socket) {
  return socket->made.peerCounters ? socket->made.peerCounters->entries.get() : nullptr;
}
EMSCRIPTEN_KEEPALIVE uint32_t vp_peer_count(WasmSocket* socket) { return socket->made.peerCounters ? socket->made.peerCounters->size : 0; }
EMSCRIPTEN_KEEPALIVE const void* vp_links(WasmSocket* socket) {
  return socket->made.peerCounters ? socket->made.peerCounters->link.get() : nullptr;
}

// The datagrams to send (ProtocolOutput::Datagram each, vp_layout(0) apart), until vp_outbox_clear().
EMSCRIPTEN_KEEPALIVE const void* vp_outbox(WasmSocket* socket) { return socket->made.protocol->output.outbox.data(); }
EMSCRIPTEN_KEEPALIVE uint32_t vp_outbox_count(WasmSocket* socket) { return static_cast<uint32_t>(socket->made.protocol->output.outboxCount); }
EMSCRIPTEN_KEEPALIVE void vp_outbox_clear(WasmSocket* socket) { socket->made.protocol->output.outboxCount = 0; }
// The records for JavaScript (sockets/socket_protocol.h), until vp_records_clear().
EMSCRIPTEN_KEEPALIVE const uint8_t* vp_records(WasmSocket* socket) { return socket->made.protocol->output.records.data(); }
EMSCRIPTEN_KEEPALIVE uint32_t vp_records_size(WasmSocket* socket) { return static_cast<uint32_t>(socket->made.protocol->output.records.size()); }
EMSCRIPTEN_KEEPALIVE uint32_t vp_record_count(WasmSocket* socket) { return socket->made.protocol->output.recordCount; }
EMSCRIPTEN_KEEPALIVE void vp_records_clear(WasmSocket* socket) {
  volley::ProtocolOutput& output = socket->made.protocol->output;
  output.records.clear();  // keeps its capacity
  output.recordsStart = 0;
  output.recordCount = 0;
}

// The settings a server's delivery packet announces, read as a client with channels would take them (for the
// warning to a client without channels, src/api/channels-hint.ts): u32 the largest message, u32 the count, then
// a u8 mode per channel, into `out`; the bytes written, 0 when it announces none or they do not fit.
EMSCRIPTEN_KEEPALIVE uint32_t vp_announcement(const uint8_t* packet, uint32_t size, uint8_t* out, uint32_t capacity) {
  volley::delivery::DeliveryConfig config;
  config.followsPings = false;
  volley::delivery::DeliveryCore core(config, nullptr);
  core.Receive(packet, size, 0);
  const volley::delivery::PeerSettings& settings = core.peerSettings();
  const size_t bytes = 8 + settings.channels.size();
  if (!settings.known || bytes > capacity) return 0;
  const uint32_t header[2] = {static_cast<uint32_t>(std::min<uint64_t>(settings.maxMessageBytes, UINT32_MAX)),
                              static_cast<uint32_t>(settings.channels.size())};
  std::memcpy(out, header, sizeof(header));
  for (size_t i = 0; i < settings.channels.size(); ++i) out[8 + i] = static_cast<uint8_t>(settings.channels[i]);
  return static_cast<uint32_t>(bytes);
}

}  // extern "C"
