#include "services/templates/pg_repository.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/common/log.h"
#include "services/templates/names.h"
#include "services/templates/replica.h"

namespace mci::templates {
namespace {

using mci::events::v1::MultiCloudImageEvent;

// Advisory lock key spaces (first key of pg_advisory_xact_lock(int, int)).
constexpr int kMciLockSpace = 1;
constexpr int kRequestIdLockSpace = 2;

// Deletion states (mci_deletions.state).
constexpr int kReserved = 1;
constexpr int kRefused = 2;
constexpr int kDeleted = 3;
constexpr int kAborted = 4;

constexpr int kMaxUsagesInRefusal = 100;

// ---- SQL -----------------------------------------------------------------------------------

constexpr char kLockKey[] = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

constexpr char kSelectRequestId[] =
    "SELECT t.template_id FROM request_ids r JOIN server_templates t ON t.id = r.template"
    " WHERE r.account = $1 AND r.request_id = $2";
constexpr char kInsertRequestId[] =
    "INSERT INTO request_ids (account, request_id, template) VALUES ($1, $2, $3)";
constexpr char kTemplateExists[] =
    "SELECT 1 FROM server_templates WHERE account = $1 AND template_id = $2";
constexpr char kInsertTemplate[] =
    "INSERT INTO server_templates (account, template_id, display_name, description, cloned_from)"
    " VALUES ($1, $2, $3, $4, $5) RETURNING id";

// A template's columns as RecordFromRow reads them: of HEAD (server_templates), or of a committed
// revision (server_templates t, server_template_revisions r).
#define TEMPLATE_HEAD_COLUMNS                                                                   \
  "id, display_name, description, cloned_from, '' AS commit_message, latest_revision, version," \
  " (extract(epoch FROM create_time) * 1000000)::bigint,"                                       \
  " (extract(epoch FROM update_time) * 1000000)::bigint"
#define TEMPLATE_REVISION_COLUMNS                                                         \
  "t.id, r.display_name, r.description, r.cloned_from, r.commit_message, t.latest_revision," \
  " t.version, (extract(epoch FROM r.create_time) * 1000000)::bigint,"                    \
  " (extract(epoch FROM r.create_time) * 1000000)::bigint"
constexpr char kSelectHead[] = "SELECT " TEMPLATE_HEAD_COLUMNS
                               " FROM server_templates WHERE account = $1 AND template_id = $2";
constexpr char kSelectRevision[] =
    "SELECT " TEMPLATE_REVISION_COLUMNS
    " FROM server_templates t JOIN server_template_revisions r ON r.template = t.id"
    " WHERE t.account = $1 AND t.template_id = $2 AND r.revision = $3";
constexpr char kListHeads[] =
    "SELECT " TEMPLATE_HEAD_COLUMNS ", template_id"
    " FROM server_templates WHERE account = $1 AND id > $2 ORDER BY id LIMIT $3";
constexpr char kLockHead[] =
    "SELECT id, version, latest_revision, display_name, description, cloned_from"
    " FROM server_templates WHERE account = $1 AND template_id = $2 FOR UPDATE";
constexpr char kUpdateHead[] =
    "UPDATE server_templates SET display_name = $2, description = $3, version = version + 1,"
    " update_time = now() WHERE id = $1";
constexpr char kTouchHead[] =
    "UPDATE server_templates SET version = version + 1, update_time = now() WHERE id = $1";
constexpr char kDeleteTemplate[] = "DELETE FROM server_templates WHERE id = $1";
constexpr char kInsertRevision[] =
    "INSERT INTO server_template_revisions"
    " (template, revision, display_name, description, cloned_from, commit_message)"
    " VALUES ($1, $2, $3, $4, $5, $6)";
constexpr char kSetLatestRevision[] =
    "UPDATE server_templates SET latest_revision = $2, version = version + 1, update_time = now()"
    " WHERE id = $1";

constexpr char kSelectReferences[] =
    "SELECT mci, mci_revision, is_default, position FROM mci_references"
    " WHERE template = $1 AND template_revision = $2 ORDER BY is_default DESC, position";
// The HEAD references of several templates ($1: their row ids, "1,2,3"), as kSelectReferences
// orders them, after the template's row id and revision (ReferencesOfTemplates).
constexpr char kSelectHeadReferencesOf[] =
    "SELECT template, template_revision, mci, mci_revision, is_default, position"
    " FROM mci_references WHERE template = ANY(string_to_array($1, ',')::bigint[])"
    " AND template_revision = 0 ORDER BY template, is_default DESC, position";
constexpr char kSelectReference[] =
    "SELECT is_default FROM mci_references WHERE template = $1 AND template_revision = 0"
    " AND mci = $2 AND mci_revision = $3";
constexpr char kNextPosition[] =
    "SELECT count(*), coalesce(max(position), 0) + 1 FROM mci_references"
    " WHERE template = $1 AND template_revision = 0";
constexpr char kInsertReference[] =
    "INSERT INTO mci_references (template, template_revision, mci, mci_revision, position,"
    " is_default) VALUES ($1, $2, $3, $4, $5, $6)";
constexpr char kSetDefault[] =
    "UPDATE mci_references SET is_default = (mci = $2 AND mci_revision = $3)"
    " WHERE template = $1 AND template_revision = 0";
constexpr char kDeleteReference[] =
    "DELETE FROM mci_references WHERE template = $1 AND template_revision = 0 AND mci = $2"
    " AND mci_revision = $3 RETURNING is_default";
constexpr char kPromoteFirstReference[] =
    "UPDATE mci_references SET is_default = true WHERE template = $1 AND template_revision = 0"
    " AND position = (SELECT min(position) FROM mci_references"
    "                 WHERE template = $1 AND template_revision = 0)";

// Not prepared (see Prepare): a generic plan cannot use `mci_revision = $2` to read the index in
// the ORDER BY's order, and sorts every reference of the MCI for each page.
constexpr char kListUsages[] =
    "SELECT t.account, t.template_id, r.template, r.template_revision, r.mci, r.mci_revision,"
    " r.is_default FROM mci_references r JOIN server_templates t ON t.id = r.template"
    " WHERE r.mci = $1 AND ($2 < 0 OR r.mci_revision = $2)"
    " AND (r.template, r.template_revision, r.mci_revision) > ($3, $4, $5)"
    " ORDER BY r.template, r.template_revision, r.mci_revision LIMIT $6";

constexpr char kSelectFence[] =
    "SELECT deletion_id FROM mci_deletions WHERE mci = $1 AND state = 1";
constexpr char kSelectDeletion[] = "SELECT mci, state FROM mci_deletions WHERE deletion_id = $1";
constexpr char kUpsertDeletion[] =
    "INSERT INTO mci_deletions (deletion_id, mci, state) VALUES ($1, $2, $3::smallint)"
    " ON CONFLICT (deletion_id) DO UPDATE SET state = $3::smallint, update_time = now()";
// A deletion that is no longer the MCI's current one (the catalog started another) or that
// ended: its fence falls.
constexpr char kSupersedeFences[] =
    "UPDATE mci_deletions SET state = $3, update_time = now()"
    " WHERE mci = $1 AND state = 1 AND deletion_id <> $2";
constexpr char kAbortDeletion[] =
    "UPDATE mci_deletions SET state = 4, update_time = now()"
    " WHERE deletion_id = $1 AND state IN (1, 2)";

constexpr char kSelectReplicas[] =
    "SELECT mci, account, display_name, state, sequence, row_version,"
    " array_to_string(head_clouds, ','),"
    " coalesce((extract(epoch FROM tombstone_time) * 1000000)::bigint, -1)"
    " FROM mci_replica WHERE mci = ANY (string_to_array($1, E'\\x1f'))";
constexpr char kSelectReplicaRevisions[] =
    "SELECT mci, revision, array_to_string(clouds, ',') FROM mci_replica_revisions"
    " WHERE mci = ANY (string_to_array($1, E'\\x1f'))";
constexpr char kSelectReplicaState[] = "SELECT state FROM mci_replica WHERE mci = $1";
constexpr char kSelectReplicaRevision[] =
    "SELECT 1 FROM mci_replica_revisions WHERE mci = $1 AND revision = $2";
// The catalog's answer about HEAD, with the event sequence it reflects: the events up to it,
// still in flight to the consumer, are then ignored rather than set HEAD back to what it was.
constexpr char kInsertCatalogReplica[] =
    "INSERT INTO mci_replica (mci, account, display_name, state, sequence, head_clouds,"
    " row_version) VALUES ($1, $2, $3, 1, $5, string_to_array($4, ','), 1)"
    " ON CONFLICT (mci) DO NOTHING";
// A tombstoned row the catalog says exists again belongs to a new MCI of the same name.
constexpr char kReviveReplica[] =
    "UPDATE mci_replica SET account = $2, display_name = $3, state = 1, sequence = $6,"
    " head_clouds = string_to_array($4, ','), tombstone_time = NULL,"
    " row_version = row_version + 1, update_time = now()"
    " WHERE mci = $1 AND row_version = $5 AND state = 3";
constexpr char kRefreshReplicaHead[] =
    "UPDATE mci_replica SET display_name = $2, state = 1, head_clouds = string_to_array($3, ','),"
    " sequence = greatest(sequence, $5), row_version = row_version + 1, update_time = now()"
    " WHERE mci = $1 AND row_version = $4 AND state <> 3";
constexpr char kDeleteReplicaRevisions[] = "DELETE FROM mci_replica_revisions WHERE mci = $1";
constexpr char kInsertReplicaRevision[] =
    "INSERT INTO mci_replica_revisions (mci, revision, clouds)"
    " VALUES ($1, $2, string_to_array($3, ',')) ON CONFLICT DO NOTHING";
constexpr char kTombstoneReplica[] =
    "INSERT INTO mci_replica (mci, account, state, tombstone_time, row_version)"
    " VALUES ($1, $2, 3, now(), 1)"
    " ON CONFLICT (mci) DO UPDATE SET state = 3, tombstone_time = now(),"
    " row_version = mci_replica.row_version + 1, update_time = now()";

// ---- helpers -------------------------------------------------------------------------------

constexpr char kSep = '\x1f';

std::vector<std::string> SplitClouds(const pqxx::field& f) {
  std::string text = f.as<std::string>();
  if (text.empty()) return {};
  return absl::StrSplit(text, ',');
}

std::string JoinClouds(const std::vector<std::string>& clouds) {
  return absl::StrJoin(clouds, ",");
}

absl::Status TemplateNotFound(const std::string& account, const std::string& id,
                              int64_t revision = 0) {
  return absl::NotFoundError(absl::StrCat(
      "ServerTemplate ", TemplateResourceName(account, id, revision), " was not found."));
}

absl::Status EtagMismatch(const std::string& account, const std::string& id) {
  return absl::AbortedError(absl::StrCat(
      "The etag does not match the current ServerTemplate ", TemplateResourceName(account, id, 0),
      ": it changed since it was read; read it again and retry with the new etag."));
}

void LockKey(pqxx::work& txn, int space, const std::string& key) {
  txn.exec_prepared("kLockKey", space, key);
}

void LockMci(pqxx::work& txn, const std::string& mci) { LockKey(txn, kMciLockSpace, mci); }

// A reference from the columns mci, mci_revision, is_default, position, from `first` on.
Reference ParseReference(const pqxx::row& row, int first) {
  Reference r;
  r.mci = row[first].as<std::string>();
  r.mci_revision = row[first + 1].as<int64_t>();
  r.is_default = row[first + 2].as<bool>();
  r.position = row[first + 3].as<int>();
  return r;
}

std::vector<Reference> ParseReferences(const pqxx::result& rows) {
  std::vector<Reference> refs;
  for (const auto& row : rows) refs.push_back(ParseReference(row, 0));
  return refs;
}

// Rows of template, template_revision, then a reference's columns, by (template, revision), each
// template's references in the rows' order.
std::map<std::pair<int64_t, int64_t>, std::vector<Reference>> ReferencesOfTemplates(
    const pqxx::result& rows) {
  std::map<std::pair<int64_t, int64_t>, std::vector<Reference>> out;
  for (const auto& row : rows) {
    out[{row[0].as<int64_t>(), row[1].as<int64_t>()}].push_back(ParseReference(row, 2));
  }
  return out;
}

std::vector<Reference> LoadReferences(pqxx::transaction_base& txn, int64_t row_id,
                                      int64_t revision) {
  return ParseReferences(txn.exec_prepared("kSelectReferences", row_id, revision));
}

TemplateRecord RecordFromRow(const pqxx::row& row, const std::string& account,
                             const std::string& template_id, int64_t revision) {
  TemplateRecord t;
  t.row_id = row[0].as<int64_t>();
  t.account = account;
  t.template_id = template_id;
  t.revision = revision;
  t.display_name = row[1].as<std::string>();
  t.description = row[2].as<std::string>();
  t.cloned_from = row[3].as<std::string>();
  t.commit_message = row[4].as<std::string>();
  t.latest_revision = row[5].as<int64_t>();
  t.version = row[6].as<int64_t>();
  t.create_time = absl::FromUnixMicros(row[7].as<int64_t>());
  t.update_time = absl::FromUnixMicros(row[8].as<int64_t>());
  return t;
}

absl::StatusOr<TemplateRecord> LoadTemplate(pqxx::transaction_base& txn, const std::string& account,
                                            const std::string& template_id, int64_t revision) {
  pqxx::result r = revision == 0
                       ? txn.exec_prepared("kSelectHead", account, template_id)
                       : txn.exec_prepared("kSelectRevision", account, template_id, revision);
  if (r.empty()) return TemplateNotFound(account, template_id, revision);
  TemplateRecord t = RecordFromRow(r[0], account, template_id, revision);
  t.references = LoadReferences(txn, t.row_id, revision);
  return t;
}

struct LockedHead {
  int64_t row_id = 0;
  int64_t version = 0;
  int64_t latest_revision = 0;
  std::string display_name, description, cloned_from;
};

// The HEAD row kLockHead locked and read.
absl::StatusOr<LockedHead> ParseLockedHead(const pqxx::result& r, const std::string& account,
                                           const std::string& template_id,
                                           int64_t expected_version) {
  if (r.empty()) return TemplateNotFound(account, template_id);
  LockedHead h;
  h.row_id = r[0][0].as<int64_t>();
  h.version = r[0][1].as<int64_t>();
  h.latest_revision = r[0][2].as<int64_t>();
  h.display_name = r[0][3].as<std::string>();
  h.description = r[0][4].as<std::string>();
  h.cloned_from = r[0][5].as<std::string>();
  if (expected_version != 0 && expected_version != h.version) {
    return EtagMismatch(account, template_id);
  }
  return h;
}

absl::StatusOr<LockedHead> LockHead(pqxx::work& txn, const std::string& account,
                                    const std::string& template_id, int64_t expected_version) {
  return ParseLockedHead(txn.exec_prepared("kLockHead", account, template_id), account, template_id,
                         expected_version);
}

// Runs `edit` on the locked HEAD row of a template in one transaction, then answers the template
// as the transaction leaves it.
template <typename Edit>
absl::StatusOr<TemplateRecord> EditHead(db::Pool* pool, const std::string& account,
                                        const std::string& template_id, int64_t expected_version,
                                        Edit&& edit) {
  TemplateRecord out;
  absl::Status status = pool->Transact([&](pqxx::work& txn) -> absl::Status {
    auto head = LockHead(txn, account, template_id, expected_version);
    if (!head.ok()) return head.status();
    if (absl::Status s = edit(txn, *head); !s.ok()) return s;
    auto t = LoadTemplate(txn, account, template_id, 0);
    if (!t.ok()) return t.status();
    out = *std::move(t);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

// The reads that tell, under the MCI's lock, whether a new reference to this MCI (revision) may
// be committed: its deletion fence, its replica's state and (for a revision) that revision.
std::vector<std::string> ReferenceableReads(pqxx::transaction_base& txn, const std::string& mci,
                                            int64_t revision) {
  std::vector<std::string> reads = {db::Execute(txn, "kSelectFence", mci),
                                    db::Execute(txn, "kSelectReplicaState", mci)};
  if (revision > 0) reads.push_back(db::Execute(txn, "kSelectReplicaRevision", mci, revision));
  return reads;
}

// The verdict on ReferenceableReads' results (`r`, in their order).
absl::Status Referenceable(const std::string& mci, int64_t revision, const pqxx::result* r) {
  std::string name = MultiCloudImageResourceName(mci, revision);
  if (!r[0].empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("MultiCloud Image ", mci,
                     " is being deleted; it cannot be referenced by a ServerTemplate."));
  }
  const pqxx::result& state = r[1];
  if (state.empty() || state[0][0].as<int>() == static_cast<int>(ReplicaState::kDeleted)) {
    return absl::NotFoundError(absl::StrCat("MultiCloud Image ", name, " was not found."));
  }
  if (state[0][0].as<int>() == static_cast<int>(ReplicaState::kDeleting)) {
    return absl::FailedPreconditionError(
        absl::StrCat("MultiCloud Image ", mci,
                     " is being deleted; it cannot be referenced by a ServerTemplate."));
  }
  if (revision > 0 && r[2].empty()) {
    return absl::NotFoundError(absl::StrCat("MultiCloud Image revision ", name, " was not found."));
  }
  return absl::OkStatus();
}

// Under the MCI's lock: may a new reference to this MCI (revision) be committed? One round trip.
absl::Status CheckReferenceable(pqxx::transaction_base& txn, const std::string& mci,
                                int64_t revision) {
  std::vector<pqxx::result> r = db::Together(txn, ReferenceableReads(txn, mci, revision));
  return Referenceable(mci, revision, r.data());
}

// Locks the MCIs of `refs` in name order (a fixed order, so transactions never deadlock) and
// checks that each may be referenced.
absl::Status LockAndCheckAll(pqxx::work& txn, const std::vector<Reference>& refs) {
  std::set<std::string> mcis;
  for (const auto& r : refs) mcis.insert(r.mci);
  for (const auto& m : mcis) LockMci(txn, m);
  for (const auto& r : refs) {
    if (absl::Status s = CheckReferenceable(txn, r.mci, r.mci_revision); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<Usage> QueryUsages(pqxx::transaction_base& txn, const std::string& mci,
                               int64_t mci_revision, const Repository::UsageKey& after, int limit) {
  std::vector<Usage> usages;
  for (const auto& row : txn.exec_params(kListUsages, mci, mci_revision, after.template_row_id,
                                         after.template_revision, after.mci_revision, limit)) {
    Usage u;
    u.account = row[0].as<std::string>();
    u.template_id = row[1].as<std::string>();
    u.template_row_id = row[2].as<int64_t>();
    u.template_revision = row[3].as<int64_t>();
    u.mci = row[4].as<std::string>();
    u.mci_revision = row[5].as<int64_t>();
    u.is_default = row[6].as<bool>();
    usages.push_back(std::move(u));
  }
  return usages;
}

std::string AccountOfMci(const std::string& mci) {
  auto parsed = ParseMultiCloudImageName(mci, "multi_cloud_image");
  return parsed.ok() ? parsed->account : "";
}

}  // namespace

absl::StatusOr<TemplateRecord> PgRepository::CreateTemplate(const NewTemplate& t) {
  TemplateRecord out;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    if (!t.request_id.empty()) {
      LockKey(txn, kRequestIdLockSpace, absl::StrCat(t.account, "/", t.request_id));
      pqxx::result seen = txn.exec_prepared("kSelectRequestId", t.account, t.request_id);
      if (!seen.empty()) {
        auto existing = LoadTemplate(txn, t.account, seen[0][0].as<std::string>(), 0);
        if (!existing.ok()) return existing.status();
        out = *std::move(existing);
        return absl::OkStatus();
      }
    }
    if (!txn.exec_prepared("kTemplateExists", t.account, t.template_id).empty()) {
      return absl::AlreadyExistsError(
          absl::StrCat("ServerTemplate ", TemplateResourceName(t.account, t.template_id, 0),
                       " already exists; choose another server_template_id."));
    }
    if (absl::Status s = LockAndCheckAll(txn, t.references); !s.ok()) return s;
    int64_t row_id = txn.exec_prepared1("kInsertTemplate", t.account, t.template_id, t.display_name,
                                        t.description, t.cloned_from)[0]
                         .as<int64_t>();
    int position = 0;
    for (const auto& r : t.references) {
      txn.exec_prepared("kInsertReference", row_id, 0, r.mci, r.mci_revision, ++position,
                        r.is_default);
    }
    if (!t.request_id.empty())
      txn.exec_prepared("kInsertRequestId", t.account, t.request_id, row_id);
    auto created = LoadTemplate(txn, t.account, t.template_id, 0);
    if (!created.ok()) return created.status();
    out = *std::move(created);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

void PgRepository::Prepare(pqxx::connection& conn) {
  // Every statement but kListUsages, parsed and planned once per connection rather than on every
  // call (a prepared statement's generic plan would sort every usage of the MCI per page).
  static const std::pair<const char*, const char*> kStatements[] = {
      {"kAbortDeletion", kAbortDeletion},
      {"kDeleteReference", kDeleteReference},
      {"kDeleteReplicaRevisions", kDeleteReplicaRevisions},
      {"kDeleteTemplate", kDeleteTemplate},
      {"kInsertCatalogReplica", kInsertCatalogReplica},
      {"kInsertReference", kInsertReference},
      {"kInsertReplicaRevision", kInsertReplicaRevision},
      {"kInsertRequestId", kInsertRequestId},
      {"kInsertRevision", kInsertRevision},
      {"kInsertTemplate", kInsertTemplate},
      {"kListHeads", kListHeads},
      {"kSelectHeadReferencesOf", kSelectHeadReferencesOf},
      {"kLockHead", kLockHead},
      {"kLockKey", kLockKey},
      {"kNextPosition", kNextPosition},
      {"kPromoteFirstReference", kPromoteFirstReference},
      {"kRefreshReplicaHead", kRefreshReplicaHead},
      {"kReviveReplica", kReviveReplica},
      {"kSelectDeletion", kSelectDeletion},
      {"kSelectFence", kSelectFence},
      {"kSelectHead", kSelectHead},
      {"kSelectReference", kSelectReference},
      {"kSelectReferences", kSelectReferences},
      {"kSelectReplicaRevision", kSelectReplicaRevision},
      {"kSelectReplicaRevisions", kSelectReplicaRevisions},
      {"kSelectReplicaState", kSelectReplicaState},
      {"kSelectReplicas", kSelectReplicas},
      {"kSelectRequestId", kSelectRequestId},
      {"kSelectRevision", kSelectRevision},
      {"kSetDefault", kSetDefault},
      {"kSetLatestRevision", kSetLatestRevision},
      {"kSupersedeFences", kSupersedeFences},
      {"kTemplateExists", kTemplateExists},
      {"kTombstoneReplica", kTombstoneReplica},
      {"kTouchHead", kTouchHead},
      {"kUpdateHead", kUpdateHead},
      {"kUpsertDeletion", kUpsertDeletion},
  };
  // Prepared at once, not at first use: db::Execute runs them by name.
  for (const auto& [name, sql] : kStatements) {
    conn.prepare(name, sql);
    conn.prepare_now(name);
  }
}

absl::StatusOr<TemplateRecord> PgRepository::GetTemplate(const std::string& account,
                                                         const std::string& template_id,
                                                         int64_t revision) {
  TemplateRecord out;
  // Reads are single round trips without BEGIN/COMMIT; a write landing between the row and its
  // references shows at worst an older etag, which a later edit then refuses (ABORTED).
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    auto t = LoadTemplate(txn, account, template_id, revision);
    if (!t.ok()) return t.status();
    out = *std::move(t);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<TemplateRecord>> PgRepository::GetTemplates(
    const std::vector<TemplateKey>& keys) {
  std::vector<TemplateRecord> out;
  if (keys.empty()) return out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    out.clear();
    // The keys as a VALUES list (quoted: no parsing of ids in SQL); the templates and their
    // references in one round trip, each statement joined with them.
    std::string values = absl::StrJoin(
        keys, ",", [&txn](std::string* to, const TemplateKey& k) {
          absl::StrAppend(to, "(", txn.quote(k.account), ",", txn.quote(k.template_id), ",",
                          k.revision, "::bigint)");
        });
    const std::string with = absl::StrCat(
        "WITH k AS (SELECT DISTINCT * FROM (VALUES ", values,
        ") AS v (account, template_id, revision)) ");
    std::vector<pqxx::result> r = db::Together(
        txn,
        {absl::StrCat(with, "SELECT " TEMPLATE_HEAD_COLUMNS ", account, template_id, 0::bigint"
                            " FROM server_templates JOIN k USING (account, template_id)"
                            " WHERE k.revision = 0"
                            " UNION ALL SELECT " TEMPLATE_REVISION_COLUMNS
                            ", t.account, t.template_id, r.revision"
                            " FROM server_templates t JOIN server_template_revisions r"
                            " ON r.template = t.id JOIN k ON k.account = t.account"
                            " AND k.template_id = t.template_id AND k.revision = r.revision"),
         absl::StrCat(with,
                      "SELECT m.template, m.template_revision, m.mci, m.mci_revision,"
                      " m.is_default, m.position FROM mci_references m"
                      " JOIN server_templates t ON t.id = m.template JOIN k"
                      " ON k.account = t.account AND k.template_id = t.template_id"
                      " AND k.revision = m.template_revision"
                      " ORDER BY m.template, m.template_revision, m.is_default DESC, m.position")});
    auto references = ReferencesOfTemplates(r[1]);
    for (const auto& row : r[0]) {
      out.push_back(RecordFromRow(row, row[9].as<std::string>(), row[10].as<std::string>(),
                                  row[11].as<int64_t>()));
      out.back().references = std::move(references[{out.back().row_id, out.back().revision}]);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<TemplateRecord>> PgRepository::ListTemplates(const std::string& account,
                                                                        int64_t after_row_id,
                                                                        int limit) {
  std::vector<TemplateRecord> out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    out.clear();
    // Two round trips for the page: the templates, then all their references.
    std::vector<std::string> row_ids;
    for (const auto& row : txn.exec_prepared("kListHeads", account, after_row_id, limit)) {
      out.push_back(RecordFromRow(row, account, row[9].as<std::string>(), 0));
      row_ids.push_back(std::to_string(out.back().row_id));
    }
    if (out.empty()) return absl::OkStatus();
    auto references = ReferencesOfTemplates(
        txn.exec_prepared("kSelectHeadReferencesOf", absl::StrJoin(row_ids, ",")));
    for (TemplateRecord& t : out) t.references = std::move(references[{t.row_id, 0}]);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<TemplateRecord> PgRepository::UpdateTemplate(const std::string& account,
                                                            const std::string& template_id,
                                                            const TemplateUpdate& update) {
  return EditHead(pool_, account, template_id, update.expected_version,
                  [&](pqxx::work& txn, const LockedHead& head) -> absl::Status {
                    txn.exec_prepared("kUpdateHead", head.row_id,
                                      update.display_name.value_or(head.display_name),
                                      update.description.value_or(head.description));
                    return absl::OkStatus();
                  });
}

absl::Status PgRepository::DeleteTemplate(const std::string& account,
                                          const std::string& template_id,
                                          int64_t expected_version) {
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    auto head = LockHead(txn, account, template_id, expected_version);
    if (!head.ok()) return head.status();
    txn.exec_prepared("kDeleteTemplate", head->row_id);
    return absl::OkStatus();
  });
}

absl::StatusOr<TemplateRecord> PgRepository::CommitTemplate(
    const std::string& account, const std::string& template_id, int64_t expected_version,
    const std::string& message, const std::map<std::string, int64_t>& pins) {
  TemplateRecord out;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    auto head = LockHead(txn, account, template_id, expected_version);
    if (!head.ok()) return head.status();
    std::vector<Reference> refs = LoadReferences(txn, head->row_id, 0);
    std::vector<std::string> unpinned;
    std::vector<Reference> pinned;
    for (Reference r : refs) {
      if (r.mci_revision == 0) {
        auto pin = pins.find(r.mci);
        if (pin == pins.end()) {
          unpinned.push_back(r.mci);
          continue;
        }
        r.mci_revision = pin->second;
      }
      // HEAD and @N of one MCI may both pin the same revision: keep one, default if either was.
      auto same = std::find(pinned.begin(), pinned.end(), r);
      if (same != pinned.end()) {
        same->is_default = same->is_default || r.is_default;
      } else {
        pinned.push_back(r);
      }
    }
    if (!unpinned.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ServerTemplate ", TemplateResourceName(account, template_id, 0),
          " references the HEAD of MultiCloud Images ", absl::StrJoin(unpinned, ", "),
          "; a committed ServerTemplate pins committed revisions: commit those MultiCloud Images "
          "and reference their revisions, or set commit_head_multi_cloud_images."));
    }
    if (absl::Status s = LockAndCheckAll(txn, pinned); !s.ok()) return s;
    int64_t revision = head->latest_revision + 1;
    txn.exec_prepared("kInsertRevision", head->row_id, revision, head->display_name,
                      head->description, head->cloned_from, message);
    int position = 0;
    for (const auto& r : pinned) {
      txn.exec_prepared("kInsertReference", head->row_id, revision, r.mci, r.mci_revision,
                        ++position, r.is_default);
    }
    txn.exec_prepared("kSetLatestRevision", head->row_id, revision);
    auto t = LoadTemplate(txn, account, template_id, revision);
    if (!t.ok()) return t.status();
    out = *std::move(t);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<TemplateRecord> PgRepository::AddReference(const std::string& account,
                                                          const std::string& template_id,
                                                          const Reference& reference,
                                                          bool make_default) {
  // EditHead's transaction in three round trips (db::Together, Pool::TransactInline): BEGIN with
  // the HEAD's lock, the MCI's lock and the checks under it; the reference's reads; the writes
  // with the answer's reads and COMMIT.
  TemplateRecord out;
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    std::vector<std::string> first = {"BEGIN", db::Execute(txn, "kLockHead", account, template_id),
                                      db::Execute(txn, "kLockKey", kMciLockSpace, reference.mci)};
    for (std::string& read : ReferenceableReads(txn, reference.mci, reference.mci_revision)) {
      first.push_back(std::move(read));
    }
    std::vector<pqxx::result> r = db::Together(txn, first);
    auto head = ParseLockedHead(r[1], account, template_id, 0);
    if (!head.ok()) return head.status();
    if (absl::Status s = Referenceable(reference.mci, reference.mci_revision, &r[3]); !s.ok()) {
      return s;
    }
    std::vector<pqxx::result> found = db::Together(
        txn,
        {db::Execute(txn, "kSelectReference", head->row_id, reference.mci, reference.mci_revision),
         db::Execute(txn, "kNextPosition", head->row_id)});
    const pqxx::result& existing = found[0];
    bool is_default = !existing.empty() && existing[0][0].as<bool>();
    bool changed = false;
    std::vector<std::string> last;
    if (existing.empty()) {
      const pqxx::row next = found[1][0];
      is_default = next[0].as<int64_t>() == 0;
      last.push_back(db::Execute(txn, "kInsertReference", head->row_id, 0, reference.mci,
                                 reference.mci_revision, next[1].as<int>(), is_default));
      changed = true;
    }
    if (make_default && !is_default) {
      last.push_back(
          db::Execute(txn, "kSetDefault", head->row_id, reference.mci, reference.mci_revision));
      changed = true;
    }
    if (changed) last.push_back(db::Execute(txn, "kTouchHead", head->row_id));
    const size_t read = last.size();
    last.push_back(db::Execute(txn, "kSelectHead", account, template_id));
    last.push_back(db::Execute(txn, "kSelectReferences", head->row_id, 0));
    last.push_back("COMMIT");
    std::vector<pqxx::result> w = db::Together(txn, last);
    if (w[read].empty()) return TemplateNotFound(account, template_id);
    out = RecordFromRow(w[read][0], account, template_id, 0);
    out.references = ParseReferences(w[read + 1]);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<TemplateRecord> PgRepository::RemoveReference(const std::string& account,
                                                             const std::string& template_id,
                                                             const Reference& reference) {
  return EditHead(pool_, account, template_id, 0,
                  [&](pqxx::work& txn, const LockedHead& head) -> absl::Status {
                    pqxx::result removed = txn.exec_prepared("kDeleteReference", head.row_id,
                                                             reference.mci, reference.mci_revision);
                    if (removed.empty()) {
                      return absl::NotFoundError(absl::StrCat(
                          "ServerTemplate ", TemplateResourceName(account, template_id, 0),
                          " does not reference MultiCloud Image ",
                          MultiCloudImageResourceName(reference.mci, reference.mci_revision), "."));
                    }
                    if (removed[0][0].as<bool>())
                      txn.exec_prepared("kPromoteFirstReference", head.row_id);
                    txn.exec_prepared("kTouchHead", head.row_id);
                    return absl::OkStatus();
                  });
}

absl::StatusOr<TemplateRecord> PgRepository::SetDefaultReference(const std::string& account,
                                                                 const std::string& template_id,
                                                                 const Reference& reference) {
  return EditHead(
      pool_, account, template_id, 0, [&](pqxx::work& txn, const LockedHead& head) -> absl::Status {
        pqxx::result existing = txn.exec_prepared("kSelectReference", head.row_id, reference.mci,
                                                  reference.mci_revision);
        if (existing.empty()) {
          return absl::NotFoundError(
              absl::StrCat("ServerTemplate ", TemplateResourceName(account, template_id, 0),
                           " does not reference MultiCloud Image ",
                           MultiCloudImageResourceName(reference.mci, reference.mci_revision),
                           "; add it with AddMultiCloudImage first."));
        }
        if (!existing[0][0].as<bool>()) {
          txn.exec_prepared("kSetDefault", head.row_id, reference.mci, reference.mci_revision);
          txn.exec_prepared("kTouchHead", head.row_id);
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<std::vector<Usage>> PgRepository::ListUsages(const std::string& mci,
                                                            std::optional<int64_t> mci_revision,
                                                            const UsageKey& after, int limit) {
  std::vector<Usage> out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    out = QueryUsages(txn, mci, mci_revision.value_or(-1), after, limit);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::map<std::string, ReplicaRecord>> PgRepository::GetReplicas(
    const std::vector<std::string>& mcis) {
  std::map<std::string, ReplicaRecord> out;
  if (mcis.empty()) return out;
  std::string keys = absl::StrJoin(mcis, std::string(1, kSep));
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    out.clear();
    std::vector<pqxx::result> r =
        db::Together(txn, {db::Execute(txn, "kSelectReplicas", keys),
                           db::Execute(txn, "kSelectReplicaRevisions", keys)});
    for (const auto& row : r[0]) {
      ReplicaRecord r;
      r.mci = row[0].as<std::string>();
      r.account = row[1].as<std::string>();
      r.display_name = row[2].as<std::string>();
      r.state = static_cast<ReplicaState>(row[3].as<int>());
      r.sequence = row[4].as<int64_t>();
      r.row_version = row[5].as<int64_t>();
      r.head_clouds = SplitClouds(row[6]);
      int64_t tombstone = row[7].as<int64_t>();
      if (tombstone >= 0) r.tombstone_time = absl::FromUnixMicros(tombstone);
      out[r.mci] = std::move(r);
    }
    for (const auto& row : r[1]) {
      auto it = out.find(row[0].as<std::string>());
      if (it != out.end()) it->second.revision_clouds[row[1].as<int64_t>()] = SplitClouds(row[2]);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status PgRepository::RecordCatalogState(const CatalogState& state,
                                              std::optional<int64_t> expected_row_version) {
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    LockMci(txn, state.mci);
    std::string head_clouds = state.revision == 0 ? JoinClouds(state.clouds) : "";
    if (!expected_row_version.has_value()) {
      txn.exec_prepared("kInsertCatalogReplica", state.mci, state.account, state.display_name,
                        head_clouds, state.sequence);
    } else if (state.revision == 0) {
      pqxx::result revived =
          txn.exec_prepared("kReviveReplica", state.mci, state.account, state.display_name,
                            head_clouds, *expected_row_version, state.sequence);
      if (revived.affected_rows() > 0) {
        txn.exec_prepared("kDeleteReplicaRevisions", state.mci);
      } else {
        txn.exec_prepared("kRefreshReplicaHead", state.mci, state.display_name, head_clouds,
                          *expected_row_version, state.sequence);
      }
    }
    if (state.revision > 0) {
      txn.exec_prepared("kInsertReplicaRevision", state.mci, state.revision,
                        JoinClouds(state.clouds));
    }
    return absl::OkStatus();
  });
}

namespace {

// An event's effect on the deletion fences (keyed by deletion id and idempotent, so they hold
// even for an event the replica itself ignores; they back up a Release the catalog could not
// deliver).
void ApplyFenceEffects(pqxx::transaction_base& txn, const MultiCloudImageEvent& event) {
  const std::string& mci = event.multi_cloud_image();
  if (event.type() == MultiCloudImageEvent::DELETED) {
    // Only this deletion's fence: a late event of an earlier MCI of the same name must not drop
    // the fence of a deletion under way now.
    if (!event.deletion_id().empty()) {
      txn.exec_prepared("kUpsertDeletion", event.deletion_id(), mci, kDeleted);
    } else {
      txn.exec_prepared("kSupersedeFences", mci, "", kDeleted);
    }
  } else if (event.type() == MultiCloudImageEvent::DELETION_ABORTED &&
             !event.deletion_id().empty()) {
    pqxx::result known = txn.exec_prepared("kSelectDeletion", event.deletion_id());
    if (known.empty()) {
      txn.exec_prepared("kUpsertDeletion", event.deletion_id(), mci, kAborted);
    } else {
      txn.exec_prepared("kAbortDeletion", event.deletion_id());
    }
  }
}

// What a batch leaves of one MCI's replica row: events are decided one after the other in
// memory (exactly as one transaction each would), and only the outcome is written.
struct PendingReplica {
  std::optional<StoredReplica> stored;
  const MultiCloudImageEvent* last = nullptr;  // the newest event applied
  bool replaced = false;                       // its revisions start over
  std::map<int64_t, std::string> revisions;    // revision -> clouds, first seen wins
};

// Applies `ordered` (grouped by MCI name, each MCI's events in stream order) in one transaction
// with a fixed number of statements, however many events: at 1,000 events/s a statement per event
// and row would fall behind. `txn` is not in a transaction: BEGIN rides on the first round trip
// and COMMIT on the last, two round trips in all (a pqxx::work costs two more, and under load
// every round trip waits for a busy CPU); Pool::TransactInline rolls back when this throws.
// `ignored`: the events the replica already had (or a newer one), left as they were.
void ApplyEventsInOneTransaction(pqxx::nontransaction& txn,
                                 const std::vector<const MultiCloudImageEvent*>& ordered,
                                 std::vector<const MultiCloudImageEvent*>* ignored) {
  std::vector<std::string> mcis;
  for (const auto* e : ordered) {
    if (mcis.empty() || mcis.back() != e->multi_cloud_image()) {
      mcis.push_back(e->multi_cloud_image());
    }
  }
  std::string list = absl::StrJoin(
      mcis, ",", [&txn](std::string* out, const std::string& m) { out->append(txn.quote(m)); });
  // One round trip (the simple protocol runs the statements in order, and the result is the
  // last one's): the MCI locks, in name order as LockMci is taken everywhere else (unnest keeps
  // the array's order), then their replica rows.
  pqxx::result stored_rows =
      txn.exec(absl::StrCat("BEGIN; SELECT pg_advisory_xact_lock(", kMciLockSpace,
                            ", hashtext(m)) FROM unnest(ARRAY[", list,
                            "]::text[]) AS m; SELECT mci, state, sequence,"
                            " coalesce((extract(epoch FROM tombstone_time) * 1000000)::bigint, -1)"
                            " FROM mci_replica WHERE mci IN (",
                            list, ") FOR UPDATE"));
  for (const auto* e : ordered) ApplyFenceEffects(txn, *e);

  std::map<std::string, PendingReplica> pending;
  for (const auto& row : stored_rows) {
    StoredReplica s;
    s.state = static_cast<ReplicaState>(row[1].as<int>());
    s.sequence = row[2].as<int64_t>();
    int64_t tombstone = row[3].as<int64_t>();
    if (tombstone >= 0) s.tombstone_time = absl::FromUnixMicros(tombstone);
    pending[row[0].as<std::string>()].stored = s;
  }
  for (const auto* e : ordered) {
    PendingReplica& p = pending[e->multi_cloud_image()];
    ReplicaUpdate update = DecideReplicaUpdate(p.stored, *e);
    log::Debug("replica update", {{"mci", e->multi_cloud_image()},
                                  {"sequence", std::to_string(e->sequence())},
                                  {"decision", std::to_string(static_cast<int>(update))}});
    if (update == ReplicaUpdate::kIgnore) {
      ignored->push_back(e);
      continue;
    }
    if (update == ReplicaUpdate::kReplace) {
      p.replaced = true;
      p.revisions.clear();
    }
    p.last = e;
    StoredReplica now;
    now.state = EventState(*e);
    now.sequence = e->sequence();
    if (now.state == ReplicaState::kDeleted) {
      now.tombstone_time = absl::FromUnixMicros(absl::ToUnixMicros(EventTime(*e)));
    }
    p.stored = now;
    for (const auto& rev : e->revisions()) {
      std::vector<std::string> clouds(rev.clouds().begin(), rev.clouds().end());
      p.revisions.emplace(rev.revision(), JoinClouds(clouds));
    }
  }

  std::vector<std::string> replaced, rows, revision_rows;
  for (const auto& [mci, p] : pending) {
    if (p.last == nullptr) continue;
    const MultiCloudImageEvent& e = *p.last;
    if (p.replaced) replaced.push_back(txn.quote(mci));
    std::vector<std::string> head_clouds(e.head_clouds().begin(), e.head_clouds().end());
    std::string account = e.account().empty() ? AccountOfMci(mci) : e.account();
    int64_t tombstone =
        p.stored->tombstone_time.has_value() ? absl::ToUnixMicros(*p.stored->tombstone_time) : -1;
    rows.push_back(absl::StrCat("(", txn.quote(mci), ",", txn.quote(account), ",",
                                txn.quote(e.display_name()), ",", static_cast<int>(p.stored->state),
                                ",", e.sequence(), "::bigint,", txn.quote(JoinClouds(head_clouds)),
                                ",", tombstone, "::bigint)"));
    for (const auto& [revision, clouds] : p.revisions) {
      revision_rows.push_back(absl::StrCat("(", txn.quote(mci), ",", revision, "::bigint,",
                                           "string_to_array(", txn.quote(clouds), ", ','))"));
    }
  }
  // The writes, in one round trip too.
  std::vector<std::string> writes;
  if (!replaced.empty()) {
    writes.push_back(absl::StrCat("DELETE FROM mci_replica_revisions WHERE mci IN (",
                                  absl::StrJoin(replaced, ","), ")"));
  }
  if (!rows.empty()) {
    writes.push_back(absl::StrCat(
        "INSERT INTO mci_replica (mci, account, display_name, state, sequence, head_clouds,"
        " tombstone_time, row_version)"
        " SELECT m, a, d, s, q, string_to_array(h, ','),"
        "  CASE WHEN t >= 0 THEN timestamptz 'epoch' + t * interval '1 microsecond' END, 1"
        " FROM (VALUES ",
        absl::StrJoin(rows, ","),
        ") AS v(m, a, d, s, q, h, t)"
        " ON CONFLICT (mci) DO UPDATE SET account = EXCLUDED.account,"
        " display_name = EXCLUDED.display_name, state = EXCLUDED.state,"
        " sequence = EXCLUDED.sequence, head_clouds = EXCLUDED.head_clouds,"
        " tombstone_time = EXCLUDED.tombstone_time, row_version = mci_replica.row_version + 1,"
        " update_time = now()"));
  }
  if (!revision_rows.empty()) {
    writes.push_back(
        absl::StrCat("INSERT INTO mci_replica_revisions (mci, revision, clouds) VALUES ",
                     absl::StrJoin(revision_rows, ","), " ON CONFLICT DO NOTHING"));
  }
  writes.push_back("COMMIT");
  txn.exec(absl::StrJoin(writes, "; "));
}

// The events that were ignored, when the transaction committed.
absl::StatusOr<std::vector<const MultiCloudImageEvent*>> ApplyInOneTransaction(
    db::Pool* pool, const std::vector<const MultiCloudImageEvent*>& ordered) {
  std::vector<const MultiCloudImageEvent*> ignored;
  absl::Status status = pool->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    ignored.clear();  // a retried transaction decides again
    ApplyEventsInOneTransaction(txn, ordered, &ignored);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return ignored;
}

}  // namespace

absl::StatusOr<bool> PgRepository::ApplyEvent(const MultiCloudImageEvent& event) {
  auto ignored = ApplyInOneTransaction(pool_, {&event});
  if (!ignored.ok()) return ignored.status();
  return ignored->empty();
}

absl::StatusOr<std::vector<bool>> PgRepository::ApplyEvents(
    const std::vector<MultiCloudImageEvent>& events) {
  // Lock MCIs in name order (as LockAndCheckAll does) so batches never deadlock with references;
  // the stable sort keeps each MCI's events in stream order.
  std::vector<const MultiCloudImageEvent*> ordered;
  for (const auto& e : events) ordered.push_back(&e);
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) {
    return a->multi_cloud_image() < b->multi_cloud_image();
  });
  auto ignored = ApplyInOneTransaction(pool_, ordered);
  if (!ignored.ok()) return ignored.status();
  std::vector<bool> changed(events.size(), true);
  for (const MultiCloudImageEvent* e : *ignored) {
    changed[static_cast<size_t>(e - events.data())] = false;
  }
  return changed;
}

absl::StatusOr<bool> PgRepository::DeletionFenced(const std::string& mci) {
  bool fenced = false;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    fenced = !txn.exec_prepared("kSelectFence", mci).empty();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return fenced;
}

absl::StatusOr<Reservation> PgRepository::ReserveDeletion(const std::string& mci,
                                                          const std::string& deletion_id) {
  Reservation out;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    out = Reservation{};
    LockMci(txn, mci);
    pqxx::result known = txn.exec_prepared("kSelectDeletion", deletion_id);
    int state = 0;
    if (!known.empty()) {
      if (known[0][0].as<std::string>() != mci) {
        return absl::InvalidArgumentError(absl::StrCat(
            "deletion_id ", deletion_id, " belongs to the deletion of another MultiCloud Image, ",
            known[0][0].as<std::string>(), "; use a new deletion id."));
      }
      state = known[0][1].as<int>();
    }
    // The fence stands or the MCI is gone: the same answer as the first time.
    if (state == kReserved || state == kDeleted) {
      out.reserved = true;
      return absl::OkStatus();
    }
    out.usages = QueryUsages(txn, mci, -1, Repository::UsageKey{}, kMaxUsagesInRefusal);
    // An aborted deletion never raises a fence again: nobody would release it.
    if (state == kAborted) return absl::OkStatus();
    if (!out.usages.empty()) {
      txn.exec_prepared("kUpsertDeletion", deletion_id, mci, kRefused);
      return absl::OkStatus();
    }
    txn.exec_prepared("kSupersedeFences", mci, deletion_id, kAborted);
    txn.exec_prepared("kUpsertDeletion", deletion_id, mci, kReserved);
    out.reserved = true;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status PgRepository::ReleaseDeletion(const std::string& mci, const std::string& deletion_id,
                                           bool deleted) {
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    LockMci(txn, mci);
    pqxx::result known = txn.exec_prepared("kSelectDeletion", deletion_id);
    if (!known.empty() && known[0][0].as<std::string>() != mci) {
      return absl::InvalidArgumentError(absl::StrCat(
          "deletion_id ", deletion_id, " belongs to the deletion of another MultiCloud Image, ",
          known[0][0].as<std::string>(), "."));
    }
    if (deleted) {
      txn.exec_prepared("kUpsertDeletion", deletion_id, mci, kDeleted);
      txn.exec_prepared("kSupersedeFences", mci, deletion_id, kDeleted);
      txn.exec_prepared("kTombstoneReplica", mci, AccountOfMci(mci));
      return absl::OkStatus();
    }
    if (known.empty()) {
      txn.exec_prepared("kUpsertDeletion", deletion_id, mci, kAborted);
    } else {
      txn.exec_prepared("kAbortDeletion", deletion_id);
    }
    return absl::OkStatus();
  });
}

}  // namespace mci::templates
