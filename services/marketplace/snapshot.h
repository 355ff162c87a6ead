#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "mci/catalog/v1/catalog.pb.h"
#include "mci/marketplace/v1/marketplace.pb.h"

namespace mci::marketplace {

// What `target` changes against `base`: settings added, removed or changed per cloud (ordered by
// cloud), description, display name and tags. Leaves the base/target names to the caller.
v1::ComparePublicationResponse CompareSnapshots(const catalog::v1::MultiCloudImage& base,
                                                const catalog::v1::MultiCloudImage& target);

// The seed's private-AMI warning: one finding per setting and image reference (image, kernel,
// ramdisk) that is private to the publisher (`publisher` = accounts/{a}) and not shared with every
// target account. `images` holds the images the publisher sees, by name.
std::vector<catalog::v1::Finding> PrivateImageWarnings(
    const catalog::v1::MultiCloudImage& snapshot, absl::string_view publisher,
    v1::Visibility visibility, const std::vector<std::string>& shared_with,
    const std::map<std::string, catalog::v1::Image>& images);

// The snapshot an import hands to the catalog: the published content with origin IMPORTED from
// the publication, the lineage kept and the published revision mirrored (for a HEAD publication,
// the revision after the source's latest).
catalog::v1::MultiCloudImage ImportSnapshot(const v1::Publication& publication);

}  // namespace mci::marketplace
