#pragma once

#include <exception>
#include <functional>
#include "absl/strings/string_view.h"

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/auth.h"
#include "libs/common/log.h"
#include "libs/common/metrics.h"
#include "libs/common/status.h"

namespace mci {

namespace internal {

// Runs `task` on the shared pool of handler threads (libs/common/server.cc). gRPC's callback API
// runs handlers on its few polling threads (two on a 2-core machine): a handler that blocks on
// the database there stops every other call of the process, so Dispatch moves handlers here.
void RunBlocking(std::function<void()> task);

template <typename Fn>
void RunHandler(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                const auth::Authenticator& authenticator, absl::string_view method,
                auth::Role role, absl::Time start, Fn& handler) {
  absl::Status status;
  auto caller = authenticator.Authenticate(*context);
  if (!caller.ok()) {
    status = caller.status();
  } else if (status = auth::Require(*caller, role); status.ok()) {
    try {
      status = handler(*caller);
    } catch (const std::exception& e) {
      log::Error("handler threw", {{"method", std::string(method)}, {"error", e.what()}});
      status = absl::InternalError(absl::StrCat("Internal error in ", method, "."));
    }
  }
  if (status.code() == absl::StatusCode::kInternal) {
    log::Error("rpc failed", {{"method", std::string(method)}, {"error", status.ToString()}});
  }
  Metrics::Global().ObserveRpc(method, status.code(), absl::ToDoubleSeconds(absl::Now() - start));
  reactor->Finish(ToGrpcStatus(status));
}

}  // namespace internal

// The single entry point of every unary RPC handler: authenticates the token (UNAUTHENTICATED),
// checks the method's role (PERMISSION_DENIED), runs the handler on the handler pool (see
// internal::RunBlocking), records metrics and finishes the call. gRPC C++ server interceptors
// cannot finish a call with a status of their choosing, so authentication lives here rather than
// in an interceptor. `handler` must not refer to the method's stack: it runs after it returns.
template <typename Fn>
grpc::ServerUnaryReactor* Dispatch(grpc::CallbackServerContext* context,
                                   const auth::Authenticator& authenticator,
                                   absl::string_view method, auth::Role role, Fn&& handler) {
  absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  internal::RunBlocking([context, reactor, &authenticator, method, role, start,
                         handler = std::forward<Fn>(handler)]() mutable {
    internal::RunHandler(context, reactor, authenticator, method, role, start, handler);
  });
  return reactor;
}

// As Dispatch, but runs the handler inline on gRPC's polling thread: only for handlers that
// (nearly) never block, such as a lookup answered from memory. A thread hop would cost more than
// such a handler does.
template <typename Fn>
grpc::ServerUnaryReactor* DispatchInline(grpc::CallbackServerContext* context,
                                         const auth::Authenticator& authenticator,
                                         absl::string_view method, auth::Role role,
                                         Fn&& handler) {
  absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  internal::RunHandler(context, reactor, authenticator, method, role, start, handler);
  return reactor;
}

// Declares a callback-API unary method that delegates to `impl_.Method(caller, request, response)`.
#define MCI_RPC(Method, Request, Response, RequiredRole)                                         \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context, const Request* request, \
                                   Response* response) override {                               \
    return ::mci::Dispatch(context, authenticator_, #Method, RequiredRole,                       \
                           [this, request, response](const ::mci::auth::Caller& caller) {        \
                             return impl_.Method(caller, *request, response);                    \
                           });                                                                   \
  }

// MCI_RPC for a handler that answers from memory (DispatchInline).
#define MCI_RPC_INLINE(Method, Request, Response, RequiredRole)                                  \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context, const Request* request, \
                                   Response* response) override {                               \
    return ::mci::DispatchInline(context, authenticator_, #Method, RequiredRole,                 \
                                 [this, request, response](const ::mci::auth::Caller& caller) {  \
                                   return impl_.Method(caller, *request, response);              \
                                 });                                                             \
  }

}  // namespace mci
