// The addon asks no more of the C library than Node's own Linux x64 binaries do (glibc 2.28), so that the
// prebuild built on a newer system loads wherever Node runs (RHEL 8, Debian 11, Ubuntu 20.04). Built into
// glibc x64 builds only (binding.gyp, CMakeLists.txt), with libstdc++ linked in statically, which removes
// the newer libstdc++ a prebuild would otherwise need; scripts/check-prebuild.mjs checks the result.
//
// What a build on a newer glibc would take from it, and how it is kept to 2.28's:
// - functions that glibc 2.33-2.34 gave new symbol versions (the pthread ones moved into libc; fstat became
//   a real function): the linker sends every reference to them, libstdc++'s and libsodium's included, to
//   the __wrap_ functions here (-Wl,--wrap), which call the version older glibc exports;
// - __libc_single_threaded (2.32), which libstdc++'s reference counts read to skip atomic instructions:
//   defined here as false, so they are always atomic, which is correct in every process;
// - arc4random (2.36), which libstdc++'s std::random_device links in (volley never makes one): defined here
//   over libsodium's generator, which is what it returns, a uniformly random 32-bit number.
#include <pthread.h>
#include <sys/stat.h>

#include <cstdint>

#include <sodium.h>

#if defined(__x86_64__) && defined(__GLIBC__)

// Undefined names bound to the old versions of glibc's symbols (.symver: a reference to the first name
// becomes one to the versioned second).
extern "C" {
int volley_glibc_pthread_create(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
int volley_glibc_pthread_detach(pthread_t);
int volley_glibc_pthread_join(pthread_t, void**);
int volley_glibc_pthread_mutex_trylock(pthread_mutex_t*);
int volley_glibc_pthread_setname_np(pthread_t, const char*);
int volley_glibc_fxstat(int, int, struct stat*);
}
__asm__(".symver volley_glibc_pthread_create, pthread_create@GLIBC_2.2.5");
__asm__(".symver volley_glibc_pthread_detach, pthread_detach@GLIBC_2.2.5");
__asm__(".symver volley_glibc_pthread_join, pthread_join@GLIBC_2.2.5");
__asm__(".symver volley_glibc_pthread_mutex_trylock, pthread_mutex_trylock@GLIBC_2.2.5");
__asm__(".symver volley_glibc_pthread_setname_np, pthread_setname_np@GLIBC_2.12");
__asm__(".symver volley_glibc_fxstat, __fxstat@GLIBC_2.2.5");

extern "C" {

int __wrap_pthread_create(pthread_t* thread, const pthread_attr_t* attributes, void* (*run)(void*), void* argument) {
  return volley_glibc_pthread_create(thread, attributes, run, argument);
}
int __wrap_pthread_detach(pthread_t thread) { return volley_glibc_pthread_detach(thread); }
int __wrap_pthread_join(pthread_t thread, void** result) { return volley_glibc_pthread_join(thread, result); }
int __wrap_pthread_mutex_trylock(pthread_mutex_t* mutex) { return volley_glibc_pthread_mutex_trylock(mutex); }
int __wrap_pthread_setname_np(pthread_t thread, const char* name) { return volley_glibc_pthread_setname_np(thread, name); }

// Before 2.33, <sys/stat.h> made fstat an inline call of __fxstat with the structure's version, 1 on x86-64.
int __wrap_fstat(int fd, struct stat* buffer) { return volley_glibc_fxstat(1, fd, buffer); }

char __libc_single_threaded = 0;

uint32_t arc4random(void) noexcept { return randombytes_random(); }

}  // extern "C"

#endif
