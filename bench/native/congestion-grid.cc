// The delivery layer's congestion control over one simulated path (native/protocol/delivery/), sans-IO, on a
// fake clock that jumps from event to event: one or two flows, each a sender core that always has reliable
// data queued and a receiver core, share a bottleneck link (a rate, a FIFO tail-drop queue) towards the
// receivers; the acknowledgements come back over an unlimited path. Both ways lose packets at random (a lossy
// radio link: a forward packet is lost after it used the link). Prints one JSON object: goodput against the
// link's rate, the queueing delay, the senders' counters and, for two flows, how fairly they share.
// bench/congestion.ts runs it over a grid of paths. From the repository's root:
//   g++ -std=c++17 -O2 -Wall -Wextra -Inative -o bench/.build/congestion-grid bench/native/congestion-grid.cc
//       native/protocol/delivery/delivery_*.cc native/protocol/delivery/reassembly_budget.cc -l:libsodium.a
//   bench/.build/congestion-grid --loss 0.05 --mbps 10 --rtt-ms 20 [--queue-ms Q] [--flows 1|2]
//       [--second-start-ms S] [--seconds T] [--warmup-s W] [--seed N] [--message-bytes B] [--reassembly-bytes R]
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "protocol/delivery/delivery.h"

using namespace volley::delivery;

namespace {

// The fake clock starts here, not at 0: the cores take a time of 0 for "never".
constexpr uint64_t kOriginUs = 1000000;
// What a packet costs the link beyond the delivery layer's bytes: netcode's prefix, sequence and MAC (20)
// and the IPv4 and UDP headers (28).
constexpr uint64_t kLinkOverheadBytes = 48;
// Delivered bytes are counted per millisecond, so that any window of whole milliseconds can be summed.
constexpr uint64_t kBinUs = 1000;
// A run that takes more steps than this is stuck (a deadline that never moves): it stops and says so.
constexpr uint64_t kMaxIterations = 200000000;
// Each sender keeps its send queue full, so that it is never limited by what the application sends. A
// message stays queued until acknowledged whole: at 30 % loss and 200 ms, messages waiting for a fragment
// sent again hold megabytes, and a queue kept at "in flight + 4 MiB" ran short of new data.
constexpr uint64_t kSendQueueBytes = 64 << 20;
// The receivers' reassembly bound unless told otherwise: past what a flight holds on these paths, so that
// the sender's window, not the receiver's memory, limits the flow (the core's default, 2 MiB, refuses data
// at 100 Mbit/s and 200 ms).
constexpr uint64_t kReassemblyBytes = 64 << 20;

const char kUsage[] =
    "usage: congestion-grid --loss P --mbps M --rtt-ms R [--queue-ms Q] [--flows 1|2] [--second-start-ms S]\n"
    "                       [--seconds T] [--warmup-s W] [--seed N] [--message-bytes B] [--reassembly-bytes R]\n"
    "  --loss P             random loss each way, a probability from 0 to 0.9 (5 % is 0.05)\n"
    "  --mbps M             the bottleneck's rate towards the receivers, Mbit/s\n"
    "  --rtt-ms R           the round trip's propagation delay, ms (half each way)\n"
    "  --queue-ms Q         the bottleneck's queue, in ms of its rate (default max(50 ms, R): one BDP or more)\n"
    "  --flows N            1, or 2 flows sharing the bottleneck (default 1)\n"
    "  --second-start-ms S  when the second flow starts (default 2000)\n"
    "  --seconds T          simulated time (default 25; two flows: S + 20 s)\n"
    "  --warmup-s W         goodput and queueing delay are measured from W s on (default 5)\n"
    "  --seed N             the seed of the random losses (default 1)\n"
    "  --message-bytes B    the size of the reliable messages the senders queue (default 65536)\n"
    "  --reassembly-bytes R the receivers' reassembly bound (default 64 MiB; 0: the core's own default)\n";

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "congestion-grid: %s\n\n%s", message.c_str(), kUsage);
  std::exit(2);
}

double NumberArgument(const std::string& name, const char* text, double min, double max) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(value) || value < min || value > max) {
    char range[64];
    std::snprintf(range, sizeof range, "from %g to %g", min, max);
    Fail(name + " must be a number " + range + ", not '" + text + "'");
  }
  return value;
}

struct Options {
  double loss = -1;
  double mbps = 0;
  double rttMs = -1;
  double queueMs = -1;  // < 0: max(50 ms, the RTT)
  int flows = 1;
  double secondStartMs = 2000;
  double seconds = -1;  // < 0: the default for the number of flows
  double warmupSeconds = 5;
  uint64_t seed = 1;
  size_t messageBytes = 64 * 1024;
  uint64_t reassemblyBytes = kReassemblyBytes;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) Fail(name + " takes a value");
    const char* value = argv[++i];
    if (name == "--loss") options.loss = NumberArgument(name, value, 0, 0.9);
    else if (name == "--mbps") options.mbps = NumberArgument(name, value, 0.01, 100000);
    else if (name == "--rtt-ms") options.rttMs = NumberArgument(name, value, 0.01, 10000);
    else if (name == "--queue-ms") options.queueMs = NumberArgument(name, value, 0, 100000);
    else if (name == "--flows") options.flows = static_cast<int>(NumberArgument(name, value, 1, 2));
    else if (name == "--second-start-ms") options.secondStartMs = NumberArgument(name, value, 0, 3600000);
    else if (name == "--seconds") options.seconds = NumberArgument(name, value, 0.1, 3600);
    else if (name == "--warmup-s") options.warmupSeconds = NumberArgument(name, value, 0, 3600);
    else if (name == "--seed") options.seed = static_cast<uint64_t>(NumberArgument(name, value, 0, 1e15));
    else if (name == "--message-bytes") options.messageBytes = static_cast<size_t>(NumberArgument(name, value, 1, 1 << 20));
    else if (name == "--reassembly-bytes") options.reassemblyBytes = static_cast<uint64_t>(NumberArgument(name, value, 0, 1 << 30));
    else Fail("unknown option " + name);
  }
  if (options.loss < 0 || options.mbps == 0 || options.rttMs < 0) Fail("--loss, --mbps and --rtt-ms are required");
  if (options.flows != 1 && options.flows != 2) Fail("--flows must be 1 or 2");
  if (options.seconds < 0) options.seconds = options.flows == 2 ? options.secondStartMs / 1000 + 20 : 25;
  if (options.warmupSeconds >= options.seconds) Fail("--warmup-s must be less than --seconds");
  return options;
}

// splitmix64: one stream of draws for every random loss of a run, so that a seed replays it.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  bool Chance(double probability) { return probability > 0 && Uniform() < probability; }

 private:
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

// A first-in first-out queue in a ring that doubles when full and keeps its slots: no allocation in steady state.
template <typename T>
class Fifo {
 public:
  Fifo() : slots_(1024) {}
  bool empty() const { return head_ == tail_; }
  T& front() { return slots_[head_ & (slots_.size() - 1)]; }
  const T& front() const { return slots_[head_ & (slots_.size() - 1)]; }
  void pop() { ++head_; }
  // The slot of a new last entry, for the caller to fill.
  T& push() {
    if (tail_ - head_ == slots_.size()) Grow();
    return slots_[tail_++ & (slots_.size() - 1)];
  }

 private:
  void Grow() {
    std::vector<T> grown(slots_.size() * 2);
    for (size_t i = head_; i != tail_; ++i) grown[i & (grown.size() - 1)] = slots_[i & (slots_.size() - 1)];
    slots_.swap(grown);
  }
  std::vector<T> slots_;
  size_t head_ = 0, tail_ = 0;
};

// A packet on its way, copied: the buffer PollPacket gives is reused by the next.
struct PacketInFlight {
  uint64_t arrivalUs;
  uint32_t flow;
  uint32_t size;
  uint8_t data[kMaxPacketBytes];
};

// The bottleneck: a link of a fixed rate behind a FIFO queue that drops what arrives to find it full.
class Bottleneck {
 public:
  Bottleneck(double bytesPerUs, uint64_t queueBytes) : bytesPerUs_(bytesPerUs), queueBytes_(queueBytes) {}

  // A packet of `size` link bytes arrives at nowUs: false when the queue has no room for it, else when it
  // starts on the link (its queueing delay ends) and when it has left it.
  bool Admit(uint64_t nowUs, uint64_t size, double* startUs, double* departureUs) {
    const double now = static_cast<double>(nowUs);
    while (!waiting_.empty() && waiting_.front().startUs <= now) {
      waitingBytes_ -= waiting_.front().size;
      waiting_.pop();
    }
    if (waitingBytes_ + size > queueBytes_) return false;
    // Kept in fractions of a microsecond: rounding each packet's time would drift the rate.
    *startUs = std::max(now, freeUs_);
    freeUs_ = *startUs + static_cast<double>(size) / bytesPerUs_;
    *departureUs = freeUs_;
    if (*startUs > now) {
      Waiting& entry = waiting_.push();
      entry = {*startUs, size};
      waitingBytes_ += size;
    }
    return true;
  }

 private:
  struct Waiting {
    double startUs;
    uint64_t size;
  };
  double bytesPerUs_;
  uint64_t queueBytes_;
  double freeUs_ = 0;  // when the link has sent every packet admitted
  Fifo<Waiting> waiting_;  // admitted, not yet started: what the queue holds
  uint64_t waitingBytes_ = 0;
};

DeliveryConfig FlowConfig(bool receiver, uint64_t reassemblyBytes) {
  DeliveryConfig config;
  config.channels = {ChannelMode::kReliable};
  config.followsPings = receiver;
  config.sendQueueBytes = kSendQueueBytes;
  config.reassemblyBytes = reassemblyBytes;
  return config;
}

// A sender and its receiver, the path back from the receiver, and what the receiver delivered when.
struct Flow {
  Flow(int index, uint64_t startUs, uint64_t bins, uint64_t reassemblyBytes)
      : sender(FlowConfig(false, 0), SkipKey(index, 1).data()), receiver(FlowConfig(true, reassemblyBytes), SkipKey(index, 2).data()),
        startUs(startUs), deliveredByBin(bins, 0) {}
  // Any 16 bytes will do, another for each core (the core copies them).
  static std::array<uint8_t, kPacketSkipKeyBytes> SkipKey(int flow, int side) {
    std::array<uint8_t, kPacketSkipKeyBytes> key{};
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(32 * flow + 16 * side + 7 * i + 1);
    return key;
  }
  DeliveryCore sender, receiver;
  uint64_t startUs;
  bool started = false;
  Fifo<PacketInFlight> toSender;
  std::vector<uint64_t> deliveredByBin;  // message bytes delivered, per kBinUs from the origin
  uint64_t ackPacketsSent = 0, ackRandomLosses = 0;
};

// Jain's fairness index of the flows' shares: 1 when equal, 1/n when one takes everything; NaN when none got any.
double Jain(const std::vector<double>& shares) {
  double sum = 0, squares = 0;
  for (const double share : shares) {
    sum += share;
    squares += share * share;
  }
  return squares > 0 ? sum * sum / (static_cast<double>(shares.size()) * squares) : NAN;
}

double Percentile(std::vector<uint32_t>& values, double p) {
  if (values.empty()) return NAN;
  // Nearest rank: the ⌈p·n⌉-th smallest (as bench/lib/statistics.ts takes it).
  const size_t rank = std::min(values.size(), static_cast<size_t>(std::max(1.0, std::ceil(p * static_cast<double>(values.size()))))) - 1;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank), values.end());
  return values[rank];
}

// One JSON object written as it goes; NaN and infinities become null.
class JsonWriter {
 public:
  JsonWriter() { std::fputc('{', stdout); }
  ~JsonWriter() { std::fputs("}\n", stdout); }
  void Number(const char* key, double value) {
    Key(key);
    Value(value);
  }
  void Integer(const char* key, uint64_t value) {
    Key(key);
    std::printf("%llu", static_cast<unsigned long long>(value));
  }
  void Bool(const char* key, bool value) {
    Key(key);
    std::fputs(value ? "true" : "false", stdout);
  }
  void Numbers(const char* key, const std::vector<double>& values) {
    Key(key);
    List(values);
  }
  void NumberLists(const char* key, const std::vector<std::vector<double>>& lists) {
    Key(key);
    std::fputc('[', stdout);
    for (size_t i = 0; i < lists.size(); ++i) {
      if (i > 0) std::fputc(',', stdout);
      List(lists[i]);
    }
    std::fputc(']', stdout);
  }
  // An object or a list of objects: open it, write its members, close it.
  void Open(const char* key, char bracket) {
    if (key != nullptr) Key(key);
    else if (!first_) std::fputc(',', stdout);
    std::fputc(bracket, stdout);
    first_ = true;
  }
  void Close(char bracket) {
    std::fputc(bracket, stdout);
    first_ = false;
  }

 private:
  void Key(const char* key) {
    if (!first_) std::fputc(',', stdout);
    first_ = false;
    std::printf("\"%s\":", key);
  }
  static void Value(double value) {
    if (std::isfinite(value)) std::printf("%.6g", value);
    else std::fputs("null", stdout);
  }
  static void List(const std::vector<double>& values) {
    std::fputc('[', stdout);
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) std::fputc(',', stdout);
      Value(values[i]);
    }
    std::fputc(']', stdout);
  }
  bool first_ = true;
};

class Simulation {
 public:
  explicit Simulation(const Options& options)
      : options_(options),
        bytesPerUs_(options.mbps / 8),
        rttUs_(static_cast<uint64_t>(std::llround(options.rttMs * 1000))),
        queueBytes_(static_cast<uint64_t>(bytesPerUs_ * 1000 * (options.queueMs >= 0 ? options.queueMs : std::max(50.0, options.rttMs)))),
        endUs_(kOriginUs + static_cast<uint64_t>(std::llround(options.seconds * 1e6))),
        warmupEndUs_(kOriginUs + static_cast<uint64_t>(std::llround(options.warmupSeconds * 1e6))),
        link_(bytesPerUs_, queueBytes_),
        random_(options.seed),
        message_(options.messageBytes, 0x5a) {
    const uint64_t bins = (endUs_ - kOriginUs) / kBinUs + 1;
    for (int k = 0; k < options.flows; ++k) {
      const uint64_t startUs = kOriginUs + (k == 0 ? 0 : static_cast<uint64_t>(std::llround(options.secondStartMs * 1000)));
      flows_.push_back(std::make_unique<Flow>(k, startUs, bins, options.reassemblyBytes));
    }
    // One delay per packet admitted after the warm-up: room for packets of 500 bytes at the link's full rate.
    queueDelaysUs_.reserve(static_cast<size_t>(bytesPerUs_ * static_cast<double>(endUs_ - warmupEndUs_) / 500));
  }

  void Run() {
    const auto wallStart = std::chrono::steady_clock::now();
    const std::clock_t cpuStart = std::clock();
    uint64_t now = kOriginUs;
    while (now < endUs_) {
      if (++iterations_ > kMaxIterations) {
        timedOut_ = true;
        break;
      }
      ArriveAtReceivers(now);
      for (size_t k = 0; k < flows_.size(); ++k) {
        Flow& flow = *flows_[k];
        if (!flow.started && now >= flow.startUs) flow.started = true;
        if (!flow.started) continue;
        ArriveAtSender(flow, k, now);
        KeepQueued(flow, now);
        flow.sender.Update(now);
        SendFromSender(flow, k, now);
        flow.receiver.Update(now);
        SendFromReceiver(flow, now);
      }
      now = NextEventUs(now);
    }
    wallSeconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
    cpuSeconds_ = static_cast<double>(std::clock() - cpuStart) / CLOCKS_PER_SEC;
  }

  void Report() {
    JsonWriter json;
    json.Open("inputs", '{');
    json.Number("loss", options_.loss);
    json.Number("mbps", options_.mbps);
    json.Number("rttMs", options_.rttMs);
    json.Integer("queueBytes", queueBytes_);
    json.Number("queueMs", static_cast<double>(queueBytes_) / bytesPerUs_ / 1000);
    json.Integer("flows", flows_.size());
    json.Number("secondStartMs", flows_.size() > 1 ? options_.secondStartMs : NAN);
    json.Number("seconds", options_.seconds);
    json.Number("warmup", options_.warmupSeconds);
    json.Integer("seed", options_.seed);
    json.Integer("messageBytes", options_.messageBytes);
    json.Integer("reassemblyBytes", options_.reassemblyBytes);
    json.Close('}');
    const double rateBytesPerSecond = bytesPerUs_ * 1e6;
    const double goodput = DeliveredBytes(warmupEndUs_, endUs_) / Seconds(warmupEndUs_, endUs_);
    json.Number("goodputBps", goodput);
    json.Number("goodputRatio", goodput / ((1 - options_.loss) * rateBytesPerSecond));
    json.Number("goodputRatioWhole", DeliveredBytes(kOriginUs, endUs_) / Seconds(kOriginUs, endUs_) / ((1 - options_.loss) * rateBytesPerSecond));
    json.Number("linkUtilization", static_cast<double>(linkBytesMeasured_) / (rateBytesPerSecond * Seconds(warmupEndUs_, endUs_)));
    json.Number("queueDelayP50Ms", Percentile(queueDelaysUs_, 0.5) / 1000);
    json.Number("queueDelayP99Ms", Percentile(queueDelaysUs_, 0.99) / 1000);
    json.Integer("packetsSent", packetsSent_);
    json.Integer("queueDrops", queueDrops_);
    json.Integer("randomLosses", randomLosses_);
    json.Open("flows", '[');
    for (const std::unique_ptr<Flow>& flow : flows_) ReportFlow(json, *flow);
    json.Close(']');
    if (flows_.size() > 1) ReportFairness(json);
    json.Integer("iterations", iterations_);
    json.Bool("timeout", timedOut_);
    json.Number("wallSeconds", wallSeconds_);
    json.Number("cpuSeconds", cpuSeconds_);
  }

 private:
  void ArriveAtReceivers(uint64_t now) {
    while (!toReceivers_.empty() && toReceivers_.front().arrivalUs <= now) {
      const PacketInFlight& packet = toReceivers_.front();
      Flow& flow = *flows_[packet.flow];
      flow.receiver.Receive(packet.data, packet.size, now);
      // Taken before the packet's slot is: a message may point into it.
      while (const DeliveredMessage* message = flow.receiver.PollMessage()) flow.deliveredByBin[(now - kOriginUs) / kBinUs] += message->size;
      toReceivers_.pop();
      SendFromReceiver(flow, now);
    }
  }

  void ArriveAtSender(Flow& flow, size_t index, uint64_t now) {
    while (!flow.toSender.empty() && flow.toSender.front().arrivalUs <= now) {
      const PacketInFlight& packet = flow.toSender.front();
      flow.sender.Receive(packet.data, packet.size, now);
      while (flow.sender.PollMessage() != nullptr) {
      }
      flow.toSender.pop();
      SendFromSender(flow, index, now);
    }
  }

  void KeepQueued(Flow& flow, uint64_t now) {
    while (flow.sender.Send(0, message_.data(), message_.size(), now) == SendResult::kQueued) {
    }
  }

  void SendFromSender(Flow& flow, size_t index, uint64_t now) {
    SendDuePackets(flow.sender, now, [&](const uint8_t* data, size_t size) {
      ++packetsSent_;
      const uint64_t linkSize = size + kLinkOverheadBytes;
      double startUs = 0, departureUs = 0;
      if (!link_.Admit(now, linkSize, &startUs, &departureUs)) {
        ++queueDrops_;
        return;
      }
      if (now >= warmupEndUs_) queueDelaysUs_.push_back(static_cast<uint32_t>(startUs - static_cast<double>(now)));
      if (departureUs >= static_cast<double>(warmupEndUs_) && departureUs <= static_cast<double>(endUs_)) linkBytesMeasured_ += linkSize;
      if (random_.Chance(options_.loss)) {
        ++randomLosses_;
        return;
      }
      PacketInFlight& packet = toReceivers_.push();
      packet.arrivalUs = static_cast<uint64_t>(std::ceil(departureUs)) + rttUs_ / 2;
      packet.flow = static_cast<uint32_t>(index);
      packet.size = static_cast<uint32_t>(size);
      std::memcpy(packet.data, data, size);
    });
  }

  void SendFromReceiver(Flow& flow, uint64_t now) {
    SendDuePackets(flow.receiver, now, [&](const uint8_t* data, size_t size) {
      ++flow.ackPacketsSent;
      if (random_.Chance(options_.loss)) {
        ++flow.ackRandomLosses;
        return;
      }
      PacketInFlight& packet = flow.toSender.push();
      packet.arrivalUs = now + rttUs_ / 2;
      packet.size = static_cast<uint32_t>(size);
      std::memcpy(packet.data, data, size);
    });
  }

  uint64_t NextEventUs(uint64_t now) const {
    uint64_t next = endUs_;
    if (!toReceivers_.empty()) next = std::min(next, toReceivers_.front().arrivalUs);
    for (const std::unique_ptr<Flow>& flow : flows_) {
      if (!flow->started) {
        next = std::min(next, flow->startUs);
        continue;
      }
      if (!flow->toSender.empty()) next = std::min(next, flow->toSender.front().arrivalUs);
      next = std::min({next, flow->sender.NextDeadlineUs(now), flow->receiver.NextDeadlineUs(now)});
    }
    // A deadline already due after this step's work (a drain cut short): the next microsecond, not a spin.
    return next > now ? next : now + 1;
  }

  double DeliveredBytes(const Flow& flow, uint64_t fromUs, uint64_t toUs) const {
    uint64_t bytes = 0;
    for (uint64_t bin = (fromUs - kOriginUs) / kBinUs; bin < (toUs - kOriginUs) / kBinUs && bin < flow.deliveredByBin.size(); ++bin) {
      bytes += flow.deliveredByBin[bin];
    }
    return static_cast<double>(bytes);
  }
  double DeliveredBytes(uint64_t fromUs, uint64_t toUs) const {
    double bytes = 0;
    for (const std::unique_ptr<Flow>& flow : flows_) bytes += DeliveredBytes(*flow, fromUs, toUs);
    return bytes;
  }
  static double Seconds(uint64_t fromUs, uint64_t toUs) { return static_cast<double>(toUs - fromUs) / 1e6; }

  // A flow's goodput per second of the run, from its start to the end (Mbit/s, the last second whole or not at all).
  std::vector<double> MbpsBySecond(const Flow& flow, uint64_t fromUs) const {
    std::vector<double> series;
    for (uint64_t t = fromUs; t + 1000000 <= endUs_; t += 1000000) series.push_back(DeliveredBytes(flow, t, t + 1000000) * 8 / 1e6);
    return series;
  }

  void ReportFlow(JsonWriter& json, const Flow& flow) const {
    const DeliveryStats& stats = flow.sender.stats();
    json.Open(nullptr, '{');
    json.Number("startMs", static_cast<double>(flow.startUs - kOriginUs) / 1000);
    const uint64_t measuredFromUs = std::max(warmupEndUs_, flow.startUs);
    json.Number("goodputBps", measuredFromUs < endUs_ ? DeliveredBytes(flow, measuredFromUs, endUs_) / Seconds(measuredFromUs, endUs_) : NAN);
    json.Numbers("goodputMbpsBySecond", MbpsBySecond(flow, flow.startUs));
    json.Integer("packetsOut", stats.packetsOut);
    json.Integer("packetsLost", stats.packetsLost);
    json.Integer("resends", stats.resends);
    json.Integer("spuriousLosses", stats.spuriousLosses);
    json.Integer("probeTimeouts", stats.probeTimeouts);
    json.Integer("persistentCongestion", stats.persistentCongestion);
    json.Integer("rttDrains", stats.rttDrains);
    json.Integer("congestionWindow", flow.sender.congestionWindow());
    json.Number("bandwidthBps", flow.sender.bandwidthBytesPerUs() * 1e6);
    json.Integer("pathMinRttUs", flow.sender.rtt().pathMinUs());
    json.Integer("smoothedRttUs", flow.sender.rtt().smoothedUs());
    json.Integer("ackPacketsSent", flow.ackPacketsSent);
    json.Integer("ackRandomLosses", flow.ackRandomLosses);
    // The receiver refuses data past its reassembly bound (not acknowledged: sent again): a window of its own.
    json.Integer("receiverOverBudget", flow.receiver.stats().overBudget);
    json.Integer("receiverDuplicatePackets", flow.receiver.stats().duplicatePackets);
    json.Close('}');
  }

  void ReportFairness(JsonWriter& json) const {
    const uint64_t secondStartUs = flows_[1]->startUs;
    std::vector<std::vector<double>> bySecond;
    for (const std::unique_ptr<Flow>& flow : flows_) bySecond.push_back(MbpsBySecond(*flow, secondStartUs));
    std::vector<double> jainBySecond;
    for (size_t second = 0; second < bySecond[0].size(); ++second) {
      std::vector<double> shares;
      for (const std::vector<double>& series : bySecond) shares.push_back(series[second]);
      jainBySecond.push_back(Jain(shares));
    }
    // Fair from the first second of the last run of seconds each at 0.9 or more, to the end.
    double secondsToFair = NAN;
    for (size_t second = jainBySecond.size(); second > 0 && jainBySecond[second - 1] >= 0.9; --second) secondsToFair = static_cast<double>(second - 1);
    const uint64_t settledUs = secondStartUs + 10000000;
    std::vector<double> settled;
    for (const std::unique_ptr<Flow>& flow : flows_) settled.push_back(settledUs < endUs_ ? DeliveredBytes(*flow, settledUs, endUs_) : 0);
    json.Open("fairness", '{');
    json.Number("jain", Jain(settled));
    json.Numbers("jainBySecond", jainBySecond);
    json.Number("secondsToFair", secondsToFair);
    json.NumberLists("goodputMbpsBySecond", bySecond);
    json.Close('}');
  }

  const Options options_;
  const double bytesPerUs_;
  const uint64_t rttUs_;
  const uint64_t queueBytes_;
  const uint64_t endUs_, warmupEndUs_;
  Bottleneck link_;
  Random random_;
  const std::vector<uint8_t> message_;
  std::vector<std::unique_ptr<Flow>> flows_;
  Fifo<PacketInFlight> toReceivers_;  // the packets past the bottleneck, in order of arrival (its FIFO keeps it)
  std::vector<uint32_t> queueDelaysUs_;  // of the packets admitted to the link after the warm-up
  uint64_t packetsSent_ = 0, queueDrops_ = 0, randomLosses_ = 0, linkBytesMeasured_ = 0;
  uint64_t iterations_ = 0;
  bool timedOut_ = false;
  double wallSeconds_ = 0, cpuSeconds_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Simulation simulation(ParseOptions(argc, argv));
  simulation.Run();
  simulation.Report();
  return 0;
}
