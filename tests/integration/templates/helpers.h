#pragma once

// Shared helpers of the template-reference integration tests: typed stubs for the catalog and
// the template-reference service, and MCIs with settings built from the seeded inventory.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "mci/catalog/v1/catalog.grpc.pb.h"
#include "mci/templates/v1/templates.grpc.pb.h"
#include "tests/support/stack.h"

namespace mci::templates::testing {

namespace cpb = mci::catalog::v1;
namespace tpb = mci::templates::v1;
using mci::testing::Context;
using mci::testing::Eventually;
using mci::testing::Token;

constexpr char kAccount[] = "acme";

inline std::string Designer(const std::string& account = kAccount) {
  return Token(account, {auth::Role::kDesigner});
}
inline std::string Observer(const std::string& account = kAccount) {
  return Token(account, {auth::Role::kObserver});
}
inline std::string MciName(const std::string& id, const std::string& account = kAccount) {
  return absl::StrCat("accounts/", account, "/multiCloudImages/", id);
}
inline std::string TemplateName(const std::string& id, const std::string& account = kAccount) {
  return absl::StrCat("accounts/", account, "/serverTemplates/", id);
}

// One 64-bit CentOS setting per cloud, from deploy/inventory.json.
inline cpb::MultiCloudImageSetting SettingFor(const std::string& cloud) {
  std::string id = std::vector<std::string>(absl::StrSplit(cloud, '/'))[1];
  cpb::MultiCloudImageSetting s;
  s.set_cloud(cloud);
  s.set_image(absl::StrCat(cloud, "/images/centos-5-4-x64-v5-6"));
  s.set_instance_type(absl::StrCat(cloud, "/instanceTypes/",
                                   absl::StartsWith(id, "google") ? "n1-standard-2" : "m1.large"));
  return s;
}

class Clients {
 public:
  Clients(std::shared_ptr<grpc::Channel> catalog, std::shared_ptr<grpc::Channel> templates)
      : catalog_(cpb::CatalogService::NewStub(catalog)),
        templates_(tpb::ServerTemplateService::NewStub(templates)) {}
  cpb::CatalogService::Stub& catalog() { return *catalog_; }
  tpb::ServerTemplateService::Stub& templates() { return *templates_; }

  // Creates an MCI with a setting for each cloud; fails the test on error.
  std::string CreateMci(const std::string& id, const std::vector<std::string>& clouds,
                        const std::string& token = Designer()) {
    cpb::CreateMultiCloudImageRequest req;
    req.set_parent(absl::StrCat("accounts/", kAccount));
    req.set_multi_cloud_image_id(id);
    req.mutable_multi_cloud_image()->set_display_name(absl::StrCat("MCI ", id, " v1"));
    cpb::MultiCloudImage mci;
    grpc::Status s = catalog_->CreateMultiCloudImage(Context(token).get(), req, &mci);
    EXPECT_TRUE(s.ok()) << "CreateMultiCloudImage " << id << ": " << s.error_message();
    for (const auto& cloud : clouds) {
      cpb::CreateMultiCloudImageSettingRequest sreq;
      sreq.set_parent(mci.name());
      *sreq.mutable_setting() = SettingFor(cloud);
      cpb::MultiCloudImageSetting setting;
      s = catalog_->CreateMultiCloudImageSetting(Context(token).get(), sreq, &setting);
      EXPECT_TRUE(s.ok()) << "CreateMultiCloudImageSetting " << cloud << ": " << s.error_message();
    }
    return mci.name();
  }

  grpc::Status CommitMci(const std::string& name, int64_t* revision = nullptr) {
    cpb::CommitMultiCloudImageRequest req;
    req.set_name(name);
    req.set_message("test commit");
    cpb::MultiCloudImage out;
    grpc::Status s = catalog_->CommitMultiCloudImage(Context(Designer()).get(), req, &out);
    if (revision != nullptr) *revision = out.revision();
    return s;
  }

  grpc::Status DeleteMci(const std::string& name, const std::string& request_id = "") {
    cpb::DeleteMultiCloudImageRequest req;
    req.set_name(name);
    req.set_request_id(request_id);
    google::protobuf::Empty out;
    return catalog_->DeleteMultiCloudImage(Context(Designer()).get(), req, &out);
  }

  grpc::Status GetMci(const std::string& name, cpb::MultiCloudImage* out = nullptr) {
    cpb::GetMultiCloudImageRequest req;
    req.set_name(name);
    cpb::MultiCloudImage mci;
    grpc::Status s = catalog_->GetMultiCloudImage(Context(Observer()).get(), req, &mci);
    if (out != nullptr) *out = mci;
    return s;
  }

  // Creates a template; fails the test on error.
  std::string CreateTemplate(const std::string& id, const std::string& token = Designer()) {
    tpb::CreateServerTemplateRequest req;
    req.set_parent(absl::StrCat("accounts/", kAccount));
    req.set_server_template_id(id);
    req.mutable_server_template()->set_display_name(absl::StrCat("Template ", id));
    tpb::ServerTemplate t;
    grpc::Status s = templates_->CreateServerTemplate(Context(token).get(), req, &t);
    EXPECT_TRUE(s.ok()) << "CreateServerTemplate " << id << ": " << s.error_message();
    return t.name();
  }

  grpc::Status GetTemplate(const std::string& name, tpb::ServerTemplate* out) {
    tpb::GetServerTemplateRequest req;
    req.set_name(name);
    return templates_->GetServerTemplate(Context(Observer()).get(), req, out);
  }

  grpc::Status Add(const std::string& tmpl, const std::string& mci, bool make_default = false,
                   tpb::ServerTemplate* out = nullptr, const std::string& token = Designer()) {
    tpb::AddMultiCloudImageRequest req;
    req.set_server_template(tmpl);
    req.set_multi_cloud_image(mci);
    req.set_make_default(make_default);
    tpb::ServerTemplate t;
    grpc::Status s = templates_->AddMultiCloudImage(Context(token).get(), req, &t);
    if (out != nullptr) *out = t;
    return s;
  }

  grpc::Status Remove(const std::string& tmpl, const std::string& mci,
                      tpb::ServerTemplate* out = nullptr) {
    tpb::RemoveMultiCloudImageRequest req;
    req.set_server_template(tmpl);
    req.set_multi_cloud_image(mci);
    tpb::ServerTemplate t;
    grpc::Status s = templates_->RemoveMultiCloudImage(Context(Designer()).get(), req, &t);
    if (out != nullptr) *out = t;
    return s;
  }

  grpc::Status Commit(const std::string& tmpl, bool commit_heads, tpb::ServerTemplate* out) {
    tpb::CommitServerTemplateRequest req;
    req.set_name(tmpl);
    req.set_message("commit");
    req.set_commit_head_multi_cloud_images(commit_heads);
    return templates_->CommitServerTemplate(Context(Designer()).get(), req, out);
  }

  grpc::Status DeleteTemplate(const std::string& name) {
    tpb::DeleteServerTemplateRequest req;
    req.set_name(name);
    google::protobuf::Empty out;
    return templates_->DeleteServerTemplate(Context(Designer()).get(), req, &out);
  }

  // Every usage (all pages) of `mci`; all_revisions lists HEAD and every revision.
  std::vector<tpb::MultiCloudImageUsage> Usages(const std::string& mci, bool all_revisions,
                                                grpc::Status* status = nullptr) {
    std::vector<tpb::MultiCloudImageUsage> out;
    std::string token;
    do {
      tpb::ListMultiCloudImageUsagesRequest req;
      req.set_multi_cloud_image(mci);
      req.set_all_revisions(all_revisions);
      req.set_page_size(2);
      req.set_page_token(token);
      tpb::ListMultiCloudImageUsagesResponse resp;
      grpc::Status s = templates_->ListMultiCloudImageUsages(Context(Observer()).get(), req, &resp);
      if (status != nullptr) *status = s;
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      out.insert(out.end(), resp.usages().begin(), resp.usages().end());
      token = resp.next_page_token();
    } while (!token.empty());
    return out;
  }

 private:
  std::unique_ptr<cpb::CatalogService::Stub> catalog_;
  std::unique_ptr<tpb::ServerTemplateService::Stub> templates_;
};

inline std::vector<std::string> UsageTemplates(const std::vector<tpb::MultiCloudImageUsage>& u) {
  std::vector<std::string> out;
  for (const auto& x : u) out.push_back(x.server_template());
  return out;
}

inline std::vector<std::string> References(const tpb::ServerTemplate& t) {
  std::vector<std::string> out;
  for (const auto& r : t.multi_cloud_images()) out.push_back(r.multi_cloud_image());
  return out;
}

}  // namespace mci::templates::testing
