// The handshake load of the connections benchmark at full speed: many netcode clients (volley's own
// sans-IO ClientCore, native/netcode/client.*) in one C++ process, each on its own UDP socket, so that the
// server under test, not the load generator, sets the handshake rate.
//
//   handshake-load --tokens <file> --concurrency <n>
//
// <file> holds the 2048-byte connect tokens back to back. Every client connects (at most <concurrency>
// handshakes at a time); then one JSON line goes to stdout:
//   {"type":"connected","connected":n,"failed":{"<state>":n},"ms":t,"cpuUs":c}
// and the clients stay connected until a line "leave" arrives on stdin: each sends its redundant
// disconnect packets (10 at 10 Hz), closes, and {"type":"left"} ends the run. Exit status 2 on bad usage.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "address.h"
#include "netcode/client.h"

namespace {

using volley::netcode::ClientCore;
using volley::netcode::ClientState;
using volley::netcode::Clock;
using volley::netcode::ServerAddress;

uint64_t MonotonicUs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000u + uint64_t(now.tv_nsec) / 1000u;
}

Clock Now() {
  return Clock{MonotonicUs(), static_cast<uint64_t>(time(nullptr))};
}

uint64_t CpuUs() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return uint64_t(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000u + uint64_t(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

class LoadClient : public volley::netcode::ClientSink {
 public:
  LoadClient() : core(Config(), this) {}

  static volley::netcode::ClientConfig Config() {
    volley::netcode::ClientConfig config;
    config.keepAliveIntervalUs = 10000000;  // the phase measures handshakes, not keep-alives
    return config;
  }

  void SendPacket(const ServerAddress& to, const uint8_t* data, size_t size) override {
    sockaddr_in6 name;
    const socklen_t length = volley::ToSockaddr(to.ip, to.port, false, &name);
    // A full socket buffer loses the datagram, as a network would: the client's timers resend.
    (void)sendto(fd, data, size, 0, reinterpret_cast<const sockaddr*>(&name), length);
  }
  void StateChanged(ClientState) override {}
  void Payload(const uint8_t*, size_t) override {}

  int fd = -1;
  ClientCore core;
};

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
  }
  std::vector<uint8_t> tokens;
  if (tokensPath == nullptr || concurrency < 1 || !ReadTokens(tokensPath, &tokens)) {
    std::fprintf(stderr, "usage: handshake-load --tokens <file of 2048-byte tokens> --concurrency <n>\n");
    return 2;
  }
  if (sodium_init() < 0) return 1;
  const size_t count = tokens.size() / volley::netcode::kConnectTokenBytes;
  std::vector<std::unique_ptr<LoadClient>> clients(count);
  const int epollFd = epoll_create1(EPOLL_CLOEXEC);
  std::vector<uint32_t> connecting;  // indexes of the handshakes in flight
  std::map<std::string, uint64_t> failed;
  size_t next = 0, connected = 0, finished = 0;
  const uint64_t startUs = MonotonicUs(), startCpu = CpuUs();
  uint64_t lastUpdateUs = startUs;
  uint8_t datagram[2048];
  epoll_event events[256];

  while (finished < count) {
    while (connecting.size() < size_t(concurrency) && next < count) {
      auto client = std::make_unique<LoadClient>();
      client->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (client->fd < 0) {
        std::perror("socket");
        return 1;
      }
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u32 = static_cast<uint32_t>(next);
      epoll_ctl(epollFd, EPOLL_CTL_ADD, client->fd, &event);
      client->core.Connect(tokens.data() + next * volley::netcode::kConnectTokenBytes, volley::netcode::kConnectTokenBytes, Now());
      clients[next] = std::move(client);
      connecting.push_back(static_cast<uint32_t>(next));
      ++next;
    }
    const int ready = epoll_wait(epollFd, events, 256, 1);
    const Clock now = Now();
    for (int i = 0; i < ready; ++i) {
      LoadClient& client = *clients[events[i].data.u32];
      for (;;) {
        sockaddr_storage from;
        socklen_t fromLength = sizeof(from);
        const ssize_t size = recvfrom(client.fd, datagram, sizeof(datagram), 0, reinterpret_cast<sockaddr*>(&from), &fromLength);
        if (size < 0) break;
        ServerAddress address;
        volley::FromSockaddr(from, &address.ip, &address.port);
        client.core.Receive(address, datagram, static_cast<size_t>(size), now);
      }
    }
    const bool tick = now.monotonicUs - lastUpdateUs >= 10000;
    if (tick) lastUpdateUs = now.monotonicUs;
    for (size_t i = 0; i < connecting.size();) {
      LoadClient& client = *clients[connecting[i]];
      if (tick) client.core.Update(now);
      const ClientState state = client.core.state();
      if (state == ClientState::kSendingConnectionRequest || state == ClientState::kSendingConnectionResponse) {
        ++i;
        continue;
      }
      if (state == ClientState::kConnected) {
        ++connected;
        epoll_ctl(epollFd, EPOLL_CTL_DEL, client.fd, nullptr);  // its keep-alives are not read
      } else {
        ++failed[volley::netcode::ClientStateName(state)];
        close(client.fd);
        client.fd = -1;
      }
      ++finished;
      connecting[i] = connecting.back();
      connecting.pop_back();
    }
  }
  const uint64_t endUs = MonotonicUs(), endCpu = CpuUs();
  std::printf("{\"type\":\"connected\",\"connected\":%zu,\"failed\":{", connected);
  bool first = true;
  for (const auto& entry : failed) {
    std::printf("%s\"%s\":%llu", first ? "" : ",", entry.first.c_str(), static_cast<unsigned long long>(entry.second));
    first = false;
  }
  std::printf("},\"ms\":%.3f,\"cpuUs\":%llu}\n", double(endUs - startUs) / 1000.0, static_cast<unsigned long long>(endCpu - startCpu));
  std::fflush(stdout);

  char line[64];
  while (std::fgets(line, sizeof(line), stdin) != nullptr && std::strncmp(line, "leave", 5) != 0) {
  }
  // Redundant disconnects: the first at once, the rest at the client's 10 Hz.
  Clock now = Now();
  for (auto& client : clients) {
    if (client && client->core.state() == ClientState::kConnected) client->core.Disconnect(now);
  }
  for (bool pending = true; pending;) {
    poll(nullptr, 0, 10);
    now = Now();
    pending = false;
    for (auto& client : clients) {
      if (!client || !client->core.HasPendingDisconnects()) continue;
      client->core.Update(now);
      pending = pending || client->core.HasPendingDisconnects();
    }
  }
  for (auto& client : clients) {
    if (client && client->fd >= 0) close(client->fd);
  }
  close(epollFd);
  std::printf("{\"type\":\"left\"}\n");
  return 0;
}
