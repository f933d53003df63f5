// Fuzz target: the delivery layer under a hostile or broken link. Two cores, A and B, exchange packets
// through queues the input controls (loss, duplication, reordering, timing); the input may also forge,
// patch or truncate packets on their way to either side.
// Checked besides memory safety (ASan, UBSan):
//   - B never holds more for reassembly than its bound (plus one message per reliable channel);
//   - no delivered message exceeds the maximum size;
//   - on each side, while nothing forged has reached it, every message it delivers is one the other
//     side sent, intact; reliable channels deliver in order, sequenced channels never go backwards, and
//     no message is delivered twice;
//   - no timer stays due after a few turns (the engine's thread would spin).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "delivery/delivery.h"
#include "fuzz_input.h"

namespace {

using volley::delivery::ChannelMode;
using volley::delivery::DeliveryConfig;
using volley::delivery::DeliveryCore;
using volley::delivery::DeliverySink;
using volley::delivery::SendResult;
using volley::fuzz::FuzzInput;

constexpr size_t kMaxQueued = 512;  // packets waiting on each direction of the link

void Fail(const char* what) {
  std::fprintf(stderr, "delivery_fuzz: %s\n", what);
  std::abort();
}

// A message's bytes: its channel, its index among that channel's messages, then a pattern of both.
void FillMessage(uint8_t channel, uint32_t index, std::vector<uint8_t>* out) {
  for (size_t i = 0; i < out->size(); ++i) (*out)[i] = static_cast<uint8_t>(index * 7 + i + channel);
  (*out)[0] = channel;
  for (int i = 0; i < 4; ++i) (*out)[1 + i] = static_cast<uint8_t>(index >> (8 * i));
}

// One side's sink: the packets its core sends (the link towards the other side), and the messages its
// core delivers, checked against what the other side sent.
struct Side : DeliverySink {
  const DeliveryConfig* config = nullptr;
  std::deque<std::vector<uint8_t>> packets;  // sent by this side's core, not yet carried
  std::vector<uint8_t> last;                 // the newest of them, for tampering
  bool forged = false;                       // something the other side never sent reached this one
  std::vector<uint32_t> peerSent;            // messages the other side queued, per channel
  std::vector<int64_t> lastIndex;            // per channel: the index of the last message delivered
  std::vector<std::vector<bool>> seen;       // per channel: the indexes delivered

  explicit Side(const DeliveryConfig* deliveryConfig)
      : config(deliveryConfig),
        peerSent(deliveryConfig->channels.size(), 0),
        lastIndex(deliveryConfig->channels.size(), -1),
        seen(deliveryConfig->channels.size()) {}

  void SendPacket(const uint8_t* data, size_t size) override {
    last.assign(data, data + size);
    if (packets.size() == kMaxQueued) packets.pop_front();
    packets.push_back(last);
  }

  void Message(uint8_t channel, const uint8_t* data, size_t size) override {
    if (size > config->maxMessageBytes) Fail("a delivered message is larger than the maximum");
    if (channel >= config->channels.size()) Fail("a message on a channel that does not exist");
    if (forged) return;
    if (size < 5 || data[0] != channel) Fail("a message the peer never sent");
    uint32_t index = 0;
    for (int i = 0; i < 4; ++i) index |= uint32_t{data[1 + i]} << (8 * i);
    if (index >= peerSent[channel]) Fail("a message index the peer never used");
    std::vector<uint8_t> expected(size);
    FillMessage(channel, index, &expected);
    if (std::memcmp(expected.data(), data, size) != 0) Fail("a message's bytes changed");
    const ChannelMode mode = config->channels[channel];
    if (mode == ChannelMode::kReliable && index != lastIndex[channel] + 1) Fail("reliable: out of order or duplicated");
    if (mode == ChannelMode::kSequenced && static_cast<int64_t>(index) <= lastIndex[channel]) Fail("sequenced: went backwards");
    if (seen[channel].size() <= index) seen[channel].resize(index + 1);
    if (seen[channel][index]) Fail("a message delivered twice");
    seen[channel][index] = true;
    lastIndex[channel] = index;
  }
};

// `from` queues a message of `size` bytes on `channel` (one past the last is refused), to `to`.
void SendMessage(DeliveryCore& from, Side& to, uint8_t channel, size_t size, uint64_t now) {
  const size_t channels = to.config->channels.size();
  std::vector<uint8_t> message(size);
  FillMessage(channel, channel < channels ? to.peerSent[channel] : 0, &message);
  if (from.Send(channel, message.data(), message.size(), now) != SendResult::kQueued) return;
  if (channel >= channels || size > to.config->maxMessageBytes) Fail("Send took a message it must refuse");
  ++to.peerSent[channel];
}

// Moves up to `count` packets from one direction of the link to a core: each is dropped, delivered,
// delivered twice, or put back at the end of the queue (reordered), as the input says.
void Carry(FuzzInput& in, Side& link, DeliveryCore& to, uint64_t now) {
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

// The newest packet from `link`, with bytes overwritten or cut short as the input says.
std::vector<uint8_t> Tampered(FuzzInput& in, const Side& link) {
  std::vector<uint8_t> packet = link.last;
  const int edits = 1 + in.Byte() % 4;
  for (int i = 0; i < edits && !packet.empty(); ++i) {
    const size_t at = in.Number(2) % packet.size();
    const uint8_t op = in.Byte();
    if (op < 64) packet.resize(at);
    else packet[at] = in.Byte();
  }
  return packet;
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

  Side a(&config), b(&config);
  DeliveryCore coreA(config, &a);  // sends into a.packets, towards B
  DeliveryCore coreB(config, &b);  // sends into b.packets, towards A
  uint64_t now = 1000000;

  while (!in.empty()) {
    switch (in.Byte() % 10) {
      case 0: {  // A sends a message: any size up to a little over the maximum
        const uint8_t channel = in.Byte() % (channelCount + 1);
        SendMessage(coreA, b, channel, 5 + in.Number(2) % (config.maxMessageBytes + 16), now);
        break;
      }
      case 1: {  // B sends a small one, so that both sides have data to acknowledge
        const uint8_t channel = in.Byte() % (channelCount + 1);
        SendMessage(coreB, a, channel, 5 + in.Byte() * 8, now);
        break;
      }
      case 2: {  // time passes: by an amount, or to the deadline either core gives (as the engine's timers do)
        const uint64_t step = in.Number(3);
        const uint64_t due = std::min(coreA.NextDeadlineUs(now), coreB.NextDeadlineUs(now));
        now = (step & 1) && due > now && due - now < 60000000 ? due : now + step;
        // A timer that stays due makes the engine's thread spin. One due again at once is fine (the loss
        // timer runs before the probe timeout when both are late): a few turns must clear them.
        for (DeliveryCore* core : {&coreA, &coreB}) {
          int turns = 0;
          do {
            core->Update(now);
          } while (core->NextDeadlineUs(now) <= now && ++turns < 4);
          if (core->NextDeadlineUs(now) <= now) Fail("a timer still due after four turns");
        }
        break;
      }
      case 3: coreA.Flush(now); coreB.Flush(now); break;
      case 4: Carry(in, a, coreB, now); break;
      case 5: Carry(in, b, coreA, now); break;
      case 6: {  // forged bytes to B
        size_t length = 0;
        const uint8_t* bytes = in.Bytes(1300, &length);
        b.forged = true;
        coreB.Receive(bytes, length, now);
        break;
      }
      case 7: {  // forged bytes to A
        size_t length = 0;
        const uint8_t* bytes = in.Bytes(1300, &length);
        a.forged = true;
        coreA.Receive(bytes, length, now);
        break;
      }
      case 8: {  // A's newest packet, tampered with, to B
        if (a.last.empty()) break;
        const std::vector<uint8_t> packet = Tampered(in, a);
        b.forged = true;
        coreB.Receive(packet.data(), packet.size(), now);
        break;
      }
      case 9: {  // B's newest packet, tampered with, to A
        if (b.last.empty()) break;
        const std::vector<uint8_t> packet = Tampered(in, b);
        a.forged = true;
        coreA.Receive(packet.data(), packet.size(), now);
        break;
      }
    }
    uint64_t reliableChannels = 0;
    for (ChannelMode mode : config.channels) reliableChannels += mode == ChannelMode::kReliable;
    if (coreB.reassemblyUsed() > config.reassemblyBytes + reliableChannels * config.maxMessageBytes) Fail("B holds more than its reassembly bound");
  }
  return 0;
}
