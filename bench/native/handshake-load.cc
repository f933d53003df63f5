// The handshake load of the connections benchmark at full speed: many netcode clients (volley's own
// sans-IO ClientCore, native/protocol/netcode/client.*) in one C++ process, so that the server under test, not the
// load generator, sets the handshake rate.
//
// Every client has an address of its own, as clients on other hosts would, but they share one socket:
// client i sends from 127.x.y.z (any address in 127.0.0.0/8 is this host's) with the source chosen per
// datagram (IP_PKTINFO), and the replies, all to the socket's port, say which address they were sent to.
// So the load takes batches of 64 datagrams per system call (sendmmsg, recvmmsg) and no socket per
// client; a socket per client cost the load more than the server's whole handshake, and its wake-ups
// were charged to the server's sends on loopback.
//
//   handshake-load --tokens <file> --concurrency <n> [--keep-alive-ms <n>]
//
// <file> holds the 2048-byte connect tokens back to back (servers at IPv4 addresses). Every client
// connects (at most <concurrency> handshakes at a time); then one JSON line goes to stdout:
//   {"type":"connected","connected":n,"failed":{"<state>":n},"ms":t,"cpuUs":c,"processCpuUs":p}
// (cpuUs: the connecting alone; processCpuUs: everything since the process started, reading the tokens
// included, which the runner counts as the load's when it looks for other work on the load's core)
// and the clients stay connected (keep-alives every --keep-alive-ms, default 10 s) until a line "leave"
// arrives on stdin: each sends its redundant disconnect packets (10 at 10 Hz), and {"type":"left"} ends
// the run. Meanwhile "send <rate> <ms> <tick µs>" sends 64-byte payloads on the schedule of
// bench/native/paced-sender.c (every tick, those due by then, one per connected client in turn), then
// reports {"type":"sent","attempted":n,"sent":n,"notConnected":n,"ticks":n,"seconds":s,"cpuUs":c}: the
// same bursts as node:dgram's sender gives its receiver. Exit status 2 on bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "util/address.h"
#include "util/monotonic_clock.h"
#include "protocol/netcode/client.h"

namespace {

using volley::netcode::ClientCore;
using volley::netcode::ClientState;
using volley::netcode::Clock;
using volley::netcode::ServerAddress;

constexpr size_t kBatch = 64;
constexpr uint32_t kFirstAddress = (127u << 24) | (1u << 16);  // 127.1.0.0: clear of 127.0.0.1

uint64_t MonotonicUs() { return volley::MonotonicNs() / 1000; }

Clock Now() {
  return Clock{MonotonicUs(), static_cast<uint64_t>(time(nullptr))};
}

uint64_t CpuUs() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return uint64_t(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000u + uint64_t(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Datagrams waiting for one sendmmsg, each with its source address.
class Outbox {
 public:
  explicit Outbox(int fd) : fd_(fd) {}

  void Add(uint32_t source, const ServerAddress& to, const uint8_t* data, size_t size) {
    if (to.ip.family != 4 || size > sizeof(Entry::data)) return;
    if (count_ == kBatch) Flush();
    Entry& entry = entries_[count_++];
    std::memcpy(entry.data, data, size);
    entry.size = size;
    entry.to = sockaddr_in{};
    entry.to.sin_family = AF_INET;
    entry.to.sin_port = htons(to.port);
    std::memcpy(&entry.to.sin_addr, to.ip.bytes, 4);
    entry.source = source;
  }

  void Flush() {
    mmsghdr messages[kBatch];
    iovec vectors[kBatch];
    alignas(cmsghdr) uint8_t control[kBatch][CMSG_SPACE(sizeof(in_pktinfo))];
    for (size_t i = 0; i < count_; ++i) {
      Entry& entry = entries_[i];
      vectors[i] = iovec{entry.data, entry.size};
      messages[i] = mmsghdr{};
      messages[i].msg_hdr.msg_name = &entry.to;
      messages[i].msg_hdr.msg_namelen = sizeof(entry.to);
      messages[i].msg_hdr.msg_iov = &vectors[i];
      messages[i].msg_hdr.msg_iovlen = 1;
      messages[i].msg_hdr.msg_control = control[i];
      messages[i].msg_hdr.msg_controllen = sizeof(control[i]);
      cmsghdr* header = CMSG_FIRSTHDR(&messages[i].msg_hdr);
      header->cmsg_level = IPPROTO_IP;
      header->cmsg_type = IP_PKTINFO;
      header->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      info.ipi_spec_dst.s_addr = htonl(entry.source);
      std::memcpy(CMSG_DATA(header), &info, sizeof(info));
    }
    // A full socket buffer loses datagrams, as a network would: the clients' timers resend.
    for (size_t sent = 0; sent < count_;) {
      const int n = sendmmsg(fd_, messages + sent, static_cast<unsigned>(count_ - sent), 0);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    count_ = 0;
  }

 private:
  struct Entry {
    uint8_t data[1300];
    size_t size;
    sockaddr_in to;
    uint32_t source;
  };
  int fd_;
  Entry entries_[kBatch];
  size_t count_ = 0;
};

class LoadClient : public volley::netcode::DatagramOut {
 public:
  LoadClient(Outbox* outbox, uint32_t address) : core(Config(), this), outbox_(outbox), address_(address) {}

  // Handshakes are measured with keep-alives every 10 s (--keep-alive-ms), so that the window holds
  // handshakes only.
  static uint64_t keepAliveIntervalUs;
  static volley::netcode::ClientConfig Config() {
    volley::netcode::ClientConfig config;
    config.keepAliveIntervalUs = keepAliveIntervalUs;
    return config;
  }

  void Send(const ServerAddress& to, const uint8_t* data, size_t size) override { outbox_->Add(address_, to, data, size); }
  // Its events after a call, taken as the engine takes them (state() says what this needs).
  void Poll() {
    volley::netcode::ClientEvent event;
    while (core.PollEvent(&event)) {
    }
  }

  ClientCore core;
  bool listening = true;  // reads what comes to its address (until connected)

 private:
  Outbox* outbox_;
  uint32_t address_;
};

uint64_t LoadClient::keepAliveIntervalUs = 10000000;

// Reads and drops what arrives for connected clients (the server's keep-alives), so that the socket's
// buffer never fills.
void DrainSocket(int fd) {
  static uint8_t sink[kBatch][64];
  mmsghdr messages[kBatch];
  iovec vectors[kBatch];
  for (;;) {
    for (size_t i = 0; i < kBatch; ++i) {
      vectors[i] = iovec{sink[i], sizeof(sink[i])};
      messages[i] = mmsghdr{};
      messages[i].msg_hdr.msg_iov = &vectors[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    if (recvmmsg(fd, messages, kBatch, MSG_DONTWAIT, nullptr) < static_cast<int>(kBatch)) return;
  }
}

// Sends 64-byte payloads at `rate` per second for `milliseconds`, as bench/native/paced-sender.c does:
// every tick the payloads due by then, one per connected client in turn. Prints the "sent" line.
void SendPayloads(int fd, Outbox* outbox, const std::vector<LoadClient*>& clients, uint64_t rate, uint64_t milliseconds, uint64_t tickUs) {
  std::vector<LoadClient*> connected;
  for (LoadClient* client : clients) {
    if (client->core.state() == ClientState::kConnected) connected.push_back(client);
  }
  uint8_t payload[64];
  for (size_t i = 0; i < sizeof(payload); ++i) payload[i] = 1;
  const uint64_t total = rate * milliseconds / 1000u;
  uint64_t attempted = 0, sent = 0, notConnected = 0, ticks = 0;
  size_t next = 0;
  const uint64_t startCpu = CpuUs(), startNs = volley::MonotonicNs();
  uint64_t nowNs = startNs;
  while (attempted < total && !connected.empty()) {
    const uint64_t elapsedNs = nowNs - startNs;
    uint64_t due = static_cast<uint64_t>(double(rate) * double(elapsedNs) / 1e9);
    if (due > total) due = total;
    const Clock now = Now();
    while (attempted < due) {
      LoadClient& client = *connected[next];
      next = next + 1 == connected.size() ? 0 : next + 1;
      ++attempted;
      if (client.core.SendPayload(payload, sizeof(payload), now)) ++sent;
      else ++notConnected;
      client.Poll();
    }
    outbox->Flush();
    ++ticks;
    if (attempted >= total) break;
    DrainSocket(fd);
    const uint64_t wake = startNs + (elapsedNs / (tickUs * 1000u) + 1) * tickUs * 1000u;
    const timespec until{static_cast<time_t>(wake / 1000000000u), static_cast<long>(wake % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) == EINTR) {
    }
    nowNs = volley::MonotonicNs();
  }
  const double seconds = double(volley::MonotonicNs() - startNs) / 1e9;
  std::printf("{\"type\":\"sent\",\"attempted\":%llu,\"sent\":%llu,\"notConnected\":%llu,\"ticks\":%llu,\"seconds\":%.6f,\"cpuUs\":%llu}\n",
              static_cast<unsigned long long>(attempted), static_cast<unsigned long long>(sent), static_cast<unsigned long long>(notConnected),
              static_cast<unsigned long long>(ticks), seconds, static_cast<unsigned long long>(CpuUs() - startCpu));
  std::fflush(stdout);
}

bool ReadTokens(const char* path, std::vector<uint8_t>* out) {
  FILE* file = std::fopen(path, "rb");
  if (file == nullptr) return false;
  uint8_t buffer[1 << 16];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), file)) > 0) out->insert(out->end(), buffer, buffer + read);
  std::fclose(file);
  return !out->empty() && out->size() % volley::netcode::kConnectTokenBytes == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* tokensPath = nullptr;
  long concurrency = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--tokens") == 0) tokensPath = argv[i + 1];
    if (std::strcmp(argv[i], "--concurrency") == 0) concurrency = std::strtol(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--keep-alive-ms") == 0) {
      const long milliseconds = std::strtol(argv[i + 1], nullptr, 10);
      LoadClient::keepAliveIntervalUs = milliseconds > 0 ? uint64_t(milliseconds) * 1000u : 0;
    }
  }
  std::vector<uint8_t> tokens;
  if (tokensPath == nullptr || concurrency < 1 || LoadClient::keepAliveIntervalUs == 0 || !ReadTokens(tokensPath, &tokens)) {
    std::fprintf(stderr, "usage: handshake-load --tokens <file of 2048-byte tokens> --concurrency <n> [--keep-alive-ms <n>]\n");
    return 2;
  }
  if (sodium_init() < 0) return 1;
  // Never outlive a confused parent by much: a benchmark's longest phase with this load is minutes.
  alarm(1800);
  const size_t count = tokens.size() / volley::netcode::kConnectTokenBytes;
  if (count > (126u << 16)) {
    std::fprintf(stderr, "handshake-load: at most %u clients (addresses 127.1.0.0 to 127.126.255.255)\n", 126u << 16);
    return 2;
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int on = 1, buffer = 8 << 20;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on)) != 0 ||
      bind(fd, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0) {
    std::perror("handshake-load: socket");
    return 1;
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  Outbox outbox(fd);
  // Every client's memory is made and touched before the clock starts: page faults for hundreds of
  // megabytes of fresh memory would otherwise slow the load below the server's rate.
  using Storage = std::aligned_storage_t<sizeof(LoadClient), alignof(LoadClient)>;
  std::unique_ptr<Storage[]> storage(new Storage[count]());
  std::vector<LoadClient*> clients(count, nullptr);
  for (size_t i = 0; i < count; ++i) clients[i] = new (&storage[i]) LoadClient(&outbox, kFirstAddress + static_cast<uint32_t>(i));
  std::vector<uint32_t> connecting;  // indexes of the handshakes in flight
  std::map<std::string, uint64_t> failed;
  size_t next = 0, connected = 0, finished = 0;
  const uint64_t startUs = MonotonicUs(), startCpu = CpuUs();
  uint64_t lastUpdateUs = startUs;

  struct Received {
    uint8_t data[2048];
    sockaddr_in from;
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(in_pktinfo)) + 64];
  };
  std::vector<Received> received(kBatch);
  mmsghdr messages[kBatch];
  iovec vectors[kBatch];

  while (finished < count) {
    while (connecting.size() < size_t(concurrency) && next < count) {
      clients[next]->core.Connect(tokens.data() + next * volley::netcode::kConnectTokenBytes, volley::netcode::kConnectTokenBytes, Now());
      clients[next]->Poll();
      connecting.push_back(static_cast<uint32_t>(next));
      ++next;
    }
    outbox.Flush();
    pollfd wait{fd, POLLIN, 0};
    poll(&wait, 1, 1);
    const Clock now = Now();
    for (;;) {
      for (size_t i = 0; i < kBatch; ++i) {
        vectors[i] = iovec{received[i].data, sizeof(received[i].data)};
        messages[i] = mmsghdr{};
        messages[i].msg_hdr.msg_name = &received[i].from;
        messages[i].msg_hdr.msg_namelen = sizeof(received[i].from);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = received[i].control;
        messages[i].msg_hdr.msg_controllen = sizeof(received[i].control);
      }
      const int n = recvmmsg(fd, messages, kBatch, 0, nullptr);
      if (n <= 0) break;
      for (int i = 0; i < n; ++i) {
        uint32_t to = 0;
        for (cmsghdr* header = CMSG_FIRSTHDR(&messages[i].msg_hdr); header != nullptr; header = CMSG_NXTHDR(&messages[i].msg_hdr, header)) {
          if (header->cmsg_level == IPPROTO_IP && header->cmsg_type == IP_PKTINFO) {
            in_pktinfo info;
            std::memcpy(&info, CMSG_DATA(header), sizeof(info));
            to = ntohl(info.ipi_addr.s_addr);
          }
        }
        if (to < kFirstAddress || to - kFirstAddress >= next) continue;
        LoadClient& client = *clients[to - kFirstAddress];
        if (!client.listening) continue;  // connected: its keep-alives are not read
        ServerAddress address;
        volley::FromSockaddr(&received[i].from, &address.ip, &address.port);
        client.core.Receive(address, received[i].data, messages[i].msg_len, now);
        client.Poll();
      }
      if (n < static_cast<int>(kBatch)) break;
    }
    const bool tick = now.monotonicUs - lastUpdateUs >= 10000;
    if (tick) lastUpdateUs = now.monotonicUs;
    for (size_t i = 0; i < connecting.size();) {
      LoadClient& client = *clients[connecting[i]];
      if (tick) {
        client.core.Update(now);
        client.Poll();
      }
      const ClientState state = client.core.state();
      if (state == ClientState::kSendingConnectionRequest || state == ClientState::kSendingConnectionResponse) {
        ++i;
        continue;
      }
      if (state == ClientState::kConnected) {
        ++connected;
      } else {
        ++failed[volley::netcode::ClientStateName(state)];
      }
      client.listening = false;
      ++finished;
      connecting[i] = connecting.back();
      connecting.pop_back();
    }
  }
  outbox.Flush();
  const uint64_t endUs = MonotonicUs(), endCpu = CpuUs();
  std::printf("{\"type\":\"connected\",\"connected\":%zu,\"failed\":{", connected);
  bool first = true;
  for (const auto& entry : failed) {
    std::printf("%s\"%s\":%llu", first ? "" : ",", entry.first.c_str(), static_cast<unsigned long long>(entry.second));
    first = false;
  }
  std::printf("},\"ms\":%.3f,\"cpuUs\":%llu,\"processCpuUs\":%llu}\n", double(endUs - startUs) / 1000.0,
              static_cast<unsigned long long>(endCpu - startCpu), static_cast<unsigned long long>(endCpu));
  std::fflush(stdout);

  // Connected: keep-alives on the clients' timers, the server's keep-alives read and dropped, commands
  // from stdin, until "leave" (or the parent is gone).
  char line[128];
  uint64_t lastTickUs = MonotonicUs();
  for (;;) {
    pollfd ready[2] = {{0, POLLIN, 0}, {fd, POLLIN, 0}};
    poll(ready, 2, 10);
    DrainSocket(fd);
    const Clock now = Now();
    if (now.monotonicUs - lastTickUs >= 10000) {
      lastTickUs = now.monotonicUs;
      for (LoadClient* client : clients) {
        if (client->core.state() == ClientState::kConnected) {
          client->core.Update(now);
          client->Poll();
        }
      }
      outbox.Flush();
    }
    if ((ready[0].revents & (POLLIN | POLLHUP)) == 0) continue;
    if (std::fgets(line, sizeof(line), stdin) == nullptr || std::strncmp(line, "leave", 5) == 0) break;
    unsigned long long rate = 0, milliseconds = 0, tickUs = 0;
    if (std::sscanf(line, "send %llu %llu %llu", &rate, &milliseconds, &tickUs) == 3 && rate > 0 && milliseconds > 0 && tickUs >= 100) {
      SendPayloads(fd, &outbox, clients, rate, milliseconds, tickUs);
    }
  }
  // Redundant disconnects: the first at once, the rest at the client's 10 Hz.
  Clock now = Now();
  for (LoadClient* client : clients) {
    if (client->core.state() == ClientState::kConnected) {
      client->core.Disconnect(now);
      client->Poll();
    }
  }
  outbox.Flush();
  for (bool pending = true; pending;) {
    poll(nullptr, 0, 10);
    now = Now();
    pending = false;
    for (LoadClient* client : clients) {
      if (!client->core.HasPendingDisconnects()) continue;
      client->core.Update(now);
      client->Poll();
      pending = pending || client->core.HasPendingDisconnects();
    }
    outbox.Flush();
  }
  close(fd);
  for (LoadClient* client : clients) client->~LoadClient();
  std::printf("{\"type\":\"left\"}\n");
  return 0;
}
