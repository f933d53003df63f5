// Drives native/napi/glibc_baseline.cc's stand-ins, linked as the addon links them (test/engine/glibc-baseline.toolchain.test.ts):
// each does what the glibc function it stands in for does. Prints one JSON object.
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <sodium.h>

extern "C" uint32_t arc4random(void) noexcept;

int main(int argc, char** argv) {
  if (argc != 2 || sodium_init() < 0) return 2;

  // fstat, through __fxstat
  struct stat status {};
  const int fd = open(argv[1], O_RDONLY);
  const int fstatResult = fd < 0 ? -1 : fstat(fd, &status);
  const bool regular = S_ISREG(status.st_mode);
  if (fd >= 0) close(fd);

  // std::thread (pthread_create, pthread_join), std::mutex::try_lock (pthread_mutex_trylock), a thread's name
  std::mutex mutex;
  bool lockedWhileHeld = true;
  bool lockedWhenFree = false;
  std::string name;
  {
    std::lock_guard<std::mutex> held(mutex);
    std::thread other([&] {
      lockedWhileHeld = mutex.try_lock();
      if (lockedWhileHeld) mutex.unlock();
    });
    other.join();
  }
  std::thread named([&] {
    pthread_setname_np(pthread_self(), "volley-check");
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%ld/comm", static_cast<long>(syscall(SYS_gettid)));
    if (FILE* comm = std::fopen(path, "r")) {
      char line[32] = {};
      if (std::fgets(line, sizeof line, comm) != nullptr) name = std::string(line, std::strcspn(line, "\n"));
      std::fclose(comm);
    }
    lockedWhenFree = mutex.try_lock();
    if (lockedWhenFree) mutex.unlock();
  });
  named.join();

  // pthread_detach: a detached thread runs to its end
  std::atomic<bool> detachedRan{false};
  std::thread([&] { detachedRan = true; }).detach();
  for (int i = 0; i < 1000 && !detachedRan; ++i) usleep(1000);

  // arc4random, over libsodium's generator: 64 draws are not all alike
  const uint32_t first = arc4random();
  bool varied = false;
  for (int i = 0; i < 64; ++i) varied = varied || arc4random() != first;

  std::printf(
      "{\"fstat\":%d,\"size\":%lld,\"regular\":%s,\"tryLockWhileHeld\":%s,\"tryLockWhenFree\":%s,\"threadName\":\"%s\","
      "\"detachedRan\":%s,\"arc4randomVaries\":%s}\n",
      fstatResult, static_cast<long long>(status.st_size), regular ? "true" : "false", lockedWhileHeld ? "true" : "false",
      lockedWhenFree ? "true" : "false", name.c_str(), detachedRan ? "true" : "false", varied ? "true" : "false");
  return 0;
}
