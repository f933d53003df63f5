// Wakes the JavaScript thread from the I/O thread: a libuv async handle on the environment's own loop. It
// may also watch a descriptor on that loop (the engine's epoll set, while JavaScript receives itself).
//
// Not a napi thread-safe function: its call holds a mutex across the eventfd write, so the JavaScript
// thread it wakes, which preempts the writer when both share a core, blocks on that mutex at once and
// costs two more context switches per hand-over. uv_async_send takes no lock.
#pragma once

#include <node_api.h>
#include <uv.h>

namespace volley {

class LoopWake {
 public:
  // onWake runs on the JavaScript thread (with a handle scope) and calls into JavaScript through Call();
  // onTeardown runs when the environment goes away while the handle is still open, and must Close().
  using OnWake = void (*)(napi_env env, void* context);
  using OnTeardown = void (*)(void* context);

  LoopWake() = default;
  LoopWake(const LoopWake&) = delete;
  LoopWake& operator=(const LoopWake&) = delete;
  ~LoopWake() { Close(); }

  // JavaScript thread. False when libuv or napi refused; nothing is left open then.
  bool Open(napi_env env, const char* name, OnWake onWake, OnTeardown onTeardown, void* context);
  // Any thread, any number of times: wakes coalesce until onWake runs.
  void Signal() {
    if (state_ != nullptr) uv_async_send(&state_->handle);
  }
  // JavaScript thread: calls onReadable (with a handle scope, like onWake) whenever fd is readable, until
  // Unwatch(), CloseWatch() or Close(); failed: libuv reported an error on it, and watching has stopped.
  // One descriptor for the life of the handle (close the watch before the descriptor); unreferenced (it
  // never keeps the loop alive). False when libuv refused, or after CloseWatch().
  using OnReadable = void (*)(napi_env env, void* context, bool failed);
  bool Watch(int fd, OnReadable onReadable);
  void Unwatch();
  void CloseWatch();
  // From onWake: calls fn as an event from the loop (microtasks and ticks run after it). An exception it
  // throws goes to the process's uncaught-exception handling, as any event handler's does, and JavaScript
  // may be called again when that handling returns. False when JavaScript could not be called (the
  // environment is going away), and after Close().
  bool Call(napi_env env, napi_value fn, size_t argc, const napi_value* argv);
  // JavaScript thread: whether a pending wake-up keeps the event loop alive.
  void SetRef(bool ref);
  // JavaScript thread. No onWake runs after it; libuv frees the handle later, on the loop.
  void Close();

 private:
  struct State {
    uv_async_t handle{};
    napi_env env = nullptr;
    OnWake onWake = nullptr;
    OnTeardown onTeardown = nullptr;
    void* context = nullptr;
    napi_async_context asyncContext = nullptr;  // released in Close(), while the environment surely exists
    napi_async_cleanup_hook_handle teardownHook = nullptr;
    uv_poll_t watch{};
    bool watchOpen = false;    // watch initialised
    bool watchClosed = false;  // and closed (CloseWatch), before the handle
    bool watching = false;
    OnReadable onReadable = nullptr;
    int open = 1;  // libuv handles not yet closed: the state goes with the last
  };
  static void Dispatch(uv_async_t* handle);
  static void DispatchReadable(uv_poll_t* watch, int status, int events);
  static void Teardown(napi_async_cleanup_hook_handle hook, void* arg);
  static void Closed(uv_handle_t* handle);

  State* state_ = nullptr;  // owned by libuv from Close() until Closed()
};

}  // namespace volley
