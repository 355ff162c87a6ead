// GrpcCatalogClient against a catalog stand-in served by gRPC in this process, on loopback.
#include "services/templates/catalog_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mci::templates {
namespace {

namespace catalog = mci::catalog::v1;

// Answers ResolveImage in waves: a call waits until `wave_size` calls have arrived together (or
// a second has passed), so that calls made one by one never overlap and calls made together do.
class WavingCatalog : public catalog::CatalogService::Service {
 public:
  explicit WavingCatalog(int wave_size) : wave_size_(wave_size) {}

  grpc::Status ResolveImage(grpc::ServerContext* context,
                            const catalog::ResolveImageRequest* request,
                            catalog::ResolveImageResponse* response) override {
    std::unique_lock<std::mutex> lock(mu_);
    auto token = context->client_metadata().find("authorization");
    if (token != context->client_metadata().end()) {
      tokens_.emplace_back(token->second.data(), token->second.size());
    }
    max_concurrent_ = std::max(max_concurrent_, ++concurrent_);
    const int wave = wave_;
    if (++arrived_ == wave_size_) {
      arrived_ = 0;
      ++wave_;
      waved_.notify_all();
    } else {
      waved_.wait_for(lock, std::chrono::seconds(1), [&] { return wave_ != wave; });
    }
    --concurrent_;
    if (absl::EndsWith(request->name(), "/missing")) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such MCI");
    }
    response->set_multi_cloud_image(request->name());
    response->mutable_setting()->set_cloud(request->cloud());
    return grpc::Status::OK;
  }

  int max_concurrent() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_concurrent_;
  }
  std::vector<std::string> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }

 private:
  const int wave_size_;
  std::mutex mu_;
  std::condition_variable waved_;
  int arrived_ = 0;
  int wave_ = 0;
  int concurrent_ = 0;
  int max_concurrent_ = 0;
  std::vector<std::string> tokens_;
};

class CatalogClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<GrpcCatalogClient>(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()),
        absl::Seconds(30));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  WavingCatalog service_{8};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcCatalogClient> client_;
};

// The launch cache's refresh asks many answers at once: they overlap, `in_flight` of them at a
// time, and come back in the calls' order, a refusal in its own place.
TEST_F(CatalogClientTest, ResolveImagesOverlapsTheCallsAndAnswersInTheirOrder) {
  std::vector<CatalogClient::ResolveCall> calls;
  for (int i = 0; i < 16; ++i) {
    calls.push_back({i == 5 ? std::string("accounts/acme/multiCloudImages/missing")
                            : absl::StrCat("accounts/acme/multiCloudImages/m", i),
                     i % 2 == 0 ? "clouds/east" : "clouds/west"});
  }
  auto answers = client_->ResolveImages("the-token", calls, 8);
  ASSERT_EQ(answers.size(), calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i == 5) {
      EXPECT_EQ(answers[i].status().code(), absl::StatusCode::kNotFound) << answers[i].status();
      continue;
    }
    ASSERT_TRUE(answers[i].ok()) << i << ": " << answers[i].status();
    EXPECT_EQ(answers[i]->multi_cloud_image(), calls[i].name);
    EXPECT_EQ(answers[i]->setting().cloud(), calls[i].cloud);
  }
  EXPECT_EQ(service_.max_concurrent(), 8);
  const std::vector<std::string> tokens = service_.tokens();
  ASSERT_EQ(tokens.size(), calls.size());
  for (const std::string& token : tokens) EXPECT_EQ(token, "Bearer the-token");
}

// A catalog gone: every call answers UNAVAILABLE, none hangs.
TEST_F(CatalogClientTest, ResolveImagesAtACatalogGoneAnswersUnavailable) {
  server_->Shutdown();
  server_.reset();
  std::vector<CatalogClient::ResolveCall> calls(
      20, {"accounts/acme/multiCloudImages/m", "clouds/east"});
  auto answers = client_->ResolveImages("the-token", calls, 8);
  ASSERT_EQ(answers.size(), calls.size());
  for (const auto& answer : answers) {
    EXPECT_EQ(answer.status().code(), absl::StatusCode::kUnavailable) << answer.status();
  }
}

TEST_F(CatalogClientTest, ResolveImagesOfNoCallsAnswersNone) {
  EXPECT_TRUE(client_->ResolveImages("the-token", {}, 8).empty());
  EXPECT_EQ(service_.max_concurrent(), 0);
}

}  // namespace
}  // namespace mci::templates
