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
    for (int i = 0; i < 2; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("mci.test.channel", i);
      channels_.push_back(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                                    grpc::InsecureChannelCredentials(), args));
    }
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

// A typed call on the same queues (as the bench's list and write rows make): its tag is an
// AsyncCall too.
struct TypedEcho : AsyncCall {
  grpc::ClientContext ctx;
  epb::EchoRequest req;
  epb::EchoResponse resp;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<epb::EchoResponse>> reader;
  Done done;
  void Complete(bool ok) override {
    EXPECT_TRUE(ok);
    grpc::Status s = status.ok() && resp.payload().size() != 100
                         ? grpc::Status(grpc::StatusCode::DATA_LOSS, "short answer")
                         : status;
    Done d = std::move(done);
    delete this;
    d(s);
  }
};

TEST_F(LoadTest, TypedCallsShareTheQueues) {
  CompletionQueues cqs(2);
  auto stub = epb::EchoService::NewStub(channels_[0]);
  LoadResult r = RunLoad(Ops(4, 100), [&](int, Done done) {
    auto* c = new TypedEcho();
    c->req.set_payload("typed");
    c->req.set_response_bytes(100);
    c->done = std::move(done);
    c->reader = stub->PrepareAsyncEcho(&c->ctx, c->req, cqs.any());
    c->reader->StartCall();
    c->reader->Finish(&c->resp, &c->status, static_cast<AsyncCall*>(c));
  });
  EXPECT_GE(r.ok, 100);
  EXPECT_EQ(r.errors, 0) << r.first_error;
}

}  // namespace
}  // namespace mci::bench
