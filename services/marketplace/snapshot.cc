#include "services/marketplace/snapshot.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mci::marketplace {
namespace {

using catalog::v1::MultiCloudImageSetting;

std::vector<std::string> ChangedFields(const MultiCloudImageSetting& a,
                                       const MultiCloudImageSetting& b) {
  std::vector<std::string> fields;
  if (a.image() != b.image()) fields.push_back("image");
  if (a.instance_type() != b.instance_type()) fields.push_back("instance_type");
  if (a.kernel_image() != b.kernel_image()) fields.push_back("kernel_image");
  if (a.ramdisk_image() != b.ramdisk_image()) fields.push_back("ramdisk_image");
  if (a.user_data() != b.user_data()) fields.push_back("user_data");
  return fields;
}

// Settings by cloud; the setting's own name (which embeds its MCI) is not content.
std::map<std::string, MultiCloudImageSetting> ByCloud(const catalog::v1::MultiCloudImage& mci) {
  std::map<std::string, MultiCloudImageSetting> out;
  for (const auto& s : mci.settings()) {
    MultiCloudImageSetting copy = s;
    copy.clear_name();
    out[s.cloud()] = std::move(copy);
  }
  return out;
}

}  // namespace

v1::ComparePublicationResponse CompareSnapshots(const catalog::v1::MultiCloudImage& base,
                                                const catalog::v1::MultiCloudImage& target) {
  v1::ComparePublicationResponse out;
  auto before = ByCloud(base);
  auto after = ByCloud(target);
  std::set<std::string> clouds;
  for (const auto& [cloud, _] : before) clouds.insert(cloud);
  for (const auto& [cloud, _] : after) clouds.insert(cloud);
  for (const std::string& cloud : clouds) {
    auto b = before.find(cloud);
    auto a = after.find(cloud);
    v1::SettingChange change;
    change.set_cloud(cloud);
    if (b == before.end()) {
      change.set_kind(v1::ADDED);
      *change.mutable_target() = a->second;
    } else if (a == after.end()) {
      change.set_kind(v1::REMOVED);
      *change.mutable_base() = b->second;
    } else {
      std::vector<std::string> fields = ChangedFields(b->second, a->second);
      if (fields.empty()) continue;
      change.set_kind(v1::CHANGED);
      *change.mutable_base() = b->second;
      *change.mutable_target() = a->second;
      for (auto& f : fields) change.add_changed_fields(std::move(f));
    }
    *out.add_setting_changes() = std::move(change);
  }
  if (base.description() != target.description()) {
    out.mutable_description()->set_base(base.description());
    out.mutable_description()->set_target(target.description());
  }
  if (base.display_name() != target.display_name()) {
    out.mutable_display_name()->set_base(base.display_name());
    out.mutable_display_name()->set_target(target.display_name());
  }
  std::set<std::string> tags_before(base.tags().begin(), base.tags().end());
  std::set<std::string> tags_after(target.tags().begin(), target.tags().end());
  for (const auto& t : tags_after) {
    if (tags_before.count(t) == 0) out.add_tags_added(t);
  }
  for (const auto& t : tags_before) {
    if (tags_after.count(t) == 0) out.add_tags_removed(t);
  }
  out.set_identical(out.setting_changes().empty() && !out.has_description() &&
                    !out.has_display_name() && out.tags_added().empty() &&
                    out.tags_removed().empty());
  return out;
}

std::vector<catalog::v1::Finding> PrivateImageWarnings(
    const catalog::v1::MultiCloudImage& snapshot, absl::string_view publisher,
    v1::Visibility visibility, const std::vector<std::string>& shared_with,
    const std::map<std::string, catalog::v1::Image>& images) {
  std::vector<catalog::v1::Finding> findings;
  for (const auto& setting : snapshot.settings()) {
    for (const std::string* ref :
         {&setting.image(), &setting.kernel_image(), &setting.ramdisk_image()}) {
      if (ref->empty()) continue;
      auto it = images.find(*ref);
      if (it == images.end()) continue;
      const catalog::v1::Image& image = it->second;
      if (image.visibility() != catalog::v1::PRIVATE || image.owner() != publisher) continue;
      std::string who;
      if (visibility == v1::PUBLIC) {
        who = "every account (the publication is public)";
      } else {
        std::set<std::string> has(image.shared_with().begin(), image.shared_with().end());
        std::vector<std::string> missing;
        for (const auto& account : shared_with) {
          if (has.count(account) == 0) missing.push_back(account);
        }
        if (missing.empty()) continue;
        who = absl::StrJoin(missing, ", ");
      }
      std::string provider =
          image.provider_id().empty() ? "" : absl::StrCat(" (", image.provider_id(), ")");
      catalog::v1::Finding finding;
      finding.set_severity(catalog::v1::Finding::WARNING);
      finding.set_code("PRIVATE_IMAGE_NOT_SHARED");
      finding.set_cloud(setting.cloud());
      finding.set_message(
          absl::StrCat("The setting for ", setting.cloud(), " references ", *ref, provider,
                       ", an image private to ", publisher, " and not shared with ", who,
                       ": they cannot launch it. Share the image with them (ShareImage) as well."));
      findings.push_back(std::move(finding));
    }
  }
  return findings;
}

catalog::v1::MultiCloudImage ImportSnapshot(const v1::Publication& publication) {
  const catalog::v1::MultiCloudImage& published = publication.snapshot();
  catalog::v1::MultiCloudImage out;
  out.set_display_name(published.display_name());
  out.set_description(published.description());
  *out.mutable_tags() = published.tags();
  for (const auto& s : published.settings()) {
    auto* setting = out.add_settings();
    *setting = s;
    setting->clear_name();
  }
  auto* origin = out.mutable_origin();
  origin->set_kind(catalog::v1::Origin::IMPORTED);
  origin->set_source(publication.name());
  origin->set_source_display_name(published.display_name());
  origin->set_lineage(publication.lineage());
  origin->set_publication(publication.name());
  // A HEAD publication mirrors the revision its HEAD would become when committed: imported MCIs
  // always hold a committed revision.
  origin->set_source_revision(publication.revision() > 0 ? publication.revision()
                                                         : published.latest_revision() + 1);
  return out;
}

}  // namespace mci::marketplace
