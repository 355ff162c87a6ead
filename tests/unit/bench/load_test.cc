// The bench's load generator (bench/load.h) against an in-process echo server: the completion-
// queue client sends the requests it was given with their metadata, counts answers and failures
// apart, and the typed and raw calls share its completion queues.
#include "bench/load.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mci/bench/v1/echo.grpc.pb.h"

namespace mci::bench {
namespace {

namespace epb = ::mci::bench::v1;

// Echoes; remembers each request's payload and authorization header.
class Recorder final : public epb::EchoService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const epb::EchoRequest* request,
                                 epb::EchoResponse* response) override {
    auto auth = context->client_metadata().find("authorization");
    {
      std::lock_guard<std::mutex> lock(mu);
      payloads.insert(request->payload());
      if (auth != context->client_metadata().end()) {
        authorizations.insert(std::string(auth->second.data(), auth->second.size()));
      }
      ++calls;
    }
    response->set_payload(std::string(static_cast<size_t>(request->response_bytes()), 'x'));
    auto* reactor = context->DefaultReactor();
    reactor->Finish(request->payload() == "fail"
                        ? grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "asked to fail")
                        : grpc::Status::OK);
    return reactor;
  }
  std::mutex mu;
  std::set<std::string> payloads, authorizations;
  int calls = 0;
};

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&recorder_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    channels_ = Connections("127.0.0.1:" + std::to_string(port), 2);
  }
  void TearDown() override { server_->Shutdown(); }

  static std::string Request(const std::string& payload) {
    epb::EchoRequest req;
    req.set_payload(payload);
    req.set_response_bytes(100);
    return req.SerializeAsString();
  }
  static LoadOptions Ops(int in_flight, int64_t max_ops) {
    LoadOptions o;
    o.in_flight = in_flight;
    o.warmup_s = 0;
    o.duration_s = 60;  // max_ops ends it long before
    o.max_ops = max_ops;
    return o;
  }

  Recorder recorder_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
};

TEST_F(LoadTest, RawCallsSendTheGivenRequestsAndCountEachAnswer) {
  CompletionQueues cqs(2);
  RawUnary raw(&cqs, channels_, "/mci.bench.v1.EchoService/Echo", {Request("a"), Request("b")},
               "Bearer token-1");
  LoadResult r = RunLoad(Ops(8, 400), [&](int slot, Done done) { raw.Start(slot, done); });
  EXPECT_GE(r.ok, 400);
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_EQ(r.samples.size(), static_cast<size_t>(r.ok));
  EXPECT_GT(r.qps, 0);
  EXPECT_GT(r.p50_ms, 0);
  std::lock_guard<std::mutex> lock(recorder_.mu);
  EXPECT_EQ(recorder_.payloads, (std::set<std::string>{"a", "b"}));  // both, nothing else
  EXPECT_EQ(recorder_.authorizations, std::set<std::string>{"Bearer token-1"});
  EXPECT_GE(recorder_.calls, 400);
}

// In order, as many calls as requests send each once (drawn at random, twenty calls would leave
// some of twenty requests out).
TEST_F(LoadTest, RawCallsInOrderSendEachRequestOnce) {
  CompletionQueues cqs(2);
  std::vector<std::string> requests;
  std::set<std::string> payloads;
  for (int i = 0; i < 20; ++i) {
    requests.push_back(Request("p" + std::to_string(i)));
    payloads.insert("p" + std::to_string(i));
  }
  RawUnary raw(&cqs, channels_, "/mci.bench.v1.EchoService/Echo", requests, "Bearer x",
               RawUnary::Order::kInOrder);
  LoadResult r = RunLoad(Ops(4, 20), [&](int slot, Done done) { raw.Start(slot, done); });
  EXPECT_EQ(r.errors, 0) << r.first_error;
  std::lock_guard<std::mutex> lock(recorder_.mu);
  EXPECT_EQ(recorder_.payloads, payloads);
}

TEST_F(LoadTest, RawCallsCountFailuresApartWithTheirStatus) {
  CompletionQueues cqs(1);
  RawUnary fail(&cqs, channels_, "/mci.bench.v1.EchoService/Echo", {Request("fail")}, "Bearer x");
  LoadResult r = RunLoad(Ops(4, 50), [&](int slot, Done done) { fail.Start(slot, done); });
  EXPECT_EQ(r.ok, 0);
  EXPECT_GE(r.errors, 50);
  EXPECT_EQ(r.first_error, "9: asked to fail");  // FAILED_PRECONDITION

  RawUnary missing(&cqs, channels_, "/mci.bench.v1.EchoService/NoSuchMethod", {Request("a")},
                   "Bearer x");
  r = RunLoad(Ops(4, 20), [&](int slot, Done done) { missing.Start(slot, done); });
  EXPECT_EQ(r.ok, 0);
  EXPECT_GE(r.errors, 20);
  EXPECT_EQ(r.first_error.substr(0, 3), "12:");  // UNIMPLEMENTED
}

TEST_F(LoadTest, NoRequestsOrNoChannelsAreRefusedUpFront) {
  CompletionQueues cqs(1);
  EXPECT_THROW(RawUnary(&cqs, channels_, "/mci.bench.v1.EchoService/Echo", {}, "Bearer x"),
               std::invalid_argument);
  EXPECT_THROW(RawUnary(&cqs, {}, "/mci.bench.v1.EchoService/Echo", {Request("a")}, "Bearer x"),
               std::invalid_argument);
}

// Typed calls (the bench's list and write rows) share the queues with the raw ones; `then` sees
// the reply.
TEST_F(LoadTest, TypedCallsShareTheQueues) {
  CompletionQueues cqs(2);
  RawUnary raw(&cqs, channels_, "/mci.bench.v1.EchoService/Echo", {Request("raw")}, "Bearer x");
  auto stub = epb::EchoService::NewStub(channels_[0]);
  LoadResult r = RunLoad(Ops(4, 100), [&](int slot, Done done) {
    if (slot % 2 == 0) return raw.Start(slot, std::move(done));
    epb::EchoRequest req;
    req.set_payload("typed");
    req.set_response_bytes(100);
    Unary<epb::EchoRequest, epb::EchoResponse>(
        &cqs, "Bearer typed", std::move(req),
        [&stub](auto* ctx, const auto& rq, auto* cq) {
          return stub->PrepareAsyncEcho(ctx, rq, cq);
        },
        [done](const grpc::Status& s, const epb::EchoResponse& resp) {
          done(s.ok() && resp.payload().size() != 100
                   ? grpc::Status(grpc::StatusCode::DATA_LOSS, "short answer")
                   : s);
        });
  });
  EXPECT_GE(r.ok, 100);
  EXPECT_EQ(r.errors, 0) << r.first_error;
  std::lock_guard<std::mutex> lock(recorder_.mu);
  EXPECT_EQ(recorder_.payloads, (std::set<std::string>{"raw", "typed"}));
  EXPECT_EQ(recorder_.authorizations, (std::set<std::string>{"Bearer x", "Bearer typed"}));
}

}  // namespace
}  // namespace mci::bench
