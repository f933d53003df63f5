// Fuzz target: the delivery layer under a hostile or broken link. Two cores, A and B, exchange packets
// through queues the input controls (loss, duplication, reordering, timing); the input may also forge,
// patch or truncate packets on their way to either side.
// Checked besides memory safety (ASan, UBSan):
//   - B never holds more for reassembly than its bound (plus one message per reliable channel);
//   - no delivered message exceeds the maximum size;
//   - on each side, while nothing forged has reached it, every message it delivers is one the other
//     side sent, intact; reliable channels deliver in order, sequenced channels never go backwards, and
//     no message is delivered twice;
//   - no timer stays due after a few turns (the engine's thread would spin);
//   - each side's running counts agree with what they count (DeliveryCore::CountsAgree).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "protocol/delivery/delivery.h"
#include "protocol/delivery/wire_format.h"
#include "fuzz_input.h"
#include "fuzz_messages.h"
#include "protocol/netcode/wire.h"

namespace {

using volley::delivery::ChannelMode;
using volley::delivery::DeliveryConfig;
using volley::delivery::DeliveryCore;
using volley::delivery::SendResult;
using volley::fuzz::DeliveredMessages;
using volley::fuzz::Fail;
using volley::fuzz::FillMessage;
using volley::fuzz::FuzzInput;
using volley::fuzz::Tampered;

constexpr size_t kMaxQueued = 512;  // packets waiting on each direction of the link

// One side: its core, the packets the core sends (the link towards the other side), and the messages it
// delivers, checked against what the other side sent.
struct Side {
  DeliveryCore core;
  std::deque<std::vector<uint8_t>> packets;  // sent by this side's core, not yet carried
  std::vector<uint8_t> last;                 // the newest of them, for tampering
  DeliveredMessages delivered;               // `unchecked` once something forged reached this side

  Side(const DeliveryConfig& config, const DeliveryConfig* checked, const uint8_t* skipKey)
      : core(config, skipKey), delivered(checked) {}

  // The packets due now, onto the link.
  void PollPackets(uint64_t now) {
    volley::delivery::SendDuePackets(core, now, [this](const uint8_t* data, size_t size) {
      last.assign(data, data + size);
      if (packets.size() == kMaxQueued) packets.pop_front();
      packets.push_back(last);
    });
  }
  // A packet for this side's core, and the messages it delivers.
  void Receive(const uint8_t* data, size_t size, uint64_t now) {
    core.Receive(data, size, now);
    while (volley::delivery::DeliveredMessage* message = core.PollMessage()) {
      delivered.Check(message->channel, message->data, message->size);
      // Taken and freed, as the engine may: the core must not need them after.
      std::vector<uint8_t>().swap(message->joined);
      message->block.reset();
    }
  }
};

// `from` queues a message of `size` bytes on `channel` (one past the last is refused), to `to`.
void SendMessage(DeliveryCore& from, Side& to, const DeliveryConfig& config, uint8_t channel, size_t size, uint64_t now) {
  const size_t channels = config.channels.size();
  std::vector<uint8_t> message(size);
  FillMessage(channel, channel < channels ? to.delivered.sent[channel] : 0, &message);
  if (from.Send(channel, message.data(), message.size(), now) != SendResult::kQueued) return;
  if (channel >= channels || size > config.maxMessageBytes) Fail("Send took a message it must refuse");
  ++to.delivered.sent[channel];
}

// Moves up to `count` packets from one direction of the link to a core: each is dropped, delivered,
// delivered twice, or put back at the end of the queue (reordered), as the input says.
void Carry(FuzzInput& in, Side& link, Side& to, uint64_t now) {
  const int count = in.Byte() % 16;
  for (int i = 0; i < count && !link.packets.empty(); ++i) {
    std::vector<uint8_t> packet = std::move(link.packets.front());
    link.packets.pop_front();
    switch (in.Byte() % 4) {
      case 0: break;  // lost
      case 1: to.Receive(packet.data(), packet.size(), now); break;
      case 2:
        to.Receive(packet.data(), packet.size(), now);
        to.Receive(packet.data(), packet.size(), now);
        break;
      case 3: link.packets.push_back(std::move(packet)); break;
    }
  }
}

// A forged packet of well-formed MESSAGE and FRAGMENT frames, their sequences, lengths and indexes at the
// edges the receiver checks (empty, one fragment, one byte over, the maximum and one over, the largest
// packet numbers): random or tampered bytes seldom get past the frame parser to the reassembly behind it.
std::vector<uint8_t> ForgedFrames(FuzzInput& in, const DeliveryConfig& config) {
  using volley::delivery::kFragmentBytes;
  uint8_t buffer[volley::delivery::kMaxPacketBytes];
  volley::netcode::WireWriter writer(buffer, sizeof buffer);
  writer.U8(volley::delivery::kPacketMarker);
  const uint8_t number = in.Byte();
  writer.Varint(number < 16 ? volley::netcode::WireReader::kMaxVarint + 8 - number : in.Number(2));  // around the largest
  const int frames = 1 + in.Byte() % 3;
  for (int i = 0; i < frames; ++i) {
    const uint8_t kind = in.Byte();
    const bool fragmented = (kind & 1) != 0;
    writer.U8(fragmented ? volley::delivery::kFrameFragment : volley::delivery::kFrameMessage);
    writer.U8(static_cast<uint8_t>(in.Byte() % (config.channels.size() + 1)));
    writer.Varint(in.Byte() % 8);  // sequences near the next to deliver
    const uint64_t lengths[] = {0, 1, kFragmentBytes, kFragmentBytes + 1, 1150, 3 * kFragmentBytes,
                                config.maxMessageBytes, config.maxMessageBytes + 1, in.Number(2)};
    const uint64_t length = lengths[(kind >> 1) % (sizeof lengths / sizeof lengths[0])];
    writer.Varint(length);
    uint64_t bytes = length;
    if (fragmented) {
      const uint64_t index = in.Byte() % 4;
      writer.Varint(index);
      const uint64_t start = index * kFragmentBytes;
      bytes = start < length ? std::min<uint64_t>(kFragmentBytes, length - start) : in.Byte();
    }
    if ((kind & 0x80) != 0) bytes = in.Byte();  // now and then, a length the frame does not keep to
    bytes = std::min<uint64_t>(bytes, writer.remaining());
    for (uint64_t b = 0; b < bytes; ++b) writer.U8(in.Byte());
  }
  return std::vector<uint8_t>(buffer, buffer + writer.offset());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  DeliveryConfig config;
  config.channels.clear();
  const uint8_t shape = in.Byte();
  const size_t channelCount = 1 + shape % 4;
  for (size_t i = 0; i < channelCount; ++i) config.channels.push_back(static_cast<ChannelMode>(1 + (shape >> (2 + i)) % 3));
  config.maxMessageBytes = 1 + in.Number(2) % 12000;
  config.reassemblyBytes = 4096 + in.Number(2) % 60000;
  config.sendQueueBytes = 1 << 16;
  config.reliableWindow = 4 + in.Byte() * 4;  // small enough for honest traffic to reach its edge
  config.followsPings = (shape & 0x80) != 0;

  // The same settings on both sides, in the two roles a client and its server take.
  DeliveryConfig configB = config;
  configB.followsPings = !config.followsPings;
  // Each skips packet numbers, as an engine's cores do, by keys of their own.
  uint8_t keyA[volley::delivery::kPacketSkipKeyBytes], keyB[volley::delivery::kPacketSkipKeyBytes];
  for (size_t i = 0; i < sizeof(keyA); ++i) keyA[i] = static_cast<uint8_t>(shape + i), keyB[i] = static_cast<uint8_t>(~shape + i);
  Side a(config, &config, keyA);   // sends into a.packets, towards B
  Side b(configB, &config, keyB);  // sends into b.packets, towards A
  DeliveryCore& coreA = a.core;
  DeliveryCore& coreB = b.core;
  uint64_t now = 1000000;

  while (!in.empty()) {
    const uint8_t op = in.Byte() % 12;
    switch (op) {
      case 0: {  // A sends a message: any size up to a little over the maximum
        const uint8_t channel = in.Byte() % (channelCount + 1);
        SendMessage(coreA, b, config, channel, 5 + in.Number(2) % (config.maxMessageBytes + 16), now);
        break;
      }
      case 1: {  // B sends a small one, so that both sides have data to acknowledge
        const uint8_t channel = in.Byte() % (channelCount + 1);
        SendMessage(coreB, a, config, channel, 5 + in.Byte() * 8, now);
        break;
      }
      case 2: {  // time passes: by an amount, or to the deadline either core gives (as the engine's timers do)
        const uint64_t step = in.Number(3);
        const uint64_t due = std::min(coreA.NextDeadlineUs(now), coreB.NextDeadlineUs(now));
        now = (step & 1) && due > now && due - now < 60000000 ? due : now + step;
        // A timer that stays due makes the engine's thread spin. One due again at once is fine (the loss
        // timer runs before the probe timeout when both are late): a few turns must clear them.
        for (Side* side : {&a, &b}) {
          int turns = 0;
          do {
            side->core.Update(now);
            side->PollPackets(now);
          } while (side->core.NextDeadlineUs(now) <= now && ++turns < 4);
          if (side->core.NextDeadlineUs(now) <= now) Fail("a timer still due after four turns");
        }
        break;
      }
      case 3: a.PollPackets(now); b.PollPackets(now); break;
      case 4: Carry(in, a, b, now); break;
      case 5: Carry(in, b, a, now); break;
      case 6:    // forged bytes to B
      case 7: {  // forged bytes to A
        Side& side = op == 6 ? b : a;
        size_t length = 0;
        const uint8_t* bytes = in.Bytes(1300, &length);
        side.delivered.unchecked = true;
        side.Receive(bytes, length, now);
        break;
      }
      case 8:    // A's newest packet, tampered with, to B
      case 9: {  // B's newest packet, tampered with, to A
        Side& from = op == 8 ? a : b;
        Side& to = op == 8 ? b : a;
        if (from.last.empty()) break;
        const std::vector<uint8_t> packet = Tampered(in, from.last);
        to.delivered.unchecked = true;
        to.Receive(packet.data(), packet.size(), now);
        break;
      }
      case 10:    // well-formed forged frames to B
      case 11: {  // and to A
        Side& side = op == 10 ? b : a;
        const std::vector<uint8_t> packet = ForgedFrames(in, config);
        side.delivered.unchecked = true;
        side.Receive(packet.data(), packet.size(), now);
        break;
      }
    }
    uint64_t reliableChannels = 0;
    for (ChannelMode mode : config.channels) reliableChannels += mode == ChannelMode::kReliable;
    const uint64_t bound = config.reassemblyBytes + reliableChannels * config.maxMessageBytes;
    if (coreB.reassemblyUsed() > bound) Fail("B counts more than its reassembly bound");
    // What the slots hold allocated: the counted bytes, a flag per fragment (under 1/1000 of them, and a
    // byte per slot), and nothing kept past a message.
    if (coreB.reassemblyHeld() > bound + bound / 1000 + 64 * 1024) Fail("B holds more than its reassembly bound");
    if (!coreA.CountsAgree() || !coreB.CountsAgree()) Fail("a running count disagrees with what it counts");
    // The two sides have the same settings: each learns them exactly, and sees no mismatch, unless
    // something forged reached either: what a side sends follows from what it took in (a forged PONG tells
    // it the peer has its settings, so it stops sending them, and the honest peer that has not got them
    // yet takes it for one without channels). On a real link no one but the peer can make a PONG.
    if (a.delivered.unchecked || b.delivered.unchecked) continue;
    for (const DeliveryCore* core : {&coreA, &coreB}) {
      if (core->mismatch() != volley::delivery::Mismatch::kNone) Fail("a mismatch between two sides with the same settings");
      const volley::delivery::PeerSettings& peer = core->peerSettings();
      if (peer.known && (peer.maxMessageBytes != config.maxMessageBytes || peer.channels != config.channels)) Fail("the peer's settings misread");
    }
  }
  return 0;
}
