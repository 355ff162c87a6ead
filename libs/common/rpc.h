#pragma once

#include <exception>
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

// The single entry point of every unary RPC handler: authenticates the token (UNAUTHENTICATED),
// checks the method's role (PERMISSION_DENIED), runs the handler inline, records metrics and
// finishes the call. gRPC C++ server interceptors cannot finish a call with a status of their
// choosing, so authentication lives here rather than in an interceptor.
template <typename Fn>
grpc::ServerUnaryReactor* Dispatch(grpc::CallbackServerContext* context,
                                   const auth::Authenticator& authenticator,
                                   absl::string_view method, auth::Role role, Fn&& handler) {
  absl::Time start = absl::Now();
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
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Declares a callback-API unary method that delegates to `impl_.Method(caller, request, response)`.
#define MCI_RPC(Method, Request, Response, RequiredRole)                                         \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context, const Request* request, \
                                   Response* response) override {                               \
    return ::mci::Dispatch(context, authenticator_, #Method, RequiredRole,                       \
                           [&](const ::mci::auth::Caller& caller) {                              \
                             return impl_.Method(caller, *request, response);                    \
                           });                                                                   \
  }

}  // namespace mci
