// Micro-benchmarks of the delivery core's per-packet paths (native/protocol/delivery/), sans-IO, on a fake clock,
// with a counting operator new: the time per packet and the allocations as the channel count, the window
// and a hostile peer's frames grow. They look for costs that scale (x10 input, x10 time), not for small
// differences: this machine is noisy. From the repository's root:
//   g++ -std=c++17 -O2 -Wall -Wextra -Inative -o bench/.build/delivery-costs bench/native/delivery-costs.cc \
//       native/protocol/delivery/delivery_*.cc native/protocol/delivery/reassembly_budget.cc -l:libsodium.a
//   bench/.build/delivery-costs [steady|idle|ack|frag|pong|fragsteady|ackwindow|timer|refused|drained|all]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "protocol/delivery/delivery.h"
#include "protocol/delivery/wire_format.h"
#include "counting-new.h"  // gAllocs, gAllocBytes

using namespace volley::delivery;


static double NowNs() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Where a core's packets go: a fixed ring of buffers (no allocation in steady state); and a count of the
// messages it delivered.
struct Sink {
  struct Pkt {
    size_t size;
    uint8_t data[1200];
  };
  std::vector<Pkt> packets;
  size_t count = 0;
  uint64_t messages = 0;
  Sink() { packets.resize(8192); }
  void SendPacket(const uint8_t* data, size_t size) {
    if (count < packets.size()) {
      packets[count].size = size;
      std::memcpy(packets[count].data, data, size);
      ++count;
    }
  }
};

// A core polled as the engine polls it: its messages after each packet received, its packets after each
// Flush or Update.
struct Core : DeliveryCore {
  Sink& sink;
  Core(const DeliveryConfig& config, Sink* out, const uint8_t* skipKey) : DeliveryCore(config, skipKey), sink(*out) {}
  void Receive(const uint8_t* data, size_t size, uint64_t now) {
    DeliveryCore::Receive(data, size, now);
    while (PollMessage() != nullptr) ++sink.messages;
  }
  void Flush(uint64_t now) {
    SendDuePackets(*this, now, [this](const uint8_t* data, size_t size) { sink.SendPacket(data, size); });
  }
  void Update(uint64_t now) {
    DeliveryCore::Update(now);
    Flush(now);
  }
};

static void Varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

static DeliveryConfig Config(size_t channels, ChannelMode mode, bool follows) {
  DeliveryConfig c;
  c.channels.assign(channels, mode);
  c.followsPings = follows;
  return c;
}

// Moves every packet a sink holds to a core.
static void Pump(Sink& fromSink, Core& to, uint64_t now) {
  for (size_t i = 0; i < fromSink.count; ++i) to.Receive(fromSink.packets[i].data, fromSink.packets[i].size, now);
  fromSink.count = 0;
}

// `count` packets numbered from `firstNumber`, each filled with frames by writeFrames(packet).
template <typename WriteFrames>
static std::vector<std::vector<uint8_t>> ForgedPackets(int count, uint64_t firstNumber, WriteFrames writeFrames) {
  std::vector<std::vector<uint8_t>> packets;
  for (int k = 0; k < count; ++k) {
    std::vector<uint8_t> out{kPacketMarker};
    Varint(out, firstNumber + k);
    writeFrames(out);
    packets.push_back(std::move(out));
  }
  return packets;
}

// Nanoseconds per packet for `core` to receive them all.
static double ReceiveAll(Core& core, const std::vector<std::vector<uint8_t>>& packets, uint64_t now) {
  const double t0 = NowNs();
  for (const std::vector<uint8_t>& packet : packets) core.Receive(packet.data(), packet.size(), now);
  return (NowNs() - t0) / static_cast<double>(packets.size());
}

// Each side skips packet numbers, as an engine's cores do (any keys will do).
static const uint8_t kSkipKeyA[volley::delivery::kPacketSkipKeyBytes] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t kSkipKeyB[volley::delivery::kPacketSkipKeyBytes] = {16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};

struct Pair {
  Sink sa, sb;
  Core a, b;  // a: client (leads pings), b: server
  uint64_t now = 1000000;
  Pair(size_t channels, ChannelMode mode, uint64_t serverReassemblyBytes = DeliveryConfig{}.reassemblyBytes)
      : a(Config(channels, mode, false), &sa, kSkipKeyA), b(ServerConfig(Config(channels, mode, true), serverReassemblyBytes), &sb, kSkipKeyB) {
    // Handshake of settings: a few rounds of pings/pongs.
    for (int i = 0; i < 20; ++i) Step(5000);
  }
  void Step(uint64_t dt) {
    now += dt;
    a.Update(now);
    Pump(sa, b, now);
    b.Update(now);
    Pump(sb, a, now);
  }
  static DeliveryConfig ServerConfig(DeliveryConfig config, uint64_t reassemblyBytes) {
    config.reassemblyBytes = reassemblyBytes;
    return config;
  }
};

// ---- 1. steady state, one small reliable message per round trip, vs channel count ----
static void SteadyState(size_t channels, ChannelMode mode) {
  Pair p(channels, mode);
  uint8_t msg[100] = {1, 2, 3};
  // warm up
  for (int i = 0; i < 2000; ++i) {
    p.a.Send(0, msg, sizeof msg, p.now);
    p.a.Flush(p.now);
    Pump(p.sa, p.b, p.now);
    p.b.Flush(p.now);
    Pump(p.sb, p.a, p.now);
    p.now += 500;
    p.b.Update(p.now);
    Pump(p.sb, p.a, p.now);
    p.a.Update(p.now);
    Pump(p.sa, p.b, p.now);
  }
  const int rounds = 20000;
  uint64_t deadlineSum = 0;
  const uint64_t allocs0 = gAllocs, in0 = p.b.stats().packetsIn + p.a.stats().packetsIn;
  const double t0 = NowNs();
  for (int i = 0; i < rounds; ++i) {
    p.a.Send(0, msg, sizeof msg, p.now);
    p.a.Flush(p.now);
    deadlineSum += p.a.NextDeadlineUs(p.now);  // as the engine does after each batch (AfterDelivery)
    Pump(p.sa, p.b, p.now);
    p.b.Flush(p.now);
    deadlineSum += p.b.NextDeadlineUs(p.now);
    Pump(p.sb, p.a, p.now);
    p.now += 500;
    p.b.Update(p.now);
    deadlineSum += p.b.NextDeadlineUs(p.now);
    Pump(p.sb, p.a, p.now);
    p.a.Update(p.now);
    deadlineSum += p.a.NextDeadlineUs(p.now);
    Pump(p.sa, p.b, p.now);
  }
  const double t1 = NowNs();
  const uint64_t packets = p.b.stats().packetsIn + p.a.stats().packetsIn - in0;
  std::printf("steady  mode=%d channels=%3zu: %7.0f ns/round, %5.0f ns/packet, packets/round %.2f, allocs/round %.3f (delivered %llu)\n",
              static_cast<int>(mode), channels, (t1 - t0) / rounds, (t1 - t0) / packets, double(packets) / rounds,
              double(gAllocs - allocs0) / rounds, (unsigned long long)p.sb.messages + p.b.stats().messagesIn);
  (void)deadlineSum;
}

// ---- 2. NextDeadlineUs, Flush (idle) and Update (idle) alone, vs channel count; partials in use ----
static void IdleCalls(size_t channels, ChannelMode mode, bool partials) {
  Pair p(channels, mode);
  if (partials) {
    // One incomplete fragmented message on every channel: partial slots made (8 per channel) and one used.
    std::vector<uint8_t> big(3000, 7);
    for (size_t c = 0; c < channels; ++c) p.a.Send(static_cast<uint8_t>(c), big.data(), big.size(), p.now);
    p.a.Flush(p.now);
    // deliver only the first packet's fragments: leaves messages incomplete
    for (size_t i = 0; i < p.sa.count; i += 3) p.b.Receive(p.sa.packets[i].data, p.sa.packets[i].size, p.now);
    p.sa.count = 0;
  }
  const int n = 200000;
  uint64_t sink = 0;
  double t0 = NowNs();
  for (int i = 0; i < n; ++i) sink += p.b.NextDeadlineUs(p.now + i);
  double t1 = NowNs();
  const double deadline = (t1 - t0) / n;
  p.sb.count = 0;
  t0 = NowNs();
  for (int i = 0; i < n; ++i) p.b.Flush(p.now);
  t1 = NowNs();
  const double flush = (t1 - t0) / n;
  p.sb.count = 0;
  std::printf("idle    mode=%d channels=%3zu partials=%d: NextDeadlineUs %6.1f ns, Flush(idle) %6.1f ns\n", static_cast<int>(mode),
              channels, partials, deadline, flush);
  (void)sink;
}

// ---- 3. hostile: packets made of many minimal ACK frames ----
static void AckFlood(size_t channels, int framesPerPacket) {
  Pair p(channels, ChannelMode::kReliable);
  // The victim is b (server). It has sent packets; find a packet number it sent.
  // Have b send some reliable data so there is a window.
  uint8_t msg[50] = {};
  for (int i = 0; i < 5; ++i) p.b.Send(0, msg, sizeof msg, p.now);
  p.b.Flush(p.now);
  p.sb.count = 0;  // lost: stays in flight
  const uint64_t largest = p.b.stats().packetsOut - 1;
  const auto packets = ForgedPackets(2000, 100000, [&](std::vector<uint8_t>& out) {
    for (int f = 0; f < framesPerPacket && out.size() + 8 < 1200; ++f) {
      out.push_back(kFrameAck);
      Varint(out, largest);  // largest
      out.push_back(0);      // delay
      Varint(out, largest);  // first range: the whole window
      out.push_back(0);      // count
    }
  });
  const double perPacket = ReceiveAll(p.b, packets, p.now);
  std::printf("ackflood channels=%3zu frames/packet=%3d (bytes %zu): %8.0f ns/packet, malformed %llu\n", channels, framesPerPacket,
              packets[0].size(), perPacket, (unsigned long long)p.b.stats().malformed);
}

// ---- 4. hostile: fragment frames that start reliable messages out of order ----
static void FragmentFlood(size_t channels, uint64_t reassemblyBytes) {
  Pair p(channels, ChannelMode::kReliable, reassemblyBytes);
  // Frames: FRAGMENT channel c, sequence s (1..1023; 0 held back), length 1101, fragment 1 (1 byte).
  uint64_t nextSeq = 1;
  size_t nextChannel = 0;
  const auto packets = ForgedPackets(3000, 1000, [&](std::vector<uint8_t>& out) {
    while (out.size() + 12 < 1200) {
      out.push_back(kFrameFragment);
      out.push_back(static_cast<uint8_t>(nextChannel));
      Varint(out, nextSeq);
      Varint(out, 1101);
      Varint(out, 1);
      out.push_back(0xAA);
      if (++nextChannel == channels) {
        nextChannel = 0;
        if (++nextSeq == 1024) nextSeq = 1;
      }
    }
  });
  const uint64_t allocs0 = gAllocs;
  const double perPacket = ReceiveAll(p.b, packets, p.now);
  std::printf("fragflood channels=%3zu bound=%7llu: %8.0f ns/packet, allocs/packet %.1f, overBudget %llu, used %llu\n", channels,
              (unsigned long long)reassemblyBytes, perPacket, double(gAllocs - allocs0) / packets.size(),
              (unsigned long long)p.b.stats().overBudget, (unsigned long long)p.b.reassemblyUsed());
}

// ---- 5. hostile: packets of many PONG frames ----
static void PongFlood(int pongs) {
  Pair p(1, ChannelMode::kReliable);
  const auto packets = ForgedPackets(5000, 1000, [&](std::vector<uint8_t>& out) {
    for (int i = 0; i < pongs && out.size() + 16 < 1200; ++i) {
      out.push_back(kFramePong);
      out.push_back(0);
      Varint(out, p.now - 20000);  // echo
      Varint(out, 5000000 + i);    // remote received
      out.push_back(0);            // delay
    }
  });
  std::printf("pongflood pongs/packet=%3d: %8.0f ns/packet\n", pongs, ReceiveAll(p.b, packets, p.now));
}

// ---- 6. allocations per fragmented message received in order (reassembly) ----
static void FragmentedSteady(size_t size) {
  Pair p(1, ChannelMode::kReliable);
  std::vector<uint8_t> msg(size, 3);
  for (int i = 0; i < 200; ++i) {
    p.a.Send(0, msg.data(), msg.size(), p.now);
    for (int r = 0; r < 10; ++r) p.Step(2000);
  }
  const int n = 500;
  const uint64_t a0 = gAllocs, b0 = gAllocBytes;
  const uint64_t m0 = p.sb.messages;
  for (int i = 0; i < n; ++i) {
    p.a.Send(0, msg.data(), msg.size(), p.now);
    for (int r = 0; r < 10; ++r) p.Step(2000);
  }
  std::printf("fragmented size=%zu: allocs/message %.2f, bytes/message %.0f (delivered %llu)\n", size, double(gAllocs - a0) / n,
              double(gAllocBytes - b0) / n, (unsigned long long)(p.sb.messages - m0));
}


// ---- 7. hostile: ACK frames against a large sent window, after the peer raised the packet threshold ----
static void AckWindow(bool raiseThreshold, size_t channels) {
  Pair p(channels, ChannelMode::kReliable);
  std::vector<uint8_t> msg(1000, 1);
  // Grow the window: b streams to a, a acknowledges (a proper peer).
  for (int r = 0; r < 400; ++r) {
    while (p.b.queuedBytes() < 2000000) p.b.Send(0, msg.data(), msg.size(), p.now);
    p.Step(5000);
  }
  if (raiseThreshold) {
    // Reorder one packet by 300: b declares it lost, then sees it acknowledged (spurious): threshold 256.
    for (int r = 0; r < 50; ++r) p.Step(5000);
    while (p.b.queuedBytes() < 2000000) p.b.Send(0, msg.data(), msg.size(), p.now);
    std::vector<Sink::Pkt> held;
    for (int s = 0; s < 100 && held.size() < 300; ++s) {
      p.now += 1000;
      p.b.Update(p.now);
      held.insert(held.end(), p.sb.packets.begin(), p.sb.packets.begin() + p.sb.count);
      p.sb.count = 0;
    }
    std::printf("  (reorder flight %zu packets, cwnd %llu)\n", held.size(), (unsigned long long)p.b.congestionWindow());
    if (held.size() < 2) return;
    for (size_t i = 1; i < held.size(); ++i) p.a.Receive(held[i].data, held[i].size, p.now);
    p.a.Flush(p.now);
    Pump(p.sa, p.b, p.now);
    p.a.Receive(held[0].data, held[0].size, p.now);
    p.a.Flush(p.now);
    Pump(p.sa, p.b, p.now);
    for (int r = 0; r < 10; ++r) p.Step(5000);
  }
  // Everything settled; now a flight that the hostile peer will not let settle.
  for (int r = 0; r < 50; ++r) p.Step(5000);
  while (p.b.queuedBytes() < 4000000) p.b.Send(0, msg.data(), msg.size(), p.now);
  const uint64_t first = p.b.stats().packetsOut;
  size_t flight = 0;
  for (int s = 0; s < 100 && flight < 400; ++s) {
    p.now += 1000;
    p.b.Update(p.now);
    flight += p.sb.count;
    p.sb.count = 0;
  }
  const uint64_t span = raiseThreshold ? 255 : 2;
  const auto packets = ForgedPackets(2000, 10000000, [&](std::vector<uint8_t>& out) {
    while (out.size() + 12 < 1200) {
      out.push_back(kFrameAck);
      Varint(out, first + span);  // largest
      out.push_back(0);           // delay
      Varint(out, span - 1);      // first range
      out.push_back(0);           // count
    }
  });
  const double perPacket = ReceiveAll(p.b, packets, p.now);
  std::printf("ackwindow raise=%d channels=%3zu: cwnd %llu, flight %zu packets, %8.0f ns/packet, lost %llu, spurious %llu\n", raiseThreshold,
              channels, (unsigned long long)p.b.congestionWindow(), flight, perPacket, (unsigned long long)p.b.stats().packetsLost,
              (unsigned long long)p.b.stats().spuriousLosses);
}

// ---- 8. an idle peer's timer firing on a server (ServerCore::SlotTimer -> PeerTimer -> Update, AfterDelivery
// (WriteLinkStats' QueueDelayUs, NextDeadlineUs), SlotTimer's PeerDeadlineUs, ScheduleSlot's PeerDeadlineUs) ----
static void TimerFiring(size_t channels) {
  Pair p(channels, ChannelMode::kReliable);
  const int n = 200000;
  uint64_t sink = 0;
  const double t0 = NowNs();
  for (int i = 0; i < n; ++i) {
    p.b.Update(p.now);
    sink += p.b.QueueDelayUs(p.now);
    sink += p.b.NextDeadlineUs(p.now);
    sink += p.b.NextDeadlineUs(p.now);
    sink += p.b.NextDeadlineUs(p.now);
  }
  const double t1 = NowNs();
  p.sb.count = 0;
  std::printf("timer   channels=%3zu: %6.0f ns per idle peer timer firing (delivery part)\n", channels, (t1 - t0) / n);
  (void)sink;
}

// ---- 9. hostile: a full bound, one incomplete unreliable message kept going, and frames that each try to
// start another (refused for the bound), vs channel count: nothing walks every channel's slots per frame ----
static void AppendFragment(std::vector<uint8_t>& out, size_t channel, uint64_t sequence, uint64_t length, uint64_t index) {
  out.push_back(kFrameFragment);
  out.push_back(static_cast<uint8_t>(channel));
  Varint(out, sequence);
  Varint(out, length);
  Varint(out, index);
  out.insert(out.end(), std::min<uint64_t>(kFragmentBytes, length - index * kFragmentBytes), 0x55);
}

// A packet from a peer with the same channels, which sends its settings in each (it has no pong yet).
static std::vector<uint8_t> PeerPacket(const DeliveryConfig& config, uint64_t number) {
  std::vector<uint8_t> out{kPacketMarker};
  Varint(out, number);
  out.push_back(kFrameSettings);
  out.push_back(0);
  Varint(out, config.maxMessageBytes);
  Varint(out, config.channels.size());
  for (const ChannelMode mode : config.channels) out.push_back(static_cast<uint8_t>(mode));
  return out;
}

// What the reassembly bound counts for a message of `length` held.
static uint64_t HeldCost(uint64_t length) { return DeliveryCore::HeldCost(length, std::max<uint64_t>(1, FragmentCount(length))); }

// Two reliable messages on channel 0 after one never sent fill the reassembly bound but for `room` bytes, for good.
template <typename MakePacket>
static void FillBound(Core& core, const DeliveryConfig& config, MakePacket& packet, uint64_t room, uint64_t now) {
  const uint64_t bound = config.maxMessageBytes + (config.reassemblyBytes != 0 ? config.reassemblyBytes : uint64_t{1} << 20);
  uint64_t second = bound - HeldCost(uint64_t{1} << 20) - room;  // what fills the bound to the byte, its own flags and overhead too
  while (HeldCost(second) > bound - HeldCost(uint64_t{1} << 20) - room) --second;
  const uint64_t fill[] = {uint64_t{1} << 20, second};
  for (uint64_t sequence = 1; sequence <= 2; ++sequence) {
    std::vector<uint8_t> out = packet();
    AppendFragment(out, 0, sequence, fill[sequence - 1], 0);
    core.Receive(out.data(), out.size(), now);
  }
}

static void RefusedStarts(size_t channels, bool keptGoing) {
  DeliveryConfig config = Config(channels, ChannelMode::kUnreliable, true);
  config.channels[0] = ChannelMode::kReliable;
  Sink sink;
  Core core(config, &sink, nullptr);
  uint64_t number = 0;
  const auto packet = [&] { return PeerPacket(config, number++); };
  const uint64_t now = 10000000;
  const uint64_t kept = keptGoing ? 5 * kFragmentBytes + 1 : 0;
  std::vector<uint8_t> out = packet();
  if (keptGoing) AppendFragment(out, 1, 100, kept, 0);
  core.Receive(out.data(), out.size(), now);
  FillBound(core, config, packet, keptGoing ? HeldCost(kept) : 0, now);
  std::vector<std::vector<uint8_t>> attack;
  for (int k = 0; k < 2000; ++k) {
    out = packet();
    for (size_t c = 1; out.size() + 8 <= kMaxPacketBytes; c = c + 1 == channels ? 1 : c + 1) AppendFragment(out, c, 0, kFragmentBytes + 2, 1);
    attack.push_back(std::move(out));
  }
  const uint64_t refused0 = core.stats().overBudget, scans0 = core.stats().partialScans;
  const double perPacket = ReceiveAll(core, attack, now + 1000);
  std::printf("refused channels=%3zu kept=%d: %8.0f ns/packet, overBudget +%llu, walks +%llu\n", channels, keptGoing, perPacket,
              (unsigned long long)(core.stats().overBudget - refused0), (unsigned long long)(core.stats().partialScans - scans0));
}

// ---- 10. hostile: a bound kept full but for one queue's growth, and frames that grow a reliable channel's
// queue past its first slots and drain it, channel after channel: each growth finds the last channel's slots
// to give back. Its cost per packet vs channel count: giving them back walks the drained queues, not every channel ----
static void AppendMessage(std::vector<uint8_t>& out, size_t channel, uint64_t sequence) {
  out.push_back(kFrameMessage);
  out.push_back(static_cast<uint8_t>(channel));
  Varint(out, sequence);
  Varint(out, 1);
  out.push_back(0x55);
}

static void DrainedQueues(size_t channels) {
  DeliveryConfig config = Config(channels, ChannelMode::kReliable, true);
  Sink sink;
  Core core(config, &sink, nullptr);
  uint64_t number = 0;
  const auto packet = [&] { return PeerPacket(config, number++); };
  const uint64_t now = 10000000;
  // Room for one queue's growth from its first slots to twice as many, and a few bytes.
  FillBound(core, config, packet, Ring<int>::kFirstCapacity * DeliveryCore::receiveSlotBytes() + HeldCost(64), now);
  std::vector<uint64_t> next(channels, 0);
  std::vector<std::vector<uint8_t>> attack;
  size_t channel = 1;
  for (int k = 0; k < 2000; ++k) {
    std::vector<uint8_t> out = packet();
    // Per channel: the message past its first slots (the queue grows), then the ones before it (it drains).
    while (out.size() + 6 * 6 <= kMaxPacketBytes) {
      const uint64_t base = next[channel];
      AppendMessage(out, channel, base + Ring<int>::kFirstCapacity);
      for (uint64_t s = base; s < base + Ring<int>::kFirstCapacity; ++s) AppendMessage(out, channel, s);
      next[channel] = base + Ring<int>::kFirstCapacity + 1;
      channel = channel + 1 == channels ? 1 : channel + 1;
    }
    attack.push_back(std::move(out));
  }
  const uint64_t messages0 = sink.messages, refused0 = core.stats().overBudget;
  const double perPacket = ReceiveAll(core, attack, now + 1000);
  std::printf("drained channels=%3zu: %8.0f ns/packet, delivered %.1f messages/packet, overBudget +%llu\n", channels, perPacket,
              static_cast<double>(sink.messages - messages0) / static_cast<double>(attack.size()),
              (unsigned long long)(core.stats().overBudget - refused0));
}

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "all";
  if (which == "all" || which == "steady") {
    for (size_t c : {1, 16, 255}) SteadyState(c, ChannelMode::kReliable);
    for (size_t c : {1, 16, 255}) SteadyState(c, ChannelMode::kUnreliable);
  }
  if (which == "all" || which == "idle") {
    for (size_t c : {1, 16, 255}) IdleCalls(c, ChannelMode::kReliable, false);
    for (size_t c : {1, 16, 255}) IdleCalls(c, ChannelMode::kUnreliable, true);
  }
  if (which == "all" || which == "ack") {
    for (size_t c : {1, 255})
      for (int f : {1, 10, 100, 300}) AckFlood(c, f);
  }
  if (which == "all" || which == "frag") {
    for (size_t c : {1, 16, 255}) FragmentFlood(c, 0);
  }
  if (which == "all" || which == "pong") {
    for (int n : {1, 10, 100}) PongFlood(n);
  }
  if (which == "all" || which == "fragsteady") {
    for (size_t s : {2000, 20000, 200000}) FragmentedSteady(s);
  }
  if (which == "all" || which == "ackwindow") {
    AckWindow(false, 1);
    AckWindow(true, 1);
  }
  if (which == "all" || which == "timer") {
    for (size_t c : {1, 16, 255}) TimerFiring(c);
  }
  if (which == "all" || which == "refused") {
    for (size_t c : {2, 16, 255})
      for (bool kept : {false, true}) RefusedStarts(c, kept);
  }
  if (which == "all" || which == "drained") {
    for (size_t c : {2, 16, 255}) DrainedQueues(c);
  }
  return 0;
}
