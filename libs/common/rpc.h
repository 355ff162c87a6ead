#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <exception>
#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
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

// Logs an internal error, records the call's metrics and finishes it.
inline void Finish(grpc::ServerUnaryReactor* reactor, absl::string_view method, absl::Time start,
                   const absl::Status& status) {
  if (status.code() == absl::StatusCode::kInternal) {
    log::Error("rpc failed", {{"method", std::string(method)}, {"error", status.ToString()}});
  }
  Metrics::Global().ObserveRpc(method, status.code(), absl::ToDoubleSeconds(absl::Now() - start));
  reactor->Finish(ToGrpcStatus(status));
}

// A raw method's request, parsed; false when the bytes are not a `Request`.
template <typename Request>
bool ParseRaw(const grpc::ByteBuffer& buffer, Request* out) {
  grpc::ByteBuffer shared(buffer);  // the same slices, not a copy of the bytes
  grpc::ProtoBufferReader reader(&shared);
  return reader.status().ok() && out->ParseFromZeroCopyStream(&reader);
}

inline absl::Status Unreadable(absl::string_view request) {
  return absl::InvalidArgumentError(
      absl::StrCat("The request cannot be parsed as ", request, "; send that message."));
}

// A raw method's reply: `wire` as it is.
inline void ReplyRaw(const std::string& wire, grpc::ByteBuffer* response) {
  grpc::Slice slice(wire);
  grpc::ByteBuffer buffer(&slice, 1);
  response->Swap(&buffer);
}

// Runs `fn(caller)`, turning an exception into INTERNAL.
template <typename Fn, typename Result = absl::Status>
Result Guarded(absl::string_view method, Fn& fn, const auth::Caller& caller) {
  try {
    return fn(caller);
  } catch (const std::exception& e) {
    log::Error("handler threw", {{"method", std::string(method)}, {"error", e.what()}});
    return absl::InternalError(absl::StrCat("Internal error in ", method, "."));
  }
}

template <typename Fn>
void RunHandler(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                const auth::Authenticator& authenticator, absl::string_view method, auth::Role role,
                absl::Time start, Fn& handler) {
  absl::Status status;
  auto caller = authenticator.Authenticate(*context);
  if (!caller.ok()) {
    status = caller.status();
  } else if (status = auth::Require(*caller, role); status.ok()) {
    status = Guarded(method, handler, *caller);
  }
  Finish(reactor, method, start, status);
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

// As Dispatch, for a handler with a fast path that answers from memory: `fast(caller)` runs
// inline on gRPC's thread (a thread hop would cost more than it does) and returns the call's
// status, or nullopt when the call needs the database or a peer; then `slow(caller)` runs on the
// handler pool as in Dispatch.
template <typename Fast, typename Slow>
grpc::ServerUnaryReactor* DispatchWithFastPath(grpc::CallbackServerContext* context,
                                               const auth::Authenticator& authenticator,
                                               absl::string_view method, auth::Role role,
                                               Fast&& fast, Slow&& slow) {
  absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status;
  auto caller = authenticator.Authenticate(*context);
  if (!caller.ok()) {
    status = caller.status();
  } else if (status = auth::Require(*caller, role); status.ok()) {
    auto answered = internal::Guarded<Fast, std::optional<absl::Status>>(method, fast, *caller);
    if (!answered.has_value()) {
      internal::RunBlocking([reactor, method, start, caller = *std::move(caller),
                             slow = std::forward<Slow>(slow)]() mutable {
        internal::Finish(reactor, method, start, internal::Guarded(method, slow, caller));
      });
      return reactor;
    }
    status = *answered;
  }
  internal::Finish(reactor, method, start, status);
  return reactor;
}

// Declares a callback-API unary method that delegates to `impl_.Method(caller, request, response)`.
#define MCI_RPC(Method, Request, Response, RequiredRole)                                         \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context, const Request* request, \
                                   Response* response) override {                                \
    return ::mci::Dispatch(context, authenticator_, #Method, RequiredRole,                       \
                           [this, request, response](const ::mci::auth::Caller& caller) {        \
                             return impl_.Method(caller, *request, response);                    \
                           });                                                                   \
  }

// MCI_RPC for a method with a fast path (DispatchWithFastPath), registered raw (the generated
// WithRawCallbackMethod_<Method>), whose answer the service keeps serialized:
// `impl_.Method##WireCached(caller, request, &wire)` and `impl_.Method##Wire(caller, request,
// &wire)` set `std::shared_ptr<const std::string> wire` to the reply's bytes, which go out as they
// are, without a copy of the message or its serialization per call.
#define MCI_RPC_CACHED_WIRE(Method, Request, RequiredRole)                                      \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context,                        \
                                   const grpc::ByteBuffer* request, grpc::ByteBuffer* response) \
      override {                                                                                \
    auto parsed = std::make_shared<Request>();                                                  \
    const bool readable = ::mci::internal::ParseRaw(*request, parsed.get());                    \
    return ::mci::DispatchWithFastPath(                                                         \
        context, authenticator_, #Method, RequiredRole,                                         \
        [this, parsed, readable,                                                                \
         response](const ::mci::auth::Caller& caller) -> std::optional<absl::Status> {          \
          if (!readable) return ::mci::internal::Unreadable(#Request);                          \
          std::shared_ptr<const std::string> wire;                                              \
          auto answered = impl_.Method##WireCached(caller, *parsed, &wire);                     \
          const bool hit = answered.has_value() && answered->ok();                              \
          if (hit) ::mci::internal::ReplyRaw(*wire, response);                                  \
          return answered;                                                                      \
        },                                                                                      \
        [this, parsed, response](const ::mci::auth::Caller& caller) -> absl::Status {           \
          std::shared_ptr<const std::string> wire;                                              \
          absl::Status status = impl_.Method##Wire(caller, *parsed, &wire);                     \
          if (status.ok()) ::mci::internal::ReplyRaw(*wire, response);                          \
          return status;                                                                        \
        });                                                                                     \
  }

}  // namespace mci
