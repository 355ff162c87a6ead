#include "services/marketplace/pg_repository.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mci::marketplace {
namespace {

// Columns of every publication read, in the order RowToPublication expects.
#define MCI_PUBLICATION_COLUMNS                                                    \
  "p.id, p.publisher, p.multi_cloud_image, p.revision, p.lineage, p.visibility, "  \
  "p.snapshot, p.version, (extract(epoch FROM p.create_time) * 1000000)::bigint, " \
  "(extract(epoch FROM p.update_time) * 1000000)::bigint, p.seq, "                 \
  "(SELECT coalesce(string_agg(s.account, ',' ORDER BY s.account), '') "           \
  "   FROM publication_shares s WHERE s.publication_id = p.id)"

constexpr char kInsertPublication[] =
    "INSERT INTO publications (id, publisher, multi_cloud_image, revision, lineage, visibility, "
    " display_name, description, snapshot, request_id) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, ''))";
constexpr char kInsertShare[] =
    "INSERT INTO publication_shares (publication_id, account) VALUES ($1, $2) "
    "ON CONFLICT DO NOTHING";
constexpr char kDeleteShares[] = "DELETE FROM publication_shares WHERE publication_id = $1";
constexpr char kSelectPublication[] =
    "SELECT " MCI_PUBLICATION_COLUMNS " FROM publications p WHERE p.id = $1";
constexpr char kSelectPublicationForUpdate[] =
    "SELECT p.version FROM publications p WHERE p.id = $1 FOR UPDATE";
constexpr char kSelectByRequestId[] =
    "SELECT " MCI_PUBLICATION_COLUMNS
    " FROM publications p WHERE p.publisher = $1 AND p.request_id = $2";
constexpr char kSelectByRevision[] =
    "SELECT " MCI_PUBLICATION_COLUMNS
    " FROM publications p WHERE p.multi_cloud_image = $1 AND p.revision = $2 "
    "ORDER BY p.seq DESC LIMIT 1";
// Visible: public, the viewer's own, or shared with the viewer. Newest first (keyset on seq).
constexpr char kListPublications[] =
    "SELECT " MCI_PUBLICATION_COLUMNS
    " FROM publications p "
    "WHERE (p.visibility = 'PUBLIC' OR p.publisher = $1 OR EXISTS ("
    "        SELECT 1 FROM publication_shares s WHERE s.publication_id = p.id AND s.account = $1))"
    "  AND ($2 = '' OR p.lineage = $2)"
    "  AND ($3 = '' OR p.publisher = $3)"
    "  AND ($4 = '' OR p.multi_cloud_image = $4)"
    "  AND p.revision > $5"
    "  AND ($6 = 0 OR p.seq < $6) "
    "ORDER BY p.seq DESC LIMIT $7";
constexpr char kUpdateVisibility[] =
    "UPDATE publications SET visibility = $2, version = version + 1, update_time = now() "
    "WHERE id = $1";

constexpr char kInsertImport[] =
    "INSERT INTO imports (account, publication_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
constexpr char kSelectImport[] =
    "SELECT account, publication_id, coalesce(multi_cloud_image, ''), attempt FROM imports "
    "WHERE account = $1 AND publication_id = $2";
constexpr char kFinishImport[] =
    "INSERT INTO imports (account, publication_id, multi_cloud_image) VALUES ($1, $2, $3) "
    "ON CONFLICT (account, publication_id) DO UPDATE SET multi_cloud_image = "
    "EXCLUDED.multi_cloud_image";
constexpr char kRestartImport[] =
    "UPDATE imports SET multi_cloud_image = NULL, attempt = attempt + 1 "
    "WHERE account = $1 AND publication_id = $2 "
    "RETURNING account, publication_id, '', attempt";

constexpr char kSelectImportingAccounts[] =
    "SELECT DISTINCT account FROM imports WHERE publication_id = $1 ORDER BY account";
// Imports still present: recorded by the marketplace and not known deleted by the events.
constexpr char kCountImports[] =
    "SELECT count(*) FROM imports i WHERE i.publication_id = $1 AND i.multi_cloud_image IS NOT NULL"
    "  AND NOT EXISTS (SELECT 1 FROM lineage_mcis m"
    "                  WHERE m.multi_cloud_image = i.multi_cloud_image AND m.deleted)";
// Clones descend from the imports of the publication through their origin source (name@N),
// across accounts and through deleted intermediates; only the living ones are reported.
constexpr char kSelectClones[] =
    "WITH RECURSIVE roots AS ("
    "  SELECT multi_cloud_image FROM imports"
    "   WHERE publication_id = $1 AND multi_cloud_image IS NOT NULL"
    "  UNION"
    "  SELECT multi_cloud_image FROM lineage_mcis"
    "   WHERE origin_kind = 'IMPORTED' AND origin_source = $2"
    "), descendants AS ("
    "  SELECT m.multi_cloud_image FROM lineage_mcis m JOIN roots r"
    "    ON split_part(m.origin_source, '@', 1) = r.multi_cloud_image"
    "   WHERE m.origin_kind = 'CLONED'"
    "  UNION"
    "  SELECT m.multi_cloud_image FROM lineage_mcis m JOIN descendants d"
    "    ON split_part(m.origin_source, '@', 1) = d.multi_cloud_image"
    "   WHERE m.origin_kind = 'CLONED'"
    ") "
    "SELECT d.multi_cloud_image FROM descendants d JOIN lineage_mcis m USING (multi_cloud_image) "
    "WHERE NOT m.deleted ORDER BY d.multi_cloud_image";

// Applies an event unless its sequence is not newer (the conflicting row stays locked from the
// check to the update): one statement per event (see ApplyLineageEvents).
constexpr char kInsertLineage[] =
    "INSERT INTO lineage_mcis (multi_cloud_image, account, lineage, origin_kind, origin_source,"
    " sequence, deleted) VALUES ";
constexpr char kLineageOnConflict[] =
    " ON CONFLICT (multi_cloud_image) DO UPDATE SET account = EXCLUDED.account,"
    " lineage = CASE WHEN EXCLUDED.lineage = '' THEN lineage_mcis.lineage ELSE EXCLUDED.lineage "
    "END,"
    " origin_kind = CASE WHEN EXCLUDED.origin_kind = '' THEN lineage_mcis.origin_kind"
    "                    ELSE EXCLUDED.origin_kind END,"
    " origin_source = CASE WHEN EXCLUDED.origin_kind = '' THEN lineage_mcis.origin_source"
    "                      ELSE EXCLUDED.origin_source END,"
    " sequence = EXCLUDED.sequence, deleted = EXCLUDED.deleted"
    " WHERE lineage_mcis.sequence < EXCLUDED.sequence";

#undef MCI_PUBLICATION_COLUMNS

absl::StatusOr<PublicationRecord> RowToPublication(const pqxx::row& row) {
  PublicationRecord p;
  p.id = row[0].as<std::string>();
  p.publisher = row[1].as<std::string>();
  p.multi_cloud_image = row[2].as<std::string>();
  p.revision = row[3].as<int64_t>();
  p.lineage = row[4].as<std::string>();
  p.visibility = row[5].as<std::string>() == "PUBLIC" ? v1::PUBLIC : v1::SHARED;
  pqxx::binarystring snapshot(row[6]);
  if (!p.snapshot.ParseFromString(snapshot.str())) {
    return absl::InternalError(
        absl::StrCat("The snapshot of publication ", p.id, " cannot be read."));
  }
  p.version = row[7].as<int64_t>();
  p.create_time = absl::FromUnixMicros(row[8].as<int64_t>());
  p.update_time = absl::FromUnixMicros(row[9].as<int64_t>());
  p.seq = row[10].as<int64_t>();
  std::string shares = row[11].as<std::string>();
  if (!shares.empty()) p.shared_with = absl::StrSplit(shares, ',');
  return p;
}

absl::StatusOr<std::optional<PublicationRecord>> FirstPublication(const pqxx::result& result) {
  if (result.empty()) return std::optional<PublicationRecord>();
  auto p = RowToPublication(result[0]);
  if (!p.ok()) return p.status();
  return std::optional<PublicationRecord>(std::move(*p));
}

const char* VisibilityText(v1::Visibility visibility) {
  return visibility == v1::PUBLIC ? "PUBLIC" : "SHARED";
}

ImportRecord RowToImport(const pqxx::row& row) {
  return ImportRecord{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                      row[3].as<int>()};
}

}  // namespace

absl::Status PgRepository::InsertPublication(const PublicationRecord& p,
                                             const std::string& request_id) {
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    std::string snapshot;
    if (!p.snapshot.SerializeToString(&snapshot)) {
      return absl::InternalError("The snapshot cannot be serialized.");
    }
    try {
      txn.exec_params(kInsertPublication, p.id, p.publisher, p.multi_cloud_image, p.revision,
                      p.lineage, VisibilityText(p.visibility), p.snapshot.display_name(),
                      p.snapshot.description(), pqxx::binarystring(snapshot), request_id);
    } catch (const pqxx::unique_violation&) {
      return absl::AlreadyExistsError(absl::StrCat(
          p.revision > 0 ? absl::StrCat("Revision ", p.revision, " of ", p.multi_cloud_image,
                                        " is already published (a revision is published once); "
                                        "commit a new revision and publish that.")
                         : absl::StrCat("Publication publications/", p.id,
                                        " already exists; choose another publication_id.")));
    }
    for (const std::string& account : p.shared_with) {
      txn.exec_params(kInsertShare, p.id, account);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<PublicationRecord> PgRepository::GetPublication(const std::string& id) {
  std::optional<PublicationRecord> out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::read_transaction txn(c);
    auto p = FirstPublication(txn.exec_params(kSelectPublication, id));
    if (!p.ok()) return p.status();
    out = std::move(*p);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (!out) {
    return absl::NotFoundError(absl::StrCat("Publication publications/", id, " not found."));
  }
  return std::move(*out);
}

absl::StatusOr<std::optional<PublicationRecord>> PgRepository::FindByRequestId(
    const std::string& publisher, const std::string& request_id) {
  std::optional<PublicationRecord> out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::read_transaction txn(c);
    auto p = FirstPublication(txn.exec_params(kSelectByRequestId, publisher, request_id));
    if (!p.ok()) return p.status();
    out = std::move(*p);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::optional<PublicationRecord>> PgRepository::FindByRevision(
    const std::string& multi_cloud_image, int64_t revision) {
  std::optional<PublicationRecord> out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::read_transaction txn(c);
    auto p = FirstPublication(txn.exec_params(kSelectByRevision, multi_cloud_image, revision));
    if (!p.ok()) return p.status();
    out = std::move(*p);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<PublicationRecord>> PgRepository::ListPublications(
    const PublicationQuery& q) {
  std::vector<PublicationRecord> out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::read_transaction txn(c);
    pqxx::result rows =
        txn.exec_params(kListPublications, q.viewer, q.lineage, q.publisher, q.multi_cloud_image,
                        q.min_revision_exclusive, q.before_seq, q.limit);
    for (const auto& row : rows) {
      auto p = RowToPublication(row);
      if (!p.ok()) return p.status();
      out.push_back(std::move(*p));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<PublicationRecord> PgRepository::UpdateSharing(
    const std::string& id, v1::Visibility visibility, const std::vector<std::string>& accounts,
    int64_t expected_version) {
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    pqxx::result current = txn.exec_params(kSelectPublicationForUpdate, id);
    if (current.empty()) {
      return absl::NotFoundError(absl::StrCat("Publication publications/", id, " not found."));
    }
    if (expected_version > 0 && current[0][0].as<int64_t>() != expected_version) {
      return absl::AbortedError(
          absl::StrCat("Publication publications/", id,
                       " changed since you read it (etag mismatch); get it again and retry."));
    }
    txn.exec_params(kUpdateVisibility, id, VisibilityText(visibility));
    txn.exec_params(kDeleteShares, id);
    for (const std::string& account : accounts) txn.exec_params(kInsertShare, id, account);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return GetPublication(id);
}

absl::StatusOr<ImportRecord> PgRepository::BeginImport(const std::string& account,
                                                       const std::string& publication_id) {
  ImportRecord out;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    txn.exec_params(kInsertImport, account, publication_id);
    pqxx::result rows = txn.exec_params(kSelectImport, account, publication_id);
    if (rows.empty()) return absl::InternalError("The import record vanished.");
    out = RowToImport(rows[0]);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status PgRepository::FinishImport(const std::string& account,
                                        const std::string& publication_id,
                                        const std::string& multi_cloud_image) {
  return pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    txn.exec_params(kFinishImport, account, publication_id, multi_cloud_image);
    return absl::OkStatus();
  });
}

absl::StatusOr<ImportRecord> PgRepository::RestartImport(const std::string& account,
                                                         const std::string& publication_id) {
  ImportRecord out;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    pqxx::result rows = txn.exec_params(kRestartImport, account, publication_id);
    if (rows.empty()) return absl::NotFoundError("No import to restart.");
    out = RowToImport(rows[0]);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<UsageRecord> PgRepository::GetUsage(const std::string& publication_id) {
  UsageRecord out;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::read_transaction txn(c);
    for (const auto& row : txn.exec_params(kSelectImportingAccounts, publication_id)) {
      out.importing_accounts.push_back(row[0].as<std::string>());
    }
    out.import_count = txn.exec_params(kCountImports, publication_id)[0][0].as<int>();
    for (const auto& row : txn.exec_params(kSelectClones, publication_id,
                                           absl::StrCat("publications/", publication_id))) {
      out.clones.push_back(row[0].as<std::string>());
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status PgRepository::ApplyLineageEvent(const LineageEvent& e) {
  return ApplyLineageEvents({e});
}

absl::Status PgRepository::ApplyLineageEvents(const std::vector<LineageEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  // One round trip for the batch: the simple protocol runs the statements in order as one
  // implicit transaction, so the batch applies whole or not at all. At 1,000 events/s a
  // transaction of four round trips per event was as much work as the writes it followed.
  // Rows locked in name order (each MCI's events keep their order), as by any other replica.
  std::vector<const LineageEvent*> ordered;
  for (const auto& e : events) ordered.push_back(&e);
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) {
    return a->multi_cloud_image < b->multi_cloud_image;
  });
  return pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    std::string sql;
    for (const LineageEvent* p : ordered) {
      const LineageEvent& e = *p;
      absl::StrAppend(&sql, kInsertLineage, "(", txn.quote(e.multi_cloud_image), ",",
                      txn.quote(e.account), ",", txn.quote(e.lineage), ",",
                      txn.quote(e.origin_kind), ",", txn.quote(e.origin_source), ",", e.sequence,
                      "::bigint,", e.deleted ? "true" : "false", ")", kLineageOnConflict, ";");
    }
    txn.exec(sql);
    return absl::OkStatus();
  });
}

}  // namespace mci::marketplace
