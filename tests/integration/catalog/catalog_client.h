#pragma once

// Test helpers: a CatalogService client bound to one caller's token.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "mci/catalog/v1/catalog.grpc.pb.h"
#include "tests/support/stack.h"

namespace mci::testing {

namespace cpb = ::mci::catalog::v1;

class CatalogClient {
 public:
  CatalogClient(std::shared_ptr<grpc::Channel> channel, std::string token)
      : stub_(cpb::CatalogService::NewStub(std::move(channel))), token_(std::move(token)) {}

  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (cpb::CatalogService::Stub::*method)(grpc::ClientContext*,
                                                                      const Req&, Resp*),
                    const Req& req, Resp* resp) {
    auto context = Context(token_);
    return (stub_.get()->*method)(context.get(), req, resp);
  }

  cpb::MultiCloudImage Create(const std::string& account, const std::string& display_name,
                              const std::string& description = "") {
    cpb::CreateMultiCloudImageRequest req;
    req.set_parent("accounts/" + account);
    req.mutable_multi_cloud_image()->set_display_name(display_name);
    req.mutable_multi_cloud_image()->set_description(description);
    cpb::MultiCloudImage out;
    grpc::Status s = Call(&cpb::CatalogService::Stub::CreateMultiCloudImage, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  grpc::Status AddSetting(const std::string& mci, const std::string& cloud,
                          const std::string& image, const std::string& type,
                          cpb::MultiCloudImageSetting* out = nullptr) {
    cpb::CreateMultiCloudImageSettingRequest req;
    req.set_parent(mci);
    req.mutable_setting()->set_cloud("clouds/" + cloud);
    req.mutable_setting()->set_image("clouds/" + cloud + "/images/" + image);
    req.mutable_setting()->set_instance_type("clouds/" + cloud + "/instanceTypes/" + type);
    cpb::MultiCloudImageSetting ignored;
    return Call(&cpb::CatalogService::Stub::CreateMultiCloudImageSetting, req,
                out != nullptr ? out : &ignored);
  }

  cpb::MultiCloudImage Get(const std::string& name, grpc::Status* status = nullptr) {
    cpb::GetMultiCloudImageRequest req;
    req.set_name(name);
    cpb::MultiCloudImage out;
    grpc::Status s = Call(&cpb::CatalogService::Stub::GetMultiCloudImage, req, &out);
    if (status != nullptr) *status = s;
    return out;
  }

  grpc::Status Tag(const std::string& name, const std::string& tag) {
    cpb::AddTagsRequest req;
    req.set_name(name);
    req.add_tags(tag);
    cpb::MultiCloudImage out;
    return Call(&cpb::CatalogService::Stub::AddTags, req, &out);
  }

  cpb::MultiCloudImage Commit(const std::string& name, const std::string& message,
                              grpc::Status* status = nullptr) {
    cpb::CommitMultiCloudImageRequest req;
    req.set_name(name);
    req.set_message(message);
    cpb::MultiCloudImage out;
    grpc::Status s = Call(&cpb::CatalogService::Stub::CommitMultiCloudImage, req, &out);
    if (status != nullptr) {
      *status = s;
    } else {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    return out;
  }

  grpc::Status Resolve(const std::string& name, const std::string& cloud,
                       cpb::ResolveImageResponse* out) {
    cpb::ResolveImageRequest req;
    req.set_name(name);
    req.set_cloud("clouds/" + cloud);
    return Call(&cpb::CatalogService::Stub::ResolveImage, req, out);
  }

 private:
  std::unique_ptr<cpb::CatalogService::Stub> stub_;
  std::string token_;
};

}  // namespace mci::testing
