#pragma once

#include <vector>

#include "libs/common/db.h"

namespace mci::marketplace {

// migrations/NNNN_*.sql, embedded at build time (mci_embed_migrations).
std::vector<db::Migration> Migrations();

}  // namespace mci::marketplace
