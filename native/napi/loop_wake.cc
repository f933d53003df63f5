#include "napi/loop_wake.h"

namespace volley {

bool LoopWake::Open(napi_env env, const char* name, OnWake onWake, OnTeardown onTeardown, void* context) {
  uv_loop_t* loop = nullptr;
  if (state_ != nullptr || napi_get_uv_event_loop(env, &loop) != napi_ok) return false;
  napi_value resourceName;
  napi_async_context asyncContext;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resourceName) != napi_ok ||
      napi_async_init(env, nullptr, resourceName, &asyncContext) != napi_ok) {
    return false;
  }
  auto* state = new State{};
  state->env = env;
  state->onWake = onWake;
  state->onTeardown = onTeardown;
  state->context = context;
  state->asyncContext = asyncContext;
  state->handle.data = state;
  if (uv_async_init(loop, &state->handle, Dispatch) != 0) {
    napi_async_destroy(env, asyncContext);
    delete state;  // libuv has not taken the handle
    return false;
  }
  state_ = state;
  // The environment waits for this hook to be removed (in Closed) before it closes the loop: a worker's
  // loop cannot close with the handle on it.
  if (napi_add_async_cleanup_hook(env, Teardown, state, &state->teardownHook) != napi_ok) {
    state->teardownHook = nullptr;
    Close();
    return false;
  }
  return true;
}

bool LoopWake::Call(napi_env env, napi_value fn, size_t argc, const napi_value* argv) {
  napi_value global;
  napi_value result;
  if (state_ == nullptr || napi_get_global(env, &global) != napi_ok) return false;
  const napi_status status = napi_make_callback(env, state_->asyncContext, global, fn, argc, argv, &result);
  if (status == napi_ok) return true;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value error;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok && napi_fatal_exception(env, error) == napi_ok) {
      // Handled (an 'uncaughtException' listener) when this returns; a worker being torn down fails the
      // next call without an exception.
      return true;
    }
  }
  return false;
}

bool LoopWake::Watch(int fd, OnReadable onReadable) {
  if (state_ == nullptr || state_->watchClosed) return false;
  if (!state_->watchOpen) {
    if (uv_poll_init(state_->handle.loop, &state_->watch, fd) != 0) return false;
    state_->watch.data = state_;
    state_->watchOpen = true;
    ++state_->open;
    uv_unref(reinterpret_cast<uv_handle_t*>(&state_->watch));
  }
  state_->onReadable = onReadable;
  if (!state_->watching) {
    if (uv_poll_start(&state_->watch, UV_READABLE, DispatchReadable) != 0) return false;
    state_->watching = true;
  }
  return true;
}

void LoopWake::Unwatch() {
  if (state_ == nullptr || !state_->watching) return;
  uv_poll_stop(&state_->watch);
  state_->watching = false;
}

void LoopWake::CloseWatch() {
  if (state_ == nullptr || !state_->watchOpen || state_->watchClosed) return;
  state_->watching = false;
  state_->watchClosed = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->watch), Closed);
}

void LoopWake::SetRef(bool ref) {
  if (state_ == nullptr) return;
  if (ref) {
    uv_ref(reinterpret_cast<uv_handle_t*>(&state_->handle));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(&state_->handle));
  }
}

void LoopWake::Close() {
  if (state_ == nullptr) return;
  State* state = state_;
  state_ = nullptr;
  napi_async_destroy(state->env, state->asyncContext);
  state->asyncContext = nullptr;
  if (state->watchOpen && !state->watchClosed) uv_close(reinterpret_cast<uv_handle_t*>(&state->watch), Closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&state->handle), Closed);
}

void LoopWake::Dispatch(uv_async_t* handle) {
  auto* state = static_cast<State*>(handle->data);
  napi_handle_scope scope;
  if (napi_open_handle_scope(state->env, &scope) != napi_ok) return;
  state->onWake(state->env, state->context);
  napi_close_handle_scope(state->env, scope);
}

void LoopWake::DispatchReadable(uv_poll_t* watch, int status, int) {
  auto* state = static_cast<State*>(watch->data);
  const bool failed = status < 0;
  if (failed) {
    uv_poll_stop(watch);
    state->watching = false;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(state->env, &scope) != napi_ok) return;
  state->onReadable(state->env, state->context, failed);
  napi_close_handle_scope(state->env, scope);
}

void LoopWake::Teardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* state = static_cast<State*>(arg);
  // Still open (Closed has not run): the owner shuts down and closes. Already closing: Closed follows.
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&state->handle))) state->onTeardown(state->context);
}

void LoopWake::Closed(uv_handle_t* handle) {
  auto* state = static_cast<State*>(handle->data);
  if (--state->open > 0) return;
  if (state->teardownHook != nullptr) napi_remove_async_cleanup_hook(state->teardownHook);
  delete state;
}

}  // namespace volley
