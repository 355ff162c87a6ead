// The inventory half of the catalog: clouds, instance types and images.
#include <google/protobuf/util/json_util.h>

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/catalog/catalog.h"
#include "services/catalog/rules.h"
#include "services/catalog/sql_util.h"

namespace mci::catalog {
namespace {

constexpr char kListClouds[] =
    "SELECT cloud_id, display_name, provider, region FROM clouds WHERE cloud_id > $1"
    " ORDER BY cloud_id LIMIT $2";
constexpr char kInsertCloud[] =
    "INSERT INTO clouds (cloud_id, display_name, provider, region) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT DO NOTHING";
constexpr char kInsertInstanceType[] =
    "INSERT INTO instance_types (cloud_id, type_id, architectures, cpus, memory_mb)"
    " VALUES ($1, $2, string_to_array($3, ',')::smallint[], $4, $5) ON CONFLICT DO NOTHING";
constexpr char kCloudExists[] = "SELECT 1 FROM clouds WHERE cloud_id = $1";
constexpr char kListInstanceTypes[] =
    "SELECT type_id, array_to_json(architectures)::text, cpus, memory_mb FROM instance_types"
    " WHERE cloud_id = $1 AND type_id > $2 ORDER BY type_id LIMIT $3";
constexpr char kListImages[] =
    "SELECT i.cloud_id, i.image_id, i.kind, i.provider_id, i.display_name, i.os, i.architecture,"
    " i.agent_version, coalesce(i.owner, ''), CASE WHEN i.owner = $1 THEN coalesce((SELECT"
    " array_to_json(array_agg(sh.account ORDER BY sh.account)) FROM image_shares sh"
    " WHERE sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id)::text, '[]') ELSE '[]' END"
    " FROM images i"
    " WHERE ($2 = '-' OR i.cloud_id = $2) AND ($3::int = 0 OR i.kind = $3::int)"
    " AND (i.owner IS NULL OR i.owner = $1 OR EXISTS (SELECT 1 FROM image_shares sh"
    " WHERE sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id AND sh.account = $1))"
    " AND (i.cloud_id, i.image_id) > ($4, $5)"
    " ORDER BY i.cloud_id, i.image_id LIMIT $6";
constexpr char kInsertImage[] =
    "INSERT INTO images (cloud_id, image_id, kind, provider_id, display_name, os, architecture,"
    " agent_version, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, ''))"
    " ON CONFLICT DO NOTHING";
constexpr char kImageOwner[] =
    "SELECT coalesce(owner, ''), EXISTS (SELECT 1 FROM image_shares sh WHERE"
    " sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id AND sh.account = $3)"
    " FROM images i WHERE cloud_id = $1 AND image_id = $2";
constexpr char kShareImage[] =
    "INSERT INTO image_shares (cloud_id, image_id, account) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING";

std::string Architectures(const pb::InstanceType& t) {
  std::vector<std::string> out;
  for (int a : t.architectures()) out.push_back(std::to_string(a));
  return absl::StrJoin(out, ",");
}

absl::Status CheckCloud(const pb::Cloud& cloud, std::string* cloud_id) {
  auto id = ParseCloudName(cloud.name(), "cloud.name");
  if (!id.ok()) return id.status();
  if (cloud.display_name().empty() || cloud.provider().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cloud ", cloud.name(), " needs a display_name and a provider (aws, ...)."));
  }
  *cloud_id = *id;
  return absl::OkStatus();
}

absl::Status CheckInstanceType(const std::string& cloud_id, const pb::InstanceType& t,
                               std::string* type_id) {
  std::string id = t.name();
  if (id.find('/') != std::string::npos) {
    auto n = ParseCloudResourceName(id, "instanceTypes", "instance_type.name");
    if (!n.ok()) return n.status();
    if (n->cloud_id != cloud_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("Instance type ", id, " is not in ", CloudName(cloud_id), "."));
    }
    id = n->id;
  }
  if (!IsValidCloudResourceId(id)) {
    return absl::InvalidArgumentError(absl::StrCat("Instance type name \"", t.name(),
                                                   "\" is not valid (letters, digits, . _ -)."));
  }
  if (t.architectures().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Instance type ", id, " needs the architectures it supports."));
  }
  for (int a : t.architectures()) {
    if (a != pb::I386 && a != pb::X86_64) {
      return absl::InvalidArgumentError(
          absl::StrCat("Instance type ", id, " has an unknown architecture ", a, "."));
    }
  }
  *type_id = id;
  return absl::OkStatus();
}

void FillImage(const pqxx::row& r, pb::Image* image) {
  image->set_name(ImageName(r[0].c_str(), r[1].c_str()));
  image->set_kind(static_cast<pb::ImageKind>(r[2].as<int>()));
  image->set_provider_id(r[3].c_str());
  image->set_display_name(r[4].c_str());
  image->set_os(r[5].c_str());
  image->set_architecture(static_cast<pb::Architecture>(r[6].as<int>()));
  image->set_agent_version(r[7].c_str());
  std::string owner = r[8].c_str();
  image->set_visibility(owner.empty() ? pb::PUBLIC : pb::PRIVATE);
  if (!owner.empty()) image->set_owner("accounts/" + owner);
  for (const auto& a : JsonStrings(r[9].c_str())) image->add_shared_with("accounts/" + a);
}

constexpr char kImageColumns[] =
    "i.cloud_id, i.image_id, i.kind, i.provider_id, i.display_name, i.os, i.architecture,"
    " i.agent_version, coalesce(i.owner, ''), coalesce((SELECT array_to_json(array_agg("
    "sh.account ORDER BY sh.account)) FROM image_shares sh WHERE sh.cloud_id = i.cloud_id"
    " AND sh.image_id = i.image_id)::text, '[]')";

}  // namespace

absl::Status Catalog::SeedInventory(const std::string& json) {
  pb::Inventory inventory;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &inventory);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("The inventory file is not valid: ", parsed.message().as_string()));
  }
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    for (const auto& cloud : inventory.clouds()) {
      std::string id;
      if (auto s = CheckCloud(cloud, &id); !s.ok()) return s;
      txn.exec_params(kInsertCloud, id, cloud.display_name(), cloud.provider(), cloud.region());
    }
    for (const auto& t : inventory.instance_types()) {
      auto n = ParseCloudResourceName(t.name(), "instanceTypes", "instance_types.name");
      if (!n.ok()) return n.status();
      std::string type_id;
      if (auto s = CheckInstanceType(n->cloud_id, t, &type_id); !s.ok()) return s;
      txn.exec_params(kInsertInstanceType, n->cloud_id, type_id, Architectures(t), t.cpus(),
                      t.memory_mb());
    }
    for (const auto& i : inventory.images()) {
      auto n = ParseCloudResourceName(i.name(), "images", "images.name");
      if (!n.ok()) return n.status();
      txn.exec_params(kInsertImage, n->cloud_id, n->id, static_cast<int>(i.kind()),
                      i.provider_id().empty() ? n->id : i.provider_id(), i.display_name(), i.os(),
                      static_cast<int>(i.architecture()), i.agent_version(), "");
    }
    return absl::OkStatus();
  });
}

absl::Status Catalog::ListClouds(const Caller&, const pb::ListCloudsRequest& req,
                                 pb::ListCloudsResponse* out) {
  auto page_size = PageSize(req.page_size());
  if (!page_size.ok()) return page_size.status();
  auto cursor = DecodePageToken(req.page_token(), "clouds");
  if (!cursor.ok()) return cursor.status();
  return pool_->Run([&](pqxx::connection& c) {
    pqxx::nontransaction txn(c);
    pqxx::result r = txn.exec_params(kListClouds, *cursor, *page_size + 1);
    std::string last;
    for (size_t i = 0; i < r.size() && static_cast<int>(i) < *page_size; ++i) {
      pb::Cloud* cloud = out->add_clouds();
      last = r[i][0].c_str();
      cloud->set_name(CloudName(last));
      cloud->set_display_name(r[i][1].c_str());
      cloud->set_provider(r[i][2].c_str());
      cloud->set_region(r[i][3].c_str());
    }
    if (static_cast<int>(r.size()) > *page_size) {
      out->set_next_page_token(EncodePageToken(last, "clouds"));
    }
    return absl::OkStatus();
  });
}

absl::Status Catalog::RegisterCloud(const Caller&, const pb::RegisterCloudRequest& req,
                                    pb::Cloud* out) {
  std::string cloud_id;
  if (auto s = CheckCloud(req.cloud(), &cloud_id); !s.ok()) return s;
  std::vector<std::pair<std::string, const pb::InstanceType*>> types;
  for (const auto& t : req.instance_types()) {
    std::string type_id;
    if (auto s = CheckInstanceType(cloud_id, t, &type_id); !s.ok()) return s;
    types.emplace_back(type_id, &t);
  }
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    if (!txn.exec_params(kCloudExists, cloud_id).empty()) {
      return absl::AlreadyExistsError(
          absl::StrCat("Cloud ", req.cloud().name(), " is already registered."));
    }
    txn.exec_params(kInsertCloud, cloud_id, req.cloud().display_name(), req.cloud().provider(),
                    req.cloud().region());
    for (const auto& [id, t] : types) {
      txn.exec_params(kInsertInstanceType, cloud_id, id, Architectures(*t), t->cpus(),
                      t->memory_mb());
    }
    *out = req.cloud();
    return absl::OkStatus();
  });
}

absl::Status Catalog::ListInstanceTypes(const Caller&, const pb::ListInstanceTypesRequest& req,
                                        pb::ListInstanceTypesResponse* out) {
  auto cloud = ParseCloudName(req.parent(), "parent");
  if (!cloud.ok()) return cloud.status();
  auto page_size = PageSize(req.page_size());
  if (!page_size.ok()) return page_size.status();
  auto cursor = DecodePageToken(req.page_token(), *cloud);
  if (!cursor.ok()) return cursor.status();
  return pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    if (txn.exec_params(kCloudExists, *cloud).empty()) {
      return absl::NotFoundError(absl::StrCat("Cloud ", req.parent(), " not found."));
    }
    pqxx::result r = txn.exec_params(kListInstanceTypes, *cloud, *cursor, *page_size + 1);
    std::string last;
    for (size_t i = 0; i < r.size() && static_cast<int>(i) < *page_size; ++i) {
      pb::InstanceType* t = out->add_instance_types();
      last = r[i][0].c_str();
      t->set_name(InstanceTypeName(*cloud, last));
      for (int a : JsonInts(r[i][1].c_str()))
        t->add_architectures(static_cast<pb::Architecture>(a));
      t->set_cpus(r[i][2].as<int>());
      t->set_memory_mb(r[i][3].as<int64_t>());
    }
    if (static_cast<int>(r.size()) > *page_size) {
      out->set_next_page_token(EncodePageToken(last, *cloud));
    }
    return absl::OkStatus();
  });
}

absl::Status Catalog::ListImages(const Caller& caller, const pb::ListImagesRequest& req,
                                 pb::ListImagesResponse* out) {
  std::string cloud = "-";
  if (req.parent() != "clouds/-") {
    auto c = ParseCloudName(req.parent(), "parent");
    if (!c.ok()) return c.status();
    cloud = *c;
  }
  auto page_size = PageSize(req.page_size());
  if (!page_size.ok()) return page_size.status();
  std::string fingerprint = absl::StrCat(cloud, "|", req.kind());
  auto cursor = DecodePageToken(req.page_token(), fingerprint);
  if (!cursor.ok()) return cursor.status();
  std::vector<std::string> after = absl::StrSplit(*cursor, absl::MaxSplits('/', 1));
  if (after.size() != 2) after = {"", ""};
  return pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    if (cloud != "-" && txn.exec_params(kCloudExists, cloud).empty()) {
      return absl::NotFoundError(absl::StrCat("Cloud ", req.parent(), " not found."));
    }
    pqxx::result r =
        txn.exec_params(kListImages, caller.account, cloud, static_cast<int>(req.kind()), after[0],
                        after[1], *page_size + 1);
    for (size_t i = 0; i < r.size() && static_cast<int>(i) < *page_size; ++i) {
      FillImage(r[i], out->add_images());
      after = {r[i][0].c_str(), r[i][1].c_str()};
    }
    if (static_cast<int>(r.size()) > *page_size) {
      out->set_next_page_token(EncodePageToken(absl::StrCat(after[0], "/", after[1]), fingerprint));
    }
    return absl::OkStatus();
  });
}

absl::Status Catalog::RegisterImage(const Caller& caller, const pb::RegisterImageRequest& req,
                                    pb::Image* out) {
  auto cloud = ParseCloudName(req.parent(), "parent");
  if (!cloud.ok()) return cloud.status();
  const pb::Image& in = req.image();
  if (in.provider_id().empty() || !IsValidCloudResourceId(in.provider_id())) {
    return absl::InvalidArgumentError(
        "image.provider_id is required: the cloud's own id of the image, e.g. ami-0a1b2c3d.");
  }
  std::string image_id = req.image_id().empty() ? in.provider_id() : req.image_id();
  if (!IsValidCloudResourceId(image_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image_id \"", image_id, "\" is not valid: use letters, digits, '.', '_' or '-'."));
  }
  if (in.kind() == pb::IMAGE_KIND_UNSPECIFIED || !pb::ImageKind_IsValid(in.kind())) {
    return absl::InvalidArgumentError("image.kind is required: MACHINE, KERNEL or RAMDISK.");
  }
  if (in.kind() == pb::MACHINE && in.architecture() != pb::I386 &&
      in.architecture() != pb::X86_64) {
    return absl::InvalidArgumentError(
        "image.architecture is required for a MACHINE image: I386 (32-bit) or X86_64 (64-bit).");
  }
  if (in.display_name().size() > kMaxDisplayName || in.os().size() > 255 ||
      in.agent_version().size() > 64) {
    return absl::InvalidArgumentError(
        "image.display_name and image.os are limited to 255 bytes, agent_version to 64.");
  }
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    if (txn.exec_params(kCloudExists, *cloud).empty()) {
      return absl::NotFoundError(absl::StrCat("Cloud ", req.parent(), " not found."));
    }
    pqxx::result r =
        txn.exec_params(kInsertImage, *cloud, image_id, static_cast<int>(in.kind()),
                        in.provider_id(), in.display_name(), in.os(),
                        static_cast<int>(in.architecture()), in.agent_version(), caller.account);
    if (r.affected_rows() == 0) {
      return absl::AlreadyExistsError(absl::StrCat("Image ", ImageName(*cloud, image_id),
                                                   " already exists; choose another image_id."));
    }
    pqxx::result back =
        txn.exec_params(absl::StrCat("SELECT ", kImageColumns,
                                     " FROM images i WHERE cloud_id = $1 AND image_id = $2"),
                        *cloud, image_id);
    FillImage(back[0], out);
    return absl::OkStatus();
  });
}

absl::Status Catalog::ShareImage(const Caller& caller, const pb::ShareImageRequest& req,
                                 pb::Image* out) {
  auto name = ParseCloudResourceName(req.name(), "images", "name");
  if (!name.ok()) return name.status();
  if (req.accounts().empty()) {
    return absl::InvalidArgumentError(
        "accounts is empty: name the accounts/{account} to share with.");
  }
  std::set<std::string> accounts;
  for (const auto& a : req.accounts()) {
    auto id = ParseAccountName(a);
    if (!id.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("accounts entry \"", a, "\" is not valid; expected accounts/{account}."));
    }
    if (*id != caller.account) accounts.insert(*id);
  }
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    pqxx::result r = txn.exec_params(kImageOwner, name->cloud_id, name->id, caller.account);
    std::string owner = r.empty() ? "" : r[0][0].c_str();
    bool visible = !r.empty() && (owner.empty() || owner == caller.account || r[0][1].as<bool>());
    if (!visible) return absl::NotFoundError(absl::StrCat("Image ", req.name(), " not found."));
    if (owner != caller.account) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Image ", req.name(), owner.empty() ? " is public" : " belongs to another account",
          "; only its owner can share it."));
    }
    for (const auto& a : accounts) txn.exec_params(kShareImage, name->cloud_id, name->id, a);
    pqxx::result back =
        txn.exec_params(absl::StrCat("SELECT ", kImageColumns,
                                     " FROM images i WHERE cloud_id = $1 AND image_id = $2"),
                        name->cloud_id, name->id);
    FillImage(back[0], out);
    return absl::OkStatus();
  });
}

}  // namespace mci::catalog
