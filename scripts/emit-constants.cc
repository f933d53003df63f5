// Prints the TypeScript face of the native constants JavaScript needs, each value taken from the C++ header
// that defines it, so that it is written once. scripts/generate-constants.mjs builds and runs this and writes
// the files; a toolchain test fails when a committed one differs from what this prints.
//   emit-constants netcode   src/protocol/netcode/constants.ts
//   emit-constants delivery  src/protocol/delivery/config.ts
//   emit-constants layout    src/engine/native-layout.ts
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>

#include "engine/engine.h"
#include "engine/layout.h"
#include "engine/released_slabs.h"
#include "engine/socket_stats.h"
#include "protocol/delivery/delivery.h"
#include "protocol/delivery/link_stats.h"
#include "protocol/netcode/client.h"
#include "protocol/netcode/constants.h"
#include "protocol/netcode/private_keys.h"
#include "protocol/netcode/server.h"
#include "sockets/netcode_sockets.h"
#include "sockets/socket_protocol.h"

namespace {

using namespace volley;

struct Field {
  const char* name;  // quoted in the output when it is not an identifier
  double value;
  const char* doc = nullptr;
};

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

std::string Key(const char* name) {
  return std::strchr(name, '-') != nullptr ? "'" + std::string(name) + "'" : std::string(name);
}

void Doc(const char* doc, const char* indent) {
  if (doc != nullptr) std::printf("%s/** %s */\n", indent, doc);
}

void Value(const char* name, double value, const char* doc = nullptr) {
  Doc(doc, "");
  std::printf("export const %s = %s\n", name, Number(value).c_str());
}

// An object of numbers; typeName: also a type of its values, under that name.
void Object(const char* name, std::initializer_list<Field> fields, const char* doc = nullptr, const char* typeName = nullptr) {
  Doc(doc, "");
  std::printf("export const %s = {\n", name);
  for (const Field& field : fields) {
    Doc(field.doc, "  ");
    std::printf("  %s: %s,\n", Key(field.name).c_str(), Number(field.value).c_str());
  }
  std::printf("} as const\n");
  if (typeName != nullptr) std::printf("export type %s = (typeof %s)[keyof typeof %s]\n", typeName, name, name);
}

void Header(const char* sources) {
  std::printf("// Generated from %s by scripts/generate-constants.mjs: do not edit.\n", sources);
}

constexpr double Ms(uint64_t us) { return static_cast<double>(us) / 1000; }

// A field of netcode::PeerCounters: its index in a slot's doubles.
#define PEER_COUNTER(field) {#field, static_cast<double>(offsetof(netcode::PeerCounters, field) / sizeof(double))}

void Netcode() {
  using namespace volley::netcode;
  Header("native/protocol/netcode/ (constants.h, private_keys.h, server.h, client.h)");
  std::printf("\n/** \"NETCODE 1.02\" with its terminating zero. */\nexport const versionInfo = new Uint8Array([");
  for (size_t i = 0; i < kVersionInfoBytes; ++i) std::printf("%s%u", i == 0 ? "" : ", ", kVersionInfo[i]);
  std::printf("])\n\n");
  Object("sizes",
         {{"versionInfo", kVersionInfoBytes},
          {"connectToken", kConnectTokenBytes},
          {"privateConnectToken", kPrivateConnectTokenBytes},
          {"connectTokenNonce", kConnectTokenNonceBytes},
          {"challengeToken", kChallengeTokenBytes},
          {"key", kKeyBytes},
          {"userData", kUserDataBytes},
          {"mac", kMacBytes},
          {"connectionRequest", kConnectionRequestBytes, "1 prefix + 13 version + 8 protocol id + 8 expire timestamp + 24 nonce + 1024 private token."},
          {"challengeBody", kChallengeBodyBytes, "challenge token sequence + encrypted challenge token."},
          {"keepAliveBody", kKeepAliveBodyBytes},
          {"maxPayload", kMaxPayloadBytes},
          {"minEncryptedPacket", kMinEncryptedPacketBytes},
          {"maxServerAddresses", kMaxServerAddresses},
          {"replayBuffer", kReplayBufferSize}},
         "netcode 1.02's sizes in bytes (STANDARD.md of mas-bandwidth/netcode).");
  std::printf("\n");
  Object("PacketType",
         {{"connectionRequest", kConnectionRequest},
          {"connectionDenied", kConnectionDenied},
          {"connectionChallenge", kConnectionChallenge},
          {"connectionResponse", kConnectionResponse},
          {"keepAlive", kKeepAlive},
          {"payload", kPayload},
          {"disconnect", kDisconnect}},
         nullptr, "PacketType");
  std::printf("\n");
  Object("AddressType", {{"ipv4", kAddressIpv4}, {"ipv6", kAddressIpv6}});
  std::printf("\n");
  Value("maxPrivateKeys", kMaxPrivateKeys, "Private keys a server accepts at once, the current one included.");
  std::printf("\n");
  Object("PeerCounterField",
         {PEER_COUNTER(packetsIn), PEER_COUNTER(bytesIn), PEER_COUNTER(packetsOut), PEER_COUNTER(bytesOut), PEER_COUNTER(clients),
          PEER_COUNTER(malformed), PEER_COUNTER(replayed), PEER_COUNTER(tooOld), PEER_COUNTER(decryptionFailed)},
         "A server's client slot's counters: their indices in its peerCounterFields doubles (server.h's PeerCounters).");
  Value("peerCounterFields", kPeerCounterFields, "Doubles of counters per client slot of a server: packets, bytes, drops (PeerCounterField).");
  std::printf("\n");
  Object("netcodeDefaults",
         {{"requestIntervalMs", Ms(kDefaultRequestIntervalUs), "Connection requests and responses, 10 Hz."},
          {"keepAliveIntervalMs", Ms(kDefaultKeepAliveIntervalUs), "A keep-alive when nothing else was sent for this long: 10 Hz."},
          {"disconnectIntervalMs", Ms(kDefaultDisconnectIntervalUs), "Between the redundant disconnect packets of a close."},
          {"disconnectPackets", kDefaultDisconnectPackets},
          {"maxClients", kDefaultMaxClients}},
         "The connection defaults of Server and Client (and of volley serve and load): the cores' own.");
  std::printf("\n");
  using S = ClientState;
  const auto state = [](S value) { return static_cast<double>(static_cast<int8_t>(value)); };
  Object("clientStateCodes",
         {{"connect-token-expired", state(S::kConnectTokenExpired)},
          {"invalid-connect-token", state(S::kInvalidConnectToken)},
          {"connection-timed-out", state(S::kConnectionTimedOut)},
          {"connection-response-timed-out", state(S::kConnectionResponseTimedOut)},
          {"connection-request-timed-out", state(S::kConnectionRequestTimedOut)},
          {"connection-denied", state(S::kConnectionDenied)},
          {"disconnected", state(S::kDisconnected)},
          {"sending-connection-request", state(S::kSendingConnectionRequest)},
          {"sending-connection-response", state(S::kSendingConnectionResponse)},
          {"connected", state(S::kConnected)}},
         "The states of the standard, as the native engine's records number them.");
  std::printf("export type ClientCoreState = keyof typeof clientStateCodes\n");
}

void Delivery() {
  using namespace volley::delivery;
  Header("native/protocol/delivery/ (delivery.h, link_stats.h)");
  std::printf("\n");
  Value("queuedMessageOverheadBytes", kQueuedMessageOverheadBytes, "What a queued message costs the send queue beyond its bytes.");
  std::printf("\n");
  const DeliveryConfig config;
  Object("deliveryDefaults",
         {{"maxMessageBytes", static_cast<double>(config.maxMessageBytes)},
          {"sendQueueBytes", static_cast<double>(config.sendQueueBytes)},
          {"reassemblyHeadroomBytes", static_cast<double>(kReassemblyHeadroomBytes),
           "A connection's reassembly bound, unless set: the largest message and this much."}},
         "The channels' defaults: the delivery core's own.");
  std::printf("\n");
  Object("LinkField",
         {{"rttSmoothedUs", kLinkRttSmoothedUs},
          {"rttMinUs", kLinkRttMinUs},
          {"rttMaxUs", kLinkRttMaxUs},
          {"rttVarianceUs2", kLinkRttVarianceUs2},
          {"jitterUs", kLinkJitterUs},
          {"packetsSent", kLinkPacketsSent},
          {"packetsLost", kLinkPacketsLost},
          {"resends", kLinkResends},
          {"queuedMessages", kLinkQueuedMessages},
          {"queuedBytes", kLinkQueuedBytes},
          {"oldestQueuedUs", kLinkOldestQueuedUs},
          {"clockOffsetUs", kLinkClockOffsetUs},
          {"clockDrift", kLinkClockDrift},
          {"clockReferenceUs", kLinkClockReferenceUs},
          {"releasedBytes", kLinkReleasedBytes},
          {"dropped", kLinkDropped},
          {"congestionWindow", kLinkCongestionWindow},
          {"bytesInFlight", kLinkBytesInFlight},
          {"pathBytesPerSec", kLinkPathBytesPerSec},
          {"releasedMessages", kLinkReleasedMessages},
          {"clockExchanges", kLinkClockExchanges},
          {"clockErrorUs", kLinkClockErrorUs},
          {"clockErrorGrowth", kLinkClockErrorGrowth}},
         "A connection's link statistics: their indices in its linkFields doubles (link_stats.h).");
  Value("linkFields", kLinkFieldCount, "Doubles of link statistics per peer (LinkField).");
}

void Layout() {
  Header("native/engine/ and native/sockets/ (layout.h, engine.h, socket_stats.h, released_slabs.h, socket_protocol.h)");
  std::printf("\n");
  Object("layout",
         {{"revision", kLayoutRevision,
           "Bumped whenever what the native side and JavaScript exchange changes meaning with every size the same "
           "(native/engine/layout.h says when it was): an addon of other sources is refused, not misread."},
          {"maxDatagramSize", kMaxDatagramSize, "Over IPv6 (over IPv4: 65,507, which sends check per destination)."},
          {"maxBatchSize", kMaxBatchSize},
          {"receiveHeadSize", kReceiveHeadSize,
           "No protocol packet is larger: a larger datagram reaches a connection protocol as an empty, malformed one."},
          {"recvHeaderSize", kRecvHeaderSize},
          {"sendHeaderSize", kSendHeaderSize},
          {"slabSize", kSlabSize},
          {"eventWords", kEventWords},
          {"eventCapacity", kEventCapacity},
          {"maxReceiveSlabs", Engine::kMaxReceiveSlabs},
          {"maxSendSlabs", Engine::kMaxSendSlabs},
          {"statsFields", SocketStats::kFieldCount},
          {"peerRecordHeaderSize", kPeerRecordHeaderSize},
          {"releasedSlabsCapacity", ReleasedSlabs::kCapacity},
          {"queuedMessageOverheadBytes", static_cast<double>(delivery::kQueuedMessageOverheadBytes)},
          {"peerSlotBits", kPeerSlotBits,
           "A server's peer as sends and controls name it: slot + (clients the slot had before, mod 4096) << this."},
          {"linkFields", delivery::kLinkFieldCount},
          {"peerCounterFields", netcode::kPeerCounterFields},
          {"maxPrivateKeys", netcode::kMaxPrivateKeys}},
         "The byte layouts the I/O thread and JavaScript share, checked against the addon's own copy when it loads.");
  std::printf("\n");
  std::printf("\n");
  Object("ReleasedSlabsWord", {{"written", ReleasedSlabs::kWritten}, {"wanted", ReleasedSlabs::kWanted}, {"ids", ReleasedSlabs::kIds}},
         "Word offsets in the ring of finished send slabs (released_slabs.h).");
  std::printf("\n");
  Object("EventType",
         {{"batch", kEventBatch}, {"sendDone", kEventSendDone}, {"closed", kEventClosed}, {"error", kEventError}, {"starved", kEventStarved}});
  std::printf("\n");
  Object("Operation", {{"receive", kOpReceive}, {"send", kOpSend}});
  std::printf("\n");
  Object("RecvFlag", {{"truncated", kRecvFlagTruncated}});
  std::printf("\n");
  Object("PeerRecordKind",
         {{"payload", kPeerPayload},
          {"connect", kPeerConnect},
          {"disconnect", kPeerDisconnect},
          {"clientState", kClientState},
          {"largePayload", kPeerLargePayload},
          {"drain", kPeerDrain},
          {"flushed", kPeerFlushed},
          {"settings", kPeerSettings}});
  using R = netcode::DisconnectReason;
  const auto reason = [](R value) { return static_cast<double>(static_cast<uint8_t>(value)); };
  std::printf("\n");
  Object("DisconnectCode",
         {{"timeout", reason(R::kTimeout)},
          {"disconnected", reason(R::kDisconnected)},
          {"serverDisconnect", reason(R::kServerDisconnect)},
          {"serverClosed", reason(R::kServerClosed)},
          {"channelsMismatch", kDisconnectChannelsMismatch},
          {"settingsLate", kDisconnectSettingsLate},
          {"reassemblyStalled", kDisconnectReassemblyStalled}},
         "A disconnect record's code: netcode's reasons (server.h), then those of a connection its delivery layer ends "
         "(socket_protocol.h).",
         "DisconnectCode");
  std::printf("\n");
  Object("ProtocolControl",
         {{"disconnectPeer", kControlDisconnectPeer},
          {"connect", kControlConnect},
          {"disconnect", kControlDisconnect},
          {"stop", kControlStop},
          {"watchPeer", kControlWatchPeer},
          {"sendLarge", kControlSendLarge},
          {"watchFlush", kControlWatchFlush},
          {"rotatePrivateKey", kControlRotatePrivateKey}});
  std::printf("\n");
  Object("ProtocolCounter",
         {{"packetsIn", kCounterPacketsIn},
          {"bytesIn", kCounterBytesIn},
          {"packetsOut", kCounterPacketsOut},
          {"bytesOut", kCounterBytesOut},
          {"malformed", kCounterMalformed},
          {"replayed", kCounterReplayed},
          {"decryptionFailed", kCounterDecryptionFailed},
          {"unknownAddress", kCounterUnknownAddress},
          {"tooOld", kCounterTooOld}},
         "Where readProtocolStats() has the counters a netcode server and client both keep (netcode_sockets.h).");
  std::printf("\n");
  Object("ServerCounter",
         {{"tokenRefused", kServerTokenRefused},
          {"denied", kServerDenied},
          {"connectedClients", kServerConnectedClients},
          {"sendDropped", kServerSendDropped},
          {"requestsThrottled", kServerRequestsThrottled},
          {"wrongProtocol", kServerWrongProtocol},
          {"tokenExpired", kServerTokenExpired},
          {"pendingHandshakes", kServerPendingHandshakes},
          {"handshakesReplaced", kServerHandshakesReplaced},
          {"handshakesEvicted", kServerHandshakesEvicted},
          {"reassemblyBudget", kServerReassemblyBudget},
          {"reassemblyUsed", kServerReassemblyUsed},
          {"reassemblyEvictions", kServerReassemblyEvictions},
          {"reassemblyRefusals", kServerReassemblyRefusals},
          {"previousKeyRequests", kServerPreviousKeyRequests, "Requests whose token opened under a private key in its grace, not the current one."}},
         "Where readProtocolStats() has a netcode server's own counters.");
  std::printf("\n");
  Object("ClientCounter", {{"clientIndex", kClientIndex}, {"maxClients", kClientMaxClients}, {"sendDropped", kClientSendDropped}},
         "Where readProtocolStats() has a netcode client's own counters.");
  std::printf("\n");
  Value("protocolStatsFields", SocketStats::kProtocolFieldCount + 2 + SocketStats::kSimulatorFieldCount,
        "engine.readProtocolStats(): the protocol's counters, then the socket's kernel receive drops and send errors, then "
        "its network simulator's lost, duplicated, reordered and overflowed datagrams.");
  Value("protocolCounterFields", SocketStats::kProtocolFieldCount, "The protocol's counters that begin readProtocolStats().");
  Value("maxClientsLimit", kMaxClientsLimit, "The most clients a server may take (maxClients): as many as a peer's tag has slots for.");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "";
  if (which == "netcode") Netcode();
  else if (which == "delivery") Delivery();
  else if (which == "layout") Layout();
  else {
    std::fprintf(stderr, "usage: emit-constants netcode|delivery|layout\n");
    return 2;
  }
  return 0;
}
