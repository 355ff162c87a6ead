#include "services/catalog/catalog.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/common/metrics.h"
#include "services/catalog/rules.h"
#include "services/catalog/sql_util.h"

namespace mci::catalog {

using Event = mci::events::v1::MultiCloudImageEvent;

namespace {

// Columns of an MCI row, in the order MciRow::Parse reads them.
#define MCI_COLUMNS                                                                              \
  "m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, "      \
  "m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, " \
  "m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, "     \
  "array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, "              \
  "extract(epoch from m.update_time)::float8"
constexpr int kMciColumnCount = 20;

#define SETTINGS_JSON(mci_expr, revision_expr)                                           \
  "coalesce((SELECT json_agg(json_build_array(s.cloud_id, s.image_id, s.instance_type, " \
  "s.kernel_id, s.ramdisk_id, s.user_data) ORDER BY s.cloud_id) FROM mci_settings s "    \
  "WHERE s.mci = " mci_expr " AND s.revision = " revision_expr ")::text, '[]')"

constexpr char kGetMci[] =
    "SELECT " MCI_COLUMNS " FROM mcis m WHERE m.account = $1 AND m.mci_id = $2";
constexpr char kLockMci[] =
    "SELECT " MCI_COLUMNS " FROM mcis m WHERE m.account = $1 AND m.mci_id = $2 FOR UPDATE";
// GetMultiCloudImage's read of MCI `account`/`mci_id` (SQL expressions), revision `revision` (0:
// HEAD): one statement, so HEAD or the revision and its settings come from one snapshot; no row
// when the MCI does not exist.
#define READ_MCI_SELECT(account, mci_id, revision)                                           \
  "SELECT " MCI_COLUMNS                                                                      \
  ", r.revision IS NOT NULL, coalesce(r.display_name, ''), coalesce(r.description, ''), "    \
  "coalesce(array_to_json(r.tags)::text, '[]'), coalesce(r.commit_message, ''), "            \
  "coalesce(extract(epoch from r.create_time)::float8, 0), " SETTINGS_JSON("m.id", revision) \
  " FROM mcis m LEFT JOIN mci_revisions r ON r.mci = m.id AND r.revision = " revision        \
  " WHERE m.account = " account " AND m.mci_id = " mci_id
constexpr char kReadMci[] = READ_MCI_SELECT("$1", "$2", "$3");
// The same for many HEADs at once (the refresh ahead of their cached answers' expiry): $1 and $2
// are lists of accounts and MCI ids joined by \x1f, whose i-th elements name one MCI; each row
// carries its i (1-based) after kReadMci's columns.
constexpr char kReadMciHeads[] =
    "SELECT a.*, want.i FROM unnest(string_to_array($1, E'\\x1f'), string_to_array($2, E'\\x1f'))"
    " WITH ORDINALITY AS want(account, mci_id, i) CROSS JOIN LATERAL (" READ_MCI_SELECT(
        "want.account", "want.mci_id", "0") ") a";
constexpr char kReadMciByRequestId[] =
    "SELECT m.mci_id FROM request_ids q JOIN mcis m ON m.id = q.mci"
    " WHERE q.account = $1 AND q.request_id = $2";
constexpr char kListMcis[] = "SELECT " MCI_COLUMNS
                             " FROM mcis m WHERE m.account = $1 AND m.id > $2"
                             " AND ($3 = '' OR m.tags @> ARRAY[$3]::text[])"
                             " AND ($4 = '' OR m.head_clouds @> ARRAY[$4]::text[])"
                             " AND ($5 = '' OR m.display_name ILIKE '%' || $5 || '%')"
                             " AND ($6::int = 0 OR m.origin_kind = $6::int)"
                             " AND ($7 = '' OR m.lineage = $7)"
                             " ORDER BY m.id LIMIT $8";
constexpr char kInsertMci[] =
    "INSERT INTO mcis (account, mci_id, display_name, description, tags, origin_kind,"
    " origin_source, origin_source_name, lineage, publication, source_revision)"
    " VALUES ($1, $2, $3, $4, string_to_array($5, E'\\x1f'), $6, $7, $8, $9, $10, $11)"
    " RETURNING id";
constexpr char kMciExists[] = "SELECT 1 FROM mcis WHERE account = $1 AND mci_id = $2";
constexpr char kInsertRequestId[] =
    "INSERT INTO request_ids (account, request_id, mci) VALUES ($1, $2, $3)";
constexpr char kUpdateInfo[] =
    "UPDATE mcis SET display_name = $2, description = $3, tags = string_to_array($4, E'\\x1f')"
    " WHERE id = $1";
constexpr char kSetState[] =
    "UPDATE mcis SET state = $2::smallint, deletion_id = nullif($3, ''),"
    " deletion_started_at = CASE WHEN $2::int = 2 THEN now() ELSE NULL END WHERE id = $1";
// HEAD's clouds, and every committed revision's clouds ("1:a,b;2:a"), of the MCI whose id is
// `mci_expr`: what each event carries.
#define HEAD_CLOUDS(mci_expr)                                     \
  "ARRAY(SELECT cloud_id FROM mci_settings WHERE mci = " mci_expr \
  " AND revision = 0"                                             \
  " ORDER BY cloud_id)"
#define REVISION_CLOUDS(mci_expr)                                                              \
  "coalesce((SELECT string_agg(revision || ':' || clouds, ';' ORDER BY revision) FROM"         \
  " (SELECT revision, string_agg(cloud_id, ',' ORDER BY cloud_id) AS clouds FROM mci_settings" \
  " WHERE mci = " mci_expr " AND revision > 0 GROUP BY revision) r), '')"
// What every event's bump sets and returns (see AppendEvent): the next sequence, HEAD's clouds
// and version, and the revisions' clouds, in one round trip.
#define MCI_BUMP_SET "event_seq = event_seq + 1, head_clouds = " HEAD_CLOUDS("$1")
#define MCI_BUMP_RETURNING \
  " RETURNING event_seq, array_to_json(head_clouds)::text, version, " REVISION_CLOUDS("$1")
constexpr char kBumpForEvent[] =
    "UPDATE mcis SET " MCI_BUMP_SET
    ", version = version + $2::int,"
    " update_time = CASE WHEN $2::int = 1 THEN now() ELSE update_time END"
    " WHERE id = $1" MCI_BUMP_RETURNING;
// An info edit (Update, AddTags, RemoveTags), read under the row lock: the row, HEAD's settings,
// what the edit's event carries, and the transaction's now() (the edit's update_time).
constexpr char kReadForEdit[] =
    "SELECT " MCI_COLUMNS ", " SETTINGS_JSON("m.id", "0")  //
    ", array_to_json(" HEAD_CLOUDS("m.id") ")::text"       //
    ", " REVISION_CLOUDS("m.id")                           //
    ", extract(epoch from now())::float8"
    " FROM mcis m WHERE m.account = $1 AND m.mci_id = $2 FOR UPDATE";
// Its write: settings are untouched, so head_clouds stays.
constexpr char kEditInfo[] =
    "UPDATE mcis SET display_name = $2, description = $3, tags = string_to_array($4, E'\\x1f'),"
    " event_seq = event_seq + 1, version = version + 1, update_time = now() WHERE id = $1";
constexpr char kInsertOutbox[] =
    "INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, $3)";
constexpr char kCopySettings[] =
    "INSERT INTO mci_settings (mci, revision, cloud_id, image_id, instance_type, kernel_id,"
    " ramdisk_id, user_data) SELECT $1, $2, cloud_id, image_id, instance_type, kernel_id,"
    " ramdisk_id, user_data FROM mci_settings WHERE mci = $3 AND revision = $4";
constexpr char kInsertRevision[] =
    "INSERT INTO mci_revisions (mci, revision, display_name, description, tags, commit_message)"
    " VALUES ($1, $2, $3, $4, string_to_array($5, E'\\x1f'), $6)";
constexpr char kSetLatestRevision[] = "UPDATE mcis SET latest_revision = $2 WHERE id = $1";
constexpr char kSetImportOrigin[] =
    "UPDATE mcis SET origin_source = $2, publication = $3, source_revision = $4 WHERE id = $1";
constexpr char kListRevisions[] =
    "SELECT r.revision, r.display_name, r.description, array_to_json(r.tags)::text,"
    " r.commit_message, extract(epoch from r.create_time)::float8,"
    " coalesce((SELECT array_to_json(array_agg(cloud_id ORDER BY cloud_id)) FROM mci_settings"
    " WHERE mci = r.mci AND revision = r.revision)::text, '[]')"
    " FROM mci_revisions r WHERE r.mci = $1 AND r.revision < $2 ORDER BY r.revision DESC LIMIT $3";
constexpr char kSettingExists[] =
    "SELECT 1 FROM mci_settings WHERE mci = $1 AND revision = 0 AND cloud_id = $2";
constexpr char kInsertSetting[] =
    "INSERT INTO mci_settings (mci, revision, cloud_id, image_id, instance_type, kernel_id,"
    " ramdisk_id, user_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
constexpr char kUpdateSetting[] =
    "UPDATE mci_settings SET image_id = $3, instance_type = $4, kernel_id = $5, ramdisk_id = $6,"
    " user_data = $7 WHERE mci = $1 AND revision = 0 AND cloud_id = $2";
constexpr char kDeleteSetting[] =
    "DELETE FROM mci_settings WHERE mci = $1 AND revision = 0 AND cloud_id = $2";
constexpr char kDeleteHeadSettings[] = "DELETE FROM mci_settings WHERE mci = $1 AND revision = 0";
constexpr char kCloudExists[] = "SELECT 1 FROM clouds WHERE cloud_id = $1";
constexpr char kVisibleImage[] =
    "SELECT i.kind, i.architecture FROM images i WHERE i.cloud_id = $1 AND i.image_id = $2"
    " AND (i.owner IS NULL OR i.owner = $3 OR EXISTS (SELECT 1 FROM image_shares sh"
    " WHERE sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id AND sh.account = $3))";
constexpr char kInstanceTypeArchitectures[] =
    "SELECT array_to_json(architectures)::text FROM instance_types"
    " WHERE cloud_id = $1 AND type_id = $2";
constexpr char kAvailableClouds[] =
    "SELECT c.cloud_id, c.display_name, c.provider, c.region FROM clouds c"
    " WHERE NOT EXISTS (SELECT 1 FROM mci_settings s WHERE s.mci = $1 AND s.revision = 0"
    " AND s.cloud_id = c.cloud_id) ORDER BY c.cloud_id";
// ResolveImage's read: of MCI `account`/`mci_id` (SQL expressions), revision `revision` (0: HEAD),
// cloud `cloud`; no row when the MCI does not exist.
#define RESOLVE_SELECT(account, mci_id, revision, cloud)                                   \
  "SELECT m.id, (" revision                                                                \
  " = 0 OR EXISTS (SELECT 1 FROM mci_revisions r WHERE r.mci = m.id"                       \
  " AND r.revision = " revision                                                            \
  ")), s.cloud_id IS NOT NULL, coalesce(s.image_id, ''),"                                  \
  " coalesce(s.instance_type, ''), coalesce(s.kernel_id, ''), coalesce(s.ramdisk_id, '')," \
  " coalesce(s.user_data, ''), coalesce(i.provider_id, ''), coalesce(i.kind, 0),"          \
  " coalesce(i.os, ''), coalesce(i.architecture, 0), coalesce(i.agent_version, ''),"       \
  " coalesce(i.display_name, ''), coalesce(i.owner, ''), coalesce(k.provider_id, ''),"     \
  " coalesce(rd.provider_id, ''), CASE WHEN s.cloud_id IS NULL THEN coalesce((SELECT"      \
  " array_to_json(array_agg(cloud_id ORDER BY cloud_id)) FROM mci_settings"                \
  " WHERE mci = m.id AND revision = " revision                                             \
  ")::text, '[]') ELSE '[]' END, m.event_seq"                                              \
  " FROM mcis m"                                                                           \
  " LEFT JOIN mci_settings s ON s.mci = m.id AND s.revision = " revision                   \
  " AND s.cloud_id = " cloud                                                               \
  " LEFT JOIN images i ON i.cloud_id = s.cloud_id AND i.image_id = s.image_id"             \
  " LEFT JOIN images k ON k.cloud_id = s.cloud_id AND k.image_id = s.kernel_id"            \
  " LEFT JOIN images rd ON rd.cloud_id = s.cloud_id AND rd.image_id = s.ramdisk_id"        \
  " WHERE m.account = " account " AND m.mci_id = " mci_id
constexpr char kResolve[] = RESOLVE_SELECT("$1", "$2", "$3", "$4");
// The same for many HEAD answers at once (the refresh ahead of their expiry): $1, $2 and $3 are
// lists of accounts, MCI ids and clouds, joined by \x1f, whose i-th elements name one answer;
// each row carries its i (1-based) after kResolve's columns.
constexpr char kResolveHeads[] =
    "SELECT a.*, want.i FROM unnest(string_to_array($1, E'\\x1f'), string_to_array($2, E'\\x1f'),"
    " string_to_array($3, E'\\x1f')) WITH ORDINALITY"
    " AS want(account, mci_id, cloud, i) CROSS JOIN LATERAL (" RESOLVE_SELECT(
        "want.account", "want.mci_id", "0", "want.cloud") ") a";
constexpr char kValidateSettings[] =
    "SELECT s.cloud_id, s.image_id, s.instance_type, i.image_id IS NOT NULL,"
    " coalesce(i.kind, 0), coalesce(i.provider_id, ''), coalesce(i.os, ''),"
    " coalesce(i.architecture, 0), coalesce(i.agent_version, ''), coalesce(i.owner, ''),"
    " (i.owner IS NULL OR i.owner = $3 OR EXISTS (SELECT 1 FROM image_shares sh"
    " WHERE sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id AND sh.account = $3)),"
    " t.type_id IS NOT NULL, coalesce(array_to_json(t.architectures)::text, '[]')"
    " FROM mci_settings s"
    " LEFT JOIN images i ON i.cloud_id = s.cloud_id AND i.image_id = s.image_id"
    " LEFT JOIN instance_types t ON t.cloud_id = s.cloud_id AND t.type_id = s.instance_type"
    " WHERE s.mci = $1 AND s.revision = $2 ORDER BY s.cloud_id";
constexpr char kDeleteMci[] = "DELETE FROM mcis WHERE id = $1";
// A Delete's request_id, kept past the MCI (request_ids go with it) for a week: a retry after
// a lost answer finds the MCI gone and answers as the first attempt did.
constexpr char kReadDeletionRequest[] =
    "SELECT mci_id FROM deletion_requests WHERE account = $1 AND request_id = $2";
constexpr char kRememberDeletionRequest[] =
    "WITH expired AS (DELETE FROM deletion_requests WHERE account = $1"
    " AND create_time < now() - interval '7 days')"
    " INSERT INTO deletion_requests (account, request_id, mci_id) VALUES ($1, $2, $3)"
    " ON CONFLICT (account, request_id) DO NOTHING";
constexpr char kStaleDeletions[] =
    "SELECT account, mci_id, deletion_id FROM mcis WHERE state = 2"
    " AND deletion_started_at < now() - make_interval(secs => $1) ORDER BY deletion_started_at"
    " LIMIT 100";

const std::vector<std::pair<const char*, const char*>>& Statements() {
  static const auto* statements = new std::vector<std::pair<const char*, const char*>>{
      {"lock_mci", kLockMci},
      {"read_mci", kReadMci},
      {"read_mci_heads", kReadMciHeads},
      {"read_mci_by_request_id", kReadMciByRequestId},
      {"list_mcis", kListMcis},
      {"resolve", kResolve},
      {"resolve_heads", kResolveHeads},
      {"validate_settings", kValidateSettings},
      {"visible_image", kVisibleImage},
      {"instance_type_architectures", kInstanceTypeArchitectures},
      {"bump_for_event", kBumpForEvent},
      {"insert_outbox", kInsertOutbox},
      // The statements of the write paths, prepared once per connection rather than parsed and
      // planned on every call.
      {"mci_exists", kMciExists},
      {"insert_mci", kInsertMci},
      {"setting_exists", kSettingExists},
      {"cloud_exists", kCloudExists},
      {"insert_setting", kInsertSetting},
      {"insert_revision", kInsertRevision},
      {"copy_settings", kCopySettings},
      {"set_latest_revision", kSetLatestRevision},
      {"get_mci", kGetMci},
      {"update_info", kUpdateInfo},
      {"read_for_edit", kReadForEdit},
      {"edit_info", kEditInfo},
      {"delete_setting", kDeleteSetting},
      {"update_setting", kUpdateSetting},
      {"insert_request_id", kInsertRequestId},
  };
  return *statements;
}

std::string EventSubject(Event::Type type) {
  std::string name = absl::AsciiStrToLower(Event::Type_Name(type));
  return absl::StrCat("mci.v1.events.", name);
}

std::string OriginKindName(int kind) {
  return pb::Origin::Kind_IsValid(kind) ? pb::Origin::Kind_Name(static_cast<pb::Origin::Kind>(kind))
                                        : "KIND_UNSPECIFIED";
}

absl::Status NotFound(const MciName& name) {
  return absl::NotFoundError(absl::StrCat("MultiCloud Image ", name.Full(), " not found."));
}

absl::Status NameTaken(const MciName& name) {
  return absl::AlreadyExistsError(
      absl::StrCat("MultiCloud Image ", name.Head(), " already exists; choose another id."));
}

// An optional client-chosen request_id (create, clone, import, delete).
absl::Status ValidateRequestId(const std::string& id) {
  if (id.size() <= 128) return absl::OkStatus();
  return absl::InvalidArgumentError("request_id is longer than 128 characters.");
}

// An optional client-chosen MCI id.
absl::Status ValidateMciId(const std::string& id) {
  if (id.empty() || IsValidResourceId(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("multi_cloud_image_id \"", id,
                   "\" is not valid: use 1-63 characters, lower-case letters, digits and '-', "
                   "starting with a letter."));
}

std::string EscapeLike(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"%", "\\%"}, {"_", "\\_"}});
}

void FillSettings(const MciName& name, const char* json, pb::MultiCloudImage* out) {
  for (const auto& f : JsonStringRows(json)) {
    if (f.size() < 6) continue;
    const std::string& cloud = f[0];
    out->add_clouds(CloudName(cloud));
    pb::MultiCloudImageSetting* s = out->add_settings();
    s->set_name(SettingName{name, cloud}.Full());
    s->set_cloud(CloudName(cloud));
    s->set_image(ImageName(cloud, f[1]));
    s->set_instance_type(InstanceTypeName(cloud, f[2]));
    if (!f[3].empty()) s->set_kernel_image(ImageName(cloud, f[3]));
    if (!f[4].empty()) s->set_ramdisk_image(ImageName(cloud, f[4]));
    s->set_user_data(f[5]);
  }
}

using db::Execute;

}  // namespace

struct Catalog::MciRow {
  int64_t id = 0;
  std::string account, mci_id, display_name, description;
  std::vector<std::string> tags;
  int state = 1;
  std::string deletion_id;
  int origin_kind = 1;
  std::string origin_source, origin_source_name, lineage, publication;
  int64_t source_revision = 0, latest_revision = 0, version = 0, event_seq = 0;
  std::vector<std::string> head_clouds;
  double create_time = 0, update_time = 0;

  void Parse(const pqxx::row& r) {
    id = r[0].as<int64_t>();
    account = r[1].c_str();
    mci_id = r[2].c_str();
    display_name = r[3].c_str();
    description = r[4].c_str();
    tags = JsonStrings(r[5].c_str());
    state = r[6].as<int>();
    deletion_id = r[7].c_str();
    origin_kind = r[8].as<int>();
    origin_source = r[9].c_str();
    origin_source_name = r[10].c_str();
    lineage = r[11].c_str();
    publication = r[12].c_str();
    source_revision = r[13].as<int64_t>();
    latest_revision = r[14].as<int64_t>();
    version = r[15].as<int64_t>();
    event_seq = r[16].as<int64_t>();
    head_clouds = JsonStrings(r[17].c_str());
    create_time = r[18].as<double>();
    update_time = r[19].as<double>();
  }
  bool imported() const { return origin_kind == pb::Origin::IMPORTED; }
  std::string etag() const { return absl::StrCat("\"", version, "\""); }
  MciName name() const { return MciName{account, mci_id, 0}; }

  // HEAD's info (no settings).
  void ToProto(pb::MultiCloudImage* out) const {
    out->set_name(name().Head());
    out->set_display_name(display_name);
    out->set_description(description);
    out->set_state(static_cast<pb::MultiCloudImage::State>(state));
    for (const auto& t : tags) out->add_tags(t);
    pb::Origin* o = out->mutable_origin();
    o->set_kind(static_cast<pb::Origin::Kind>(origin_kind));
    o->set_source(origin_source);
    o->set_source_display_name(origin_source_name);
    o->set_lineage(lineage);
    o->set_publication(publication);
    o->set_source_revision(source_revision);
    out->set_latest_revision(latest_revision);
    out->set_etag(etag());
    *out->mutable_create_time() = ToTimestamp(create_time);
    *out->mutable_update_time() = ToTimestamp(update_time);
    out->set_read_only(imported());
    out->set_sequence(event_seq);
  }
};

struct Catalog::InfoEdit {
  MciRow row;
  std::string settings_json;  // HEAD's, as SETTINGS_JSON
  Bump bump;                  // the event's sequence and clouds, as the edit leaves them
  double now = 0;             // the transaction's now(): the edit's update_time
};

Catalog::Catalog(db::Pool* pool, DeletionPeer* deletion_peer, CatalogOptions options)
    : pool_(pool),
      deletion_peer_(deletion_peer),
      options_(std::move(options)),
      cache_(options_.head_ttl),
      mcis_cache_(options_.head_ttl) {
  Metrics::Global().DeclareCounters({"mci_resolve_cache_misses_total",
                                     "mci_resolve_cache_refreshed_total",
                                     "mci_get_cache_misses_total", "mci_get_cache_refreshed_total"});
}

void Catalog::Prepare(pqxx::connection& conn) {
  // All on the server from the start: some run by SQL EXECUTE (Execute), where libpqxx cannot
  // prepare them on first use.
  for (const auto& [name, sql] : Statements()) {
    conn.prepare(name, sql);
    conn.prepare_now(name);
  }
}

void Catalog::Committed(const MciName& name) {
  cache_.Invalidate(name.Key());
  mcis_cache_.Invalidate(name.Key());
  if (on_events_) on_events_();
}

void Catalog::OnRemoteEvent(const Event& event) {
  auto name = ParseMciName(event.multi_cloud_image(), false);
  if (name.ok()) {
    cache_.Invalidate(name->Key());
    mcis_cache_.Invalidate(name->Key());
  }
}

absl::StatusOr<MciName> Catalog::ReadableMci(const Caller& caller, absl::string_view name,
                                             bool allow_revision) const {
  auto parsed = ParseMciName(name, allow_revision);
  if (!parsed.ok()) return parsed.status();
  // Another account's MCIs are invisible: NOT_FOUND, as for a missing one.
  if (parsed->account != caller.account && !caller.Has(auth::Role::kService)) {
    return NotFound(*parsed);
  }
  return parsed;
}

absl::Status Catalog::LoadMci(pqxx::transaction_base& txn, const MciName& name, bool for_update,
                              MciRow* row) {
  return ParseLoadedMci(for_update ? txn.exec_prepared("lock_mci", name.account, name.mci_id)
                                   : txn.exec_prepared("get_mci", name.account, name.mci_id),
                        name, row);
}

absl::Status Catalog::ParseLoadedMci(const pqxx::result& r, const MciName& name, MciRow* row) {
  if (r.empty()) return NotFound(name);
  row->Parse(r[0]);
  return absl::OkStatus();
}

absl::Status Catalog::EditableHead(const MciRow& row, const MciName& name) {
  if (row.state == pb::MultiCloudImage::DELETING) {
    return absl::FailedPreconditionError(
        absl::StrCat(name.Head(),
                     " is being deleted; it cannot be changed. Retry the deletion to see its "
                     "outcome, or clone the MCI."));
  }
  if (row.imported()) {
    return absl::FailedPreconditionError(absl::StrCat(
        name.Head(), " was imported from the marketplace (", row.publication,
        ") and cannot be edited in place; clone it (CloneMultiCloudImage) to get an editable "
        "copy."));
  }
  return absl::OkStatus();
}

absl::Status Catalog::ReadMci(pqxx::transaction_base& txn, const MciName& name, bool with_settings,
                              pb::MultiCloudImage* out, MciRow* row) {
  return ParseReadMci(txn.exec_prepared("read_mci", name.account, name.mci_id, name.revision), name,
                      with_settings, out, row);
}

absl::Status Catalog::ParseReadMci(const pqxx::result& r, const MciName& name, bool with_settings,
                                   pb::MultiCloudImage* out, MciRow* row_out) {
  if (r.empty()) return NotFound(name);
  return ParseReadMciRow(r[0], name, with_settings, out, row_out);
}

absl::Status Catalog::ParseReadMciRow(const pqxx::row& f, const MciName& name, bool with_settings,
                                      pb::MultiCloudImage* out, MciRow* row_out) {
  MciRow unused;
  MciRow& row = row_out != nullptr ? *row_out : unused;
  row.Parse(f);
  if (name.revision > 0 && !f[kMciColumnCount].as<bool>()) {
    return absl::NotFoundError(absl::StrCat("Revision ", name.revision, " of ", name.Head(),
                                            " not found; its latest revision is ",
                                            row.latest_revision, "."));
  }
  out->Clear();
  row.ToProto(out);
  if (name.revision > 0) {
    out->set_name(name.Full());
    out->set_revision(name.revision);
    out->set_display_name(f[kMciColumnCount + 1].c_str());
    out->set_description(f[kMciColumnCount + 2].c_str());
    out->clear_tags();
    for (const auto& t : JsonStrings(f[kMciColumnCount + 3].c_str())) out->add_tags(t);
    out->set_commit_message(f[kMciColumnCount + 4].c_str());
    *out->mutable_create_time() = ToTimestamp(f[kMciColumnCount + 5].as<double>());
    *out->mutable_update_time() = out->create_time();
    out->set_read_only(true);
    out->clear_etag();
  }
  pb::MultiCloudImage with;
  FillSettings(name, f[kMciColumnCount + 6].c_str(), &with);
  *out->mutable_clouds() = with.clouds();
  if (with_settings) *out->mutable_settings() = with.settings();
  return absl::OkStatus();
}

absl::Status Catalog::ReadMciByRequestId(pqxx::transaction_base& txn, const std::string& account,
                                         const std::string& request_id, pb::MultiCloudImage* out) {
  pqxx::result r = txn.exec_prepared("read_mci_by_request_id", account, request_id);
  if (r.empty()) return absl::NotFoundError("no such request");
  return ReadMci(txn, MciName{account, r[0][0].c_str(), 0}, true, out);
}

bool Catalog::FirstResultOfRequest(const absl::Status& status, const std::string& account,
                                   const std::string& request_id, pb::MultiCloudImage* out) {
  // A create-like transaction lost a race to a concurrent retry with the same request_id (its
  // insert hit the unique key): answer the winner's result.
  if (status.code() != absl::StatusCode::kAlreadyExists || request_id.empty()) return false;
  return pool_
      ->Run([&](pqxx::connection& c) {
        pqxx::nontransaction txn(c);
        return ReadMciByRequestId(txn, account, request_id, out);
      })
      .ok();
}

bool Catalog::BeginCreate(pqxx::nontransaction& txn, const MciName& name,
                          const std::string& request_id, std::vector<std::string> reads,
                          pb::MultiCloudImage* out, std::vector<pqxx::result>* results,
                          bool* name_taken) {
  const size_t count = reads.size();
  reads.insert(reads.begin(), "BEGIN");
  reads.push_back(Execute(txn, "mci_exists", name.account, name.mci_id));
  if (!request_id.empty()) {
    reads.push_back(Execute(txn, "read_mci_by_request_id", name.account, request_id));
  }
  std::vector<pqxx::result> r = db::Together(txn, reads);
  // A retry: the first attempt's result (even when a clone's source is gone since).
  if (!request_id.empty() && !r[count + 2].empty() &&
      ReadMci(txn, MciName{name.account, r[count + 2][0][0].c_str(), 0}, true, out).ok()) {
    txn.exec("COMMIT");
    return true;
  }
  *name_taken = !r[count + 1].empty();
  results->assign(r.begin() + 1, r.begin() + 1 + static_cast<std::ptrdiff_t>(count));
  return false;
}

absl::Status Catalog::FinishCreate(pqxx::transaction_base& txn, const MciName& name, int64_t id,
                                   const std::string& request_id, pb::MultiCloudImage* out,
                                   bool commit, const std::string& before) {
  std::vector<std::string> statements;
  if (!before.empty()) statements.push_back(before);
  if (!request_id.empty()) {
    statements.push_back(Execute(txn, "insert_request_id", name.account, request_id, id));
  }
  const size_t locked = statements.size();
  statements.push_back(Execute(txn, "lock_mci", name.account, name.mci_id));
  statements.push_back(Execute(txn, "bump_for_event", id, 0));
  // The read before the event's insert, so that with `commit` the insert can carry the COMMIT.
  statements.push_back(Execute(txn, "read_mci", name.account, name.mci_id, 0));
  std::vector<pqxx::result> r = db::Together(txn, statements);
  MciRow row;
  if (auto s = ParseLoadedMci(r[locked], name, &row); !s.ok()) return s;
  if (auto s = ParseReadMci(r[locked + 2], name, true, out); !s.ok()) return s;
  Event event = BuildEvent(row, Event::CREATED, 0, Bumped(r[locked + 1]));
  if (commit) {
    InsertEventAndCommit(txn, event);
  } else {
    InsertEvent(txn, event);
  }
  return absl::OkStatus();
}

void Catalog::InsertEvent(pqxx::transaction_base& txn, const Event& event) {
  txn.exec_prepared("insert_outbox", event.event_id(), EventSubject(event.type()),
                    absl::Base64Escape(event.SerializeAsString()));
}

void Catalog::InsertEventAndCommit(pqxx::transaction_base& txn, const Event& event,
                                   absl::string_view before) {
  txn.exec(absl::StrCat(before,
                        Execute(txn, "insert_outbox", event.event_id(), EventSubject(event.type()),
                                absl::Base64Escape(event.SerializeAsString())),
                        "; COMMIT"));
}

void Catalog::AppendEvent(pqxx::transaction_base& txn, const MciRow& row, Event::Type type,
                          int64_t revision, bool head_changed) {
  AppendEvent(txn, row, type, revision,
              txn.exec_prepared("bump_for_event", row.id, head_changed ? 1 : 0));
}

void Catalog::AppendEvent(pqxx::transaction_base& txn, const MciRow& row, Event::Type type,
                          int64_t revision, const pqxx::result& bumped) {
  InsertEvent(txn, BuildEvent(row, type, revision, Bumped(bumped)));
}

absl::Status Catalog::BeginInfoEdit(pqxx::transaction_base& txn, const MciName& name,
                                    InfoEdit* edit) {
  // The lock first, then the read in a snapshot taken under it: a read that had waited for the
  // lock itself would see the row as the lock holder left it but its settings as they were
  // before (READ COMMITTED takes a statement's snapshot when it starts).
  pqxx::result r =
      txn.exec(absl::StrCat("BEGIN; ", Execute(txn, "lock_mci", name.account, name.mci_id), "; ",
                            Execute(txn, "read_for_edit", name.account, name.mci_id)));
  if (r.empty()) return NotFound(name);
  const pqxx::row& f = r[0];
  edit->row.Parse(f);
  edit->settings_json = f[kMciColumnCount].c_str();
  edit->bump =
      Bump{edit->row.event_seq + 1, f[kMciColumnCount + 1].c_str(), f[kMciColumnCount + 2].c_str()};
  edit->now = f[kMciColumnCount + 3].as<double>();
  return absl::OkStatus();
}

void Catalog::CommitInfoEdit(pqxx::transaction_base& txn, const MciName& name, InfoEdit* edit,
                             Event::Type type, pb::MultiCloudImage* out) {
  MciRow& row = edit->row;
  row.event_seq = edit->bump.sequence;
  row.version += 1;
  row.update_time = edit->now;
  // The update rides with the event and COMMIT: one round trip.
  InsertEventAndCommit(txn, BuildEvent(row, type, 0, edit->bump),
                       absl::StrCat(Execute(txn, "edit_info", row.id, row.display_name,
                                            row.description, JoinArray(row.tags)),
                                    "; "));
  // The answer ReadMci would give after the commit, from what the transaction read and wrote.
  out->Clear();
  row.ToProto(out);
  FillSettings(name, edit->settings_json.c_str(), out);
}

Catalog::Bump Catalog::Bumped(const pqxx::result& bumped) {
  return Bump{bumped[0][0].as<int64_t>(), bumped[0][1].c_str(), bumped[0][3].c_str()};
}

Catalog::Event Catalog::BuildEvent(const MciRow& row, Event::Type type, int64_t revision,
                                   const Bump& bump) {
  Event event;
  event.set_event_id(RandomId("", 24));
  event.set_type(type);
  event.set_multi_cloud_image(row.name().Head());
  event.set_account(row.account);
  event.set_sequence(bump.sequence);
  *event.mutable_event_time() = ToTimestamp(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  event.set_revision(revision);
  Event::State state = type == Event::DELETED                       ? Event::STATE_DELETED
                       : row.state == pb::MultiCloudImage::DELETING ? Event::STATE_DELETING
                                                                    : Event::STATE_ACTIVE;
  event.set_state(state);
  for (const auto& c : JsonStrings(bump.head_clouds_json.c_str()))
    event.add_head_clouds(CloudName(c));
  for (absl::string_view entry : absl::StrSplit(bump.revisions, ';', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(entry, ':');
    Event::Revision* rev = event.add_revisions();
    int64_t revision = 0;
    if (absl::SimpleAtoi(parts.first, &revision)) rev->set_revision(revision);
    for (absl::string_view c : absl::StrSplit(parts.second, ',', absl::SkipEmpty())) {
      rev->add_clouds(CloudName(c));
    }
  }
  event.set_deletion_id(row.deletion_id);
  event.set_display_name(row.display_name);
  event.set_origin_kind(OriginKindName(row.origin_kind));
  event.set_origin_source(row.origin_source);
  event.set_lineage(row.lineage);
  return event;
}

// ---------------------------------------------------------------------------------------------
// MultiCloud Images

absl::Status Catalog::CreateMultiCloudImage(const Caller& caller,
                                            const pb::CreateMultiCloudImageRequest& req,
                                            pb::MultiCloudImage* out) {
  auto account = ParseAccountName(req.parent());
  if (!account.ok()) return account.status();
  if (*account != caller.account) {
    return absl::PermissionDeniedError(
        absl::StrCat("You can create MultiCloud Images only in your own account, accounts/",
                     caller.account, "."));
  }
  const pb::MultiCloudImage& mci = req.multi_cloud_image();
  if (auto s = ValidateDisplayName(mci.display_name()); !s.ok()) return s;
  if (auto s = ValidateDescription(mci.description()); !s.ok()) return s;
  std::set<std::string> tags;
  for (const auto& t : mci.tags()) {
    if (auto s = ValidateTag(t); !s.ok()) return s;
    tags.insert(t);
  }
  if (auto s = ValidateMciId(req.multi_cloud_image_id()); !s.ok()) return s;
  if (auto s = ValidateRequestId(req.request_id()); !s.ok()) return s;
  MciName name{
      *account,
      req.multi_cloud_image_id().empty() ? RandomId("mci-", 12) : req.multi_cloud_image_id(), 0};
  bool created = false;
  // Four round trips: BEGIN with the name's check (and the request_id's), the insert, the rest of
  // the statements but the event's (FinishCreate), the event's with COMMIT.
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    std::vector<pqxx::result> unused;
    bool name_taken = false;
    if (BeginCreate(txn, name, req.request_id(), {}, out, &unused, &name_taken)) {
      return absl::OkStatus();
    }
    if (name_taken) return NameTaken(name);
    int64_t id =
        txn.exec_prepared("insert_mci", name.account, name.mci_id, mci.display_name(),
                          mci.description(), JoinArray({tags.begin(), tags.end()}),
                          static_cast<int>(pb::Origin::CREATED), "", "", name.Head(), "", 0)[0][0]
            .as<int64_t>();
    created = true;
    return FinishCreate(txn, name, id, req.request_id(), out, /*commit=*/true);
  });
  if (FirstResultOfRequest(status, name.account, req.request_id(), out)) return absl::OkStatus();
  if (status.ok() && created) Committed(name);
  return status;
}

std::optional<absl::Status> Catalog::LookUpMci(const Caller& caller,
                                               const pb::GetMultiCloudImageRequest& req,
                                               std::shared_ptr<const MciCache::Entry>* out,
                                               CacheMiss* miss) {
  auto name = ReadableMci(caller, req.name(), true);
  if (!name.ok()) return name.status();
  miss->name = *std::move(name);
  *out = mcis_cache_.Get(miss->name.Key(), miss->name.revision, &miss->generation);
  if (*out == nullptr) return std::nullopt;
  return absl::OkStatus();
}

absl::Status Catalog::GetMci(const Caller& caller, const pb::GetMultiCloudImageRequest& req,
                             std::shared_ptr<const MciCache::Entry>* out) {
  CacheMiss miss;
  if (auto answered = LookUpMci(caller, req, out, &miss)) return *answered;
  const MciName& name = miss.name;
  pb::MultiCloudImage read;
  absl::Status status = pool_->Run([&](pqxx::connection& c) {
    pqxx::nontransaction txn(c);
    return ReadMci(txn, name, true, &read);
  });
  Metrics::Global().AddCounter("mci_get_cache_misses_total", 1);
  if (!status.ok()) return status;
  *out = mcis_cache_.Put(name.Key(), name.revision, miss.generation, std::move(read));
  return absl::OkStatus();
}

absl::Status Catalog::GetMultiCloudImageWire(const Caller& caller,
                                             const pb::GetMultiCloudImageRequest& req, Wire* out) {
  std::shared_ptr<const MciCache::Entry> entry;
  absl::Status status = GetMci(caller, req, &entry);
  if (status.ok()) *out = Wire(entry, &entry->wire);
  return status;
}

std::optional<absl::Status> Catalog::GetMultiCloudImageWireCached(
    const Caller& caller, const pb::GetMultiCloudImageRequest& req, Wire* out) {
  CacheMiss miss;
  std::shared_ptr<const MciCache::Entry> entry;
  auto answered = LookUpMci(caller, req, &entry, &miss);
  if (answered.has_value() && answered->ok()) *out = Wire(entry, &entry->wire);
  return answered;
}

absl::Status Catalog::ListMultiCloudImages(const Caller& caller,
                                           const pb::ListMultiCloudImagesRequest& req,
                                           pb::ListMultiCloudImagesResponse* out) {
  auto account = ParseAccountName(req.parent());
  if (!account.ok()) return account.status();
  if (*account != caller.account && !caller.Has(auth::Role::kService)) {
    return absl::NotFoundError(absl::StrCat("Account ", req.parent(), " not found."));
  }
  auto page_size = PageSize(req.page_size());
  if (!page_size.ok()) return page_size.status();
  std::string cloud_id;
  if (!req.cloud().empty()) {
    auto c = ParseCloudName(req.cloud(), "cloud");
    if (!c.ok()) return c.status();
    cloud_id = *c;
  }
  if (!req.tag().empty()) {
    if (auto s = ValidateTag(req.tag()); !s.ok()) return s;
  }
  std::string fingerprint =
      absl::StrCat(*account, "|", req.tag(), "|", cloud_id, "|", req.display_name(), "|",
                   req.origin_kind(), "|", req.lineage());
  auto cursor =
      DecodePageToken(req.page_token(), std::to_string(std::hash<std::string>{}(fingerprint)));
  if (!cursor.ok()) return cursor.status();
  int64_t after = 0;
  if (!cursor->empty() && !absl::SimpleAtoi(*cursor, &after)) {
    return absl::InvalidArgumentError("page_token is corrupt; start again without it.");
  }
  return pool_->Run([&](pqxx::connection& c) {
    pqxx::nontransaction txn(c);
    pqxx::result r = txn.exec_prepared(
        "list_mcis", *account, after, req.tag(), cloud_id, EscapeLike(req.display_name()),
        static_cast<int>(req.origin_kind()), req.lineage(), *page_size + 1);
    for (size_t i = 0; i < r.size() && static_cast<int>(i) < *page_size; ++i) {
      MciRow row;
      row.Parse(r[i]);
      pb::MultiCloudImage* m = out->add_multi_cloud_images();
      row.ToProto(m);
      for (const auto& cl : row.head_clouds) m->add_clouds(CloudName(cl));
      after = row.id;
    }
    if (static_cast<int>(r.size()) > *page_size) {
      out->set_next_page_token(EncodePageToken(
          std::to_string(after), std::to_string(std::hash<std::string>{}(fingerprint))));
    }
    return absl::OkStatus();
  });
}

absl::Status Catalog::UpdateMultiCloudImage(const Caller& caller,
                                            const pb::UpdateMultiCloudImageRequest& req,
                                            pb::MultiCloudImage* out) {
  const pb::MultiCloudImage& in = req.multi_cloud_image();
  auto name = ReadableMci(caller, in.name(), false);
  if (!name.ok()) return name.status();
  std::vector<std::string> paths(req.update_mask().paths().begin(),
                                 req.update_mask().paths().end());
  if (paths.empty()) paths = {"display_name", "description"};
  for (const auto& p : paths) {
    if (p != "display_name" && p != "description") {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_mask path \"", p,
          "\" cannot be updated; updatable fields are display_name and description (tags: "
          "AddTags/RemoveTags; settings: the setting methods)."));
    }
  }
  bool set_name = std::count(paths.begin(), paths.end(), "display_name") > 0;
  bool set_description = std::count(paths.begin(), paths.end(), "description") > 0;
  if (set_name) {
    if (auto s = ValidateDisplayName(in.display_name()); !s.ok()) return s;
  }
  if (set_description) {
    if (auto s = ValidateDescription(in.description()); !s.ok()) return s;
  }
  // Two round trips: BEGIN with the lock and the read; the update, the event and COMMIT.
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    InfoEdit edit;
    if (auto s = BeginInfoEdit(txn, *name, &edit); !s.ok()) return s;
    MciRow& row = edit.row;
    if (!in.etag().empty() && in.etag() != row.etag()) {
      return absl::AbortedError(absl::StrCat("The etag ", in.etag(), " is stale: ", name->Head(),
                                             " changed since you read it (now ", row.etag(),
                                             "). Get it again and retry."));
    }
    if (auto s = EditableHead(row, *name); !s.ok()) return s;
    if (set_name) row.display_name = in.display_name();
    if (set_description) row.description = in.description();
    CommitInfoEdit(txn, *name, &edit, Event::UPDATED, out);
    return absl::OkStatus();
  });
  if (status.ok()) Committed(*name);
  return status;
}

absl::Status Catalog::CloneMultiCloudImage(const Caller& caller,
                                           const pb::CloneMultiCloudImageRequest& req,
                                           pb::MultiCloudImage* out) {
  auto source = ReadableMci(caller, req.name(), true);
  if (!source.ok()) return source.status();
  if (!req.display_name().empty()) {
    if (auto s = ValidateDisplayName(req.display_name()); !s.ok()) return s;
  }
  if (auto s = ValidateMciId(req.multi_cloud_image_id()); !s.ok()) return s;
  if (auto s = ValidateRequestId(req.request_id()); !s.ok()) return s;
  MciName name{
      caller.account,
      req.multi_cloud_image_id().empty() ? RandomId("mci-", 12) : req.multi_cloud_image_id(), 0};
  bool created = false;
  // Four round trips (db::Together, Pool::TransactInline): BEGIN with the source's read and the
  // name's check (and the request_id's), the insert, the settings' copy with the rest of the
  // statements but the event's (FinishCreate), the event's with COMMIT.
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    std::vector<pqxx::result> r;
    bool name_taken = false;
    if (BeginCreate(txn, name, req.request_id(),
                    {Execute(txn, "read_mci", source->account, source->mci_id, source->revision)},
                    out, &r, &name_taken)) {
      return absl::OkStatus();
    }
    pb::MultiCloudImage src;
    MciRow src_row;
    if (auto s = ParseReadMci(r[0], *source, false, &src, &src_row); !s.ok()) return s;
    if (name_taken) return NameTaken(name);
    std::string display_name =
        req.display_name().empty() ? NextCloneDisplayName(src.display_name()) : req.display_name();
    std::vector<std::string> tags(src.tags().begin(), src.tags().end());
    int64_t id =
        txn.exec_prepared("insert_mci", name.account, name.mci_id, display_name, src.description(),
                          JoinArray(tags), static_cast<int>(pb::Origin::CLONED), source->Full(),
                          src.display_name(), src.origin().lineage(), src.origin().publication(),
                          source->revision)[0][0]
            .as<int64_t>();
    created = true;
    return FinishCreate(txn, name, id, req.request_id(), out, /*commit=*/true,
                        Execute(txn, "copy_settings", id, 0, src_row.id, source->revision));
  });
  if (FirstResultOfRequest(status, name.account, req.request_id(), out)) return absl::OkStatus();
  if (status.ok() && created) Committed(name);
  return status;
}

absl::Status Catalog::CommitMultiCloudImage(const Caller& caller,
                                            const pb::CommitMultiCloudImageRequest& req,
                                            pb::MultiCloudImage* out) {
  auto name = ReadableMci(caller, req.name(), false);
  if (!name.ok()) return name.status();
  if (req.message().size() > kMaxDescription) {
    return absl::InvalidArgumentError("message is longer than 4096 bytes.");
  }
  // Three round trips (db::Together, Pool::TransactInline): BEGIN with the row's lock; the
  // revision's rows, the event's sequence and the answer's read; the event with COMMIT.
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    pqxx::result locked =
        txn.exec(absl::StrCat("BEGIN; ", Execute(txn, "lock_mci", name->account, name->mci_id)));
    MciRow row;
    if (auto s = ParseLoadedMci(locked, *name, &row); !s.ok()) return s;
    if (!req.etag().empty() && req.etag() != row.etag()) {
      return absl::AbortedError(absl::StrCat("The etag ", req.etag(), " is stale: ", name->Head(),
                                             " changed since you read it (now ", row.etag(),
                                             "). Get it again and retry."));
    }
    if (auto s = EditableHead(row, *name); !s.ok()) return s;
    if (row.head_clouds.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          name->Head(),
          " has no settings: add a setting for at least one cloud before committing."));
    }
    int64_t revision = row.latest_revision + 1;
    MciName committed{name->account, name->mci_id, revision};
    std::vector<pqxx::result> r = db::Together(
        txn, {Execute(txn, "insert_revision", row.id, revision, row.display_name, row.description,
                      JoinArray(row.tags), req.message()),
              Execute(txn, "copy_settings", row.id, revision, row.id, 0),
              Execute(txn, "set_latest_revision", row.id, revision),
              Execute(txn, "bump_for_event", row.id, 1),
              Execute(txn, "read_mci", committed.account, committed.mci_id, revision)});
    if (auto s = ParseReadMci(r[4], committed, true, out); !s.ok()) return s;
    InsertEventAndCommit(txn, BuildEvent(row, Event::COMMITTED, revision, Bumped(r[3])));
    return absl::OkStatus();
  });
  if (status.ok()) Committed(*name);
  return status;
}

absl::Status Catalog::ListMultiCloudImageRevisions(
    const Caller& caller, const pb::ListMultiCloudImageRevisionsRequest& req,
    pb::ListMultiCloudImageRevisionsResponse* out) {
  auto name = ReadableMci(caller, req.name(), false);
  if (!name.ok()) return name.status();
  auto page_size = PageSize(req.page_size());
  if (!page_size.ok()) return page_size.status();
  auto cursor = DecodePageToken(req.page_token(), name->Head());
  if (!cursor.ok()) return cursor.status();
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!cursor->empty() && !absl::SimpleAtoi(*cursor, &before)) {
    return absl::InvalidArgumentError("page_token is corrupt; start again without it.");
  }
  return pool_->Run([&](pqxx::connection& c) {
    pqxx::nontransaction txn(c);
    MciRow row;
    if (auto s = LoadMci(txn, *name, false, &row); !s.ok()) return s;
    pqxx::result r = txn.exec_params(kListRevisions, row.id, before, *page_size + 1);
    for (size_t i = 0; i < r.size() && static_cast<int>(i) < *page_size; ++i) {
      pb::MultiCloudImage* m = out->add_multi_cloud_images();
      row.ToProto(m);
      int64_t revision = r[i][0].as<int64_t>();
      m->set_name(MciName{name->account, name->mci_id, revision}.Full());
      m->set_revision(revision);
      m->set_display_name(r[i][1].c_str());
      m->set_description(r[i][2].c_str());
      m->clear_tags();
      for (const auto& t : JsonStrings(r[i][3].c_str())) m->add_tags(t);
      m->set_commit_message(r[i][4].c_str());
      *m->mutable_create_time() = ToTimestamp(r[i][5].as<double>());
      *m->mutable_update_time() = m->create_time();
      for (const auto& cl : JsonStrings(r[i][6].c_str())) m->add_clouds(CloudName(cl));
      m->set_read_only(true);
      m->clear_etag();
      before = revision;
    }
    if (static_cast<int>(r.size()) > *page_size) {
      out->set_next_page_token(EncodePageToken(std::to_string(before), name->Head()));
    }
    return absl::OkStatus();
  });
}

absl::Status Catalog::ImportMultiCloudImage(const Caller& caller,
                                            const pb::ImportMultiCloudImageRequest& req,
                                            pb::MultiCloudImage* out) {
  auto account = ParseAccountName(req.parent());
  if (!account.ok()) return account.status();
  if (*account != caller.account) {
    return absl::PermissionDeniedError(
        absl::StrCat("You can import only into your own account, accounts/", caller.account, "."));
  }
  if (auto s = ValidateRequestId(req.request_id()); !s.ok()) return s;
  const pb::MultiCloudImage& snap = req.snapshot();
  if (auto s = ValidateDisplayName(snap.display_name()); !s.ok()) return s;
  if (snap.origin().kind() != pb::Origin::IMPORTED || snap.origin().source().empty() ||
      snap.origin().lineage().empty() || snap.origin().source_revision() < 1) {
    return absl::InvalidArgumentError(
        "snapshot.origin must be kind IMPORTED with source (publications/{p}), lineage and "
        "source_revision (the published revision, 1 or more).");
  }
  std::set<std::string> tags;
  for (const auto& t : snap.tags()) {
    if (auto s = ValidateTag(t); !s.ok()) return s;
    tags.insert(t);
  }
  struct Setting {
    std::string cloud, image, type, kernel, ramdisk, user_data;
  };
  std::vector<Setting> settings;
  for (const auto& in : snap.settings()) {
    auto cloud = ParseCloudName(in.cloud(), "snapshot.settings.cloud");
    if (!cloud.ok()) return cloud.status();
    auto image = ParseCloudResourceName(in.image(), "images", "snapshot.settings.image");
    if (!image.ok()) return image.status();
    auto type = ParseCloudResourceName(in.instance_type(), "instanceTypes",
                                       "snapshot.settings.instance_type");
    if (!type.ok()) return type.status();
    Setting s{*cloud, image->id, type->id, "", "", in.user_data()};
    if (!in.kernel_image().empty()) {
      auto k =
          ParseCloudResourceName(in.kernel_image(), "images", "snapshot.settings.kernel_image");
      if (!k.ok()) return k.status();
      s.kernel = k->id;
    }
    if (!in.ramdisk_image().empty()) {
      auto r =
          ParseCloudResourceName(in.ramdisk_image(), "images", "snapshot.settings.ramdisk_image");
      if (!r.ok()) return r.status();
      s.ramdisk = r->id;
    }
    settings.push_back(std::move(s));
  }
  if (settings.empty()) {
    return absl::InvalidArgumentError("snapshot.settings is empty: a published MCI has clouds.");
  }
  const int64_t revision = snap.origin().source_revision();
  MciName name{*account, "", 0};
  if (!req.name().empty()) {
    auto target = ReadableMci(caller, req.name(), false);
    if (!target.ok()) return target.status();
    if (!caller.Has(auth::Role::kDesigner) || !caller.Has(auth::Role::kLibrary)) {
      return absl::PermissionDeniedError(
          "Updating an imported MultiCloud Image needs both the designer and library roles.");
    }
    name = *target;
  } else {
    name.mci_id = RandomId("mci-", 12);
  }
  auto write_settings = [&](pqxx::work& txn, int64_t id) {
    for (const Setting& s : settings) {
      for (int64_t rev : {int64_t{0}, revision}) {
        txn.exec_prepared("insert_setting", id, rev, s.cloud, s.image, s.type, s.kernel, s.ramdisk,
                          s.user_data);
      }
    }
    txn.exec_prepared("insert_revision", id, revision, snap.display_name(), snap.description(),
                      JoinArray({tags.begin(), tags.end()}),
                      absl::StrCat("Imported from ", snap.origin().source()));
    txn.exec_prepared("set_latest_revision", id, revision);
  };
  bool changed = false;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    for (const Setting& s : settings) {
      if (txn.exec_prepared("cloud_exists", s.cloud).empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "The published MCI uses ", CloudName(s.cloud), ", which this catalog does not know."));
      }
    }
    if (req.name().empty()) {
      if (!req.request_id().empty() &&
          ReadMciByRequestId(txn, name.account, req.request_id(), out).ok()) {
        return absl::OkStatus();
      }
      int64_t id = txn.exec_prepared("insert_mci", name.account, name.mci_id, snap.display_name(),
                                     snap.description(), JoinArray({tags.begin(), tags.end()}),
                                     static_cast<int>(pb::Origin::IMPORTED), snap.origin().source(),
                                     snap.origin().source_display_name(), snap.origin().lineage(),
                                     snap.origin().source(), revision)[0][0]
                       .as<int64_t>();
      write_settings(txn, id);
      changed = true;
      return FinishCreate(txn, name, id, req.request_id(), out);
    }
    MciRow row;
    if (auto s = LoadMci(txn, name, true, &row); !s.ok()) return s;
    if (!row.imported()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name.Head(),
                       " was not imported from the marketplace; only imported MCIs take "
                       "published updates."));
    }
    if (row.state == pb::MultiCloudImage::DELETING) {
      return absl::FailedPreconditionError(absl::StrCat(name.Head(), " is being deleted."));
    }
    if (revision <= row.latest_revision) {
      if (row.source_revision == revision) return ReadMci(txn, name, true, out);  // a retry
      return absl::FailedPreconditionError(
          absl::StrCat(name.Head(), " already has revision ", row.latest_revision,
                       "; an update must bring a newer published revision than that."));
    }
    txn.exec_params(kDeleteHeadSettings, row.id);
    txn.exec_prepared("update_info", row.id, snap.display_name(), snap.description(),
                      JoinArray({tags.begin(), tags.end()}));
    txn.exec_params(kSetImportOrigin, row.id, snap.origin().source(), snap.origin().source(),
                    revision);
    write_settings(txn, row.id);
    row.display_name = snap.display_name();
    AppendEvent(txn, row, Event::COMMITTED, revision, true);
    changed = true;
    return ReadMci(txn, name, true, out);
  });
  if (FirstResultOfRequest(status, name.account, req.request_id(), out)) return absl::OkStatus();
  if (status.ok() && changed) Committed(name);
  return status;
}

// ---------------------------------------------------------------------------------------------
// Deletion saga (catalog side)

absl::Status Catalog::DeleteMultiCloudImage(const Caller& caller,
                                            const pb::DeleteMultiCloudImageRequest& req,
                                            google::protobuf::Empty*) {
  auto parsed = ParseMciName(req.name(), true);
  if (!parsed.ok()) return parsed.status();
  if (parsed->revision != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Delete the HEAD name ", parsed->Head(),
        ": a MultiCloud Image is deleted with all its revisions, never one revision alone."));
  }
  if (auto s = ValidateRequestId(req.request_id()); !s.ok()) return s;
  auto name = ReadableMci(caller, req.name(), false);
  if (!name.ok()) return name.status();
  std::string deletion_id;
  bool started = false;
  bool done_before = false;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    bool remembered = false;
    if (!req.request_id().empty()) {
      pqxx::result earlier = txn.exec_params(kReadDeletionRequest, name->account, req.request_id());
      if (!earlier.empty() && earlier[0][0].c_str() != name->mci_id) {
        return absl::InvalidArgumentError(
            absl::StrCat("request_id ", req.request_id(), " was given to the Delete of ",
                         MciName{name->account, earlier[0][0].c_str(), 0}.Head(),
                         "; give each Delete a request_id of its own."));
      }
      remembered = !earlier.empty();
    }
    MciRow row;
    absl::Status loaded = LoadMci(txn, *name, true, &row);
    if (loaded.code() == absl::StatusCode::kNotFound && remembered) {
      done_before = true;  // this request deleted it (or saw it deleted): a retry
      return absl::OkStatus();
    }
    if (!loaded.ok()) return loaded;
    if (!req.request_id().empty()) {
      txn.exec_params(kRememberDeletionRequest, name->account, req.request_id(), name->mci_id);
    }
    if (!req.etag().empty() && req.etag() != row.etag()) {
      return absl::AbortedError(absl::StrCat("The etag ", req.etag(), " is stale: ", name->Head(),
                                             " changed since you read it (now ", row.etag(),
                                             "). Get it again and retry."));
    }
    if (row.state == pb::MultiCloudImage::DELETING) {
      deletion_id = row.deletion_id;  // a retried Delete resumes the same saga
      return absl::OkStatus();
    }
    deletion_id = RandomId("del-", 20);
    txn.exec_params(kSetState, row.id, static_cast<int>(pb::MultiCloudImage::DELETING),
                    deletion_id);
    row.state = pb::MultiCloudImage::DELETING;
    row.deletion_id = deletion_id;
    AppendEvent(txn, row, Event::DELETION_STARTED, 0, true);
    started = true;
    return absl::OkStatus();
  });
  if (!status.ok() || done_before) return status;
  if (started) Committed(*name);
  std::vector<std::string> usages;
  return FinishDeletion(*name, deletion_id, &usages);
}

absl::Status Catalog::FinishDeletion(const MciName& name, const std::string& deletion_id,
                                     std::vector<std::string>* usages) {
  auto reservation = deletion_peer_->Reserve(name.Head(), deletion_id);
  if (!reservation.ok()) {
    log::Warn("deletion: reservation failed; the recovery loop will retry",
              {{"mci", name.Head()}, {"error", reservation.status().ToString()}});
    return absl::UnavailableError(absl::StrCat(
        "Could not check with the template-reference service whether ServerTemplates use ",
        name.Head(), " (", reservation.status().message(),
        "). The MCI stays DELETING until the check succeeds, then it is deleted or restored "
        "automatically; retry the Delete to see the outcome."));
  }
  if (reservation->reserved && options_.fault_injection == "crash-after-reserve") {
    log::Error("fault injection: crashing after the reservation", {{"mci", name.Head()}});
    _exit(137);
  }
  bool changed = false;
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    MciRow row;
    pqxx::result r = txn.exec_prepared("lock_mci", name.account, name.mci_id);
    if (r.empty()) return absl::OkStatus();  // already finished by another attempt
    row.Parse(r[0]);
    if (row.state != pb::MultiCloudImage::DELETING || row.deletion_id != deletion_id) {
      return absl::AbortedError(absl::StrCat("The deletion of ", name.Head(),
                                             " was settled concurrently; get it again."));
    }
    if (reservation->reserved) {
      AppendEvent(txn, row, Event::DELETED, 0, true);
      txn.exec_params(kDeleteMci, row.id);
    } else {
      txn.exec_params(kSetState, row.id, static_cast<int>(pb::MultiCloudImage::ACTIVE), "");
      row.state = pb::MultiCloudImage::ACTIVE;
      AppendEvent(txn, row, Event::DELETION_ABORTED, 0, true);
    }
    changed = true;
    return absl::OkStatus();
  });
  if (changed) Committed(name);
  if (status.ok() || status.code() == absl::StatusCode::kAborted) {
    absl::Status released =
        deletion_peer_->Release(name.Head(), deletion_id, reservation->reserved);
    if (!released.ok()) {
      log::Warn("deletion: release failed (the deleted/aborted event settles it too)",
                {{"mci", name.Head()}, {"error", released.ToString()}});
    }
  }
  if (!status.ok()) return status;
  if (reservation->reserved) return absl::OkStatus();
  *usages = reservation->usages;
  return absl::FailedPreconditionError(absl::StrCat(
      "Cannot delete as the MultiCloud Image (HEAD/committed revision) is being used by one or "
      "more ServerTemplates. Used by: ",
      absl::StrJoin(reservation->usages, ", "),
      ". Remove the MCI from those ServerTemplates (see ListMultiCloudImageUsages) and delete "
      "again."));
}

int Catalog::RecoverDeletions() {
  std::vector<std::pair<MciName, std::string>> stale;
  absl::Status s = pool_->Run([&](pqxx::connection& c) {
    pqxx::nontransaction txn(c);
    for (const auto& r : txn.exec_params(kStaleDeletions,
                                         absl::ToDoubleSeconds(options_.deletion_recovery_after))) {
      stale.push_back({MciName{r[0].c_str(), r[1].c_str(), 0}, r[2].c_str()});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return 0;
  int settled = 0;
  for (const auto& [name, deletion_id] : stale) {
    std::vector<std::string> usages;
    absl::Status result = FinishDeletion(name, deletion_id, &usages);
    if (result.code() != absl::StatusCode::kUnavailable) {
      ++settled;
      log::Info("deletion recovered",
                {{"mci", name.Head()}, {"outcome", result.ok() ? "deleted" : "restored"}});
    }
  }
  return settled;
}

// ---------------------------------------------------------------------------------------------
// Settings

std::vector<std::string> Catalog::SettingReads(pqxx::transaction_base& txn,
                                               const std::string& account,
                                               const std::string& cloud_id,
                                               const pb::MultiCloudImageSetting& s) {
  std::vector<std::string> reads = {Execute(txn, "cloud_exists", cloud_id)};
  for (const std::string* image : {&s.image(), &s.kernel_image(), &s.ramdisk_image()}) {
    if (image->empty()) continue;
    auto n = ParseCloudResourceName(*image, "images", "setting.image");
    if (n.ok()) reads.push_back(Execute(txn, "visible_image", n->cloud_id, n->id, account));
  }
  if (!s.instance_type().empty()) {
    auto type = ParseCloudResourceName(s.instance_type(), "instanceTypes", "setting.instance_type");
    if (type.ok()) {
      reads.push_back(Execute(txn, "instance_type_architectures", type->cloud_id, type->id));
    }
  }
  return reads;
}

absl::Status Catalog::CheckSetting(pqxx::transaction_base& txn, const std::string& account,
                                   const std::string& cloud_id, const pb::MultiCloudImageSetting& s,
                                   const std::map<std::string, pqxx::result>* prefetched) {
  auto read = [&](const std::string& statement) -> pqxx::result {
    if (prefetched != nullptr) {
      if (auto it = prefetched->find(statement); it != prefetched->end()) return it->second;
    }
    return txn.exec(statement);
  };
  if (read(Execute(txn, "cloud_exists", cloud_id)).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cloud ", CloudName(cloud_id), " does not exist; see ListClouds."));
  }
  auto same_cloud = [&](absl::string_view field, const CloudResourceName& n,
                        absl::string_view full) -> absl::Status {
    if (n.cloud_id == cloud_id) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        field, " ", full, " belongs to ", CloudName(n.cloud_id), ", but the setting is for ",
        CloudName(cloud_id), ": images and instance types are cloud-specific."));
  };
  auto image_of_kind = [&](absl::string_view field, const std::string& full, pb::ImageKind kind,
                           int* architecture) -> absl::Status {
    auto n = ParseCloudResourceName(full, "images", field);
    if (!n.ok()) return n.status();
    if (auto st = same_cloud(field, *n, full); !st.ok()) return st;
    pqxx::result r = read(Execute(txn, "visible_image", n->cloud_id, n->id, account));
    if (r.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " ", full, " does not exist in ", CloudName(cloud_id),
                       " or is not visible to accounts/", account,
                       " (public, your own, or shared with you); see ListImages."));
    }
    if (r[0][0].as<int>() != kind) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " ", full, " is a ",
                       pb::ImageKind_Name(static_cast<pb::ImageKind>(r[0][0].as<int>())),
                       " image; ", field, " needs a ", pb::ImageKind_Name(kind), " image."));
    }
    if (architecture != nullptr) *architecture = r[0][1].as<int>();
    return absl::OkStatus();
  };
  int architecture = 0;
  if (s.image().empty()) {
    return absl::InvalidArgumentError(
        "setting.image is required: the machine image (clouds/{cloud}/images/{image}) to launch.");
  }
  if (auto st = image_of_kind("setting.image", s.image(), pb::MACHINE, &architecture); !st.ok()) {
    return st;
  }
  if (!s.kernel_image().empty()) {
    if (auto st = image_of_kind("setting.kernel_image", s.kernel_image(), pb::KERNEL, nullptr);
        !st.ok()) {
      return st;
    }
  }
  if (!s.ramdisk_image().empty()) {
    if (auto st = image_of_kind("setting.ramdisk_image", s.ramdisk_image(), pb::RAMDISK, nullptr);
        !st.ok()) {
      return st;
    }
  }
  if (s.instance_type().empty()) {
    return absl::InvalidArgumentError(
        "setting.instance_type is required: clouds/{cloud}/instanceTypes/{type}; see "
        "ListInstanceTypes.");
  }
  auto type = ParseCloudResourceName(s.instance_type(), "instanceTypes", "setting.instance_type");
  if (!type.ok()) return type.status();
  if (auto st = same_cloud("setting.instance_type", *type, s.instance_type()); !st.ok()) return st;
  pqxx::result t = read(Execute(txn, "instance_type_architectures", type->cloud_id, type->id));
  if (t.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("Instance type ", s.instance_type(),
                                                   " does not exist; see ListInstanceTypes."));
  }
  std::vector<int> arches = JsonInts(t[0][0].c_str());
  if (std::find(arches.begin(), arches.end(), architecture) == arches.end()) {
    std::vector<std::string> supported;
    supported.reserve(arches.size());
    for (int a : arches) supported.push_back(ArchitectureName(static_cast<pb::Architecture>(a)));
    return absl::InvalidArgumentError(absl::StrCat(
        "Instance type ", s.instance_type(), " supports ", absl::StrJoin(supported, " and "),
        " images only, but image ", s.image(), " is ",
        ArchitectureName(static_cast<pb::Architecture>(architecture)),
        ": pick an instance type for that architecture, or an image of the other one."));
  }
  if (s.user_data().size() > kMaxUserDataBytes) {
    return absl::InvalidArgumentError(absl::StrCat("setting.user_data is ", s.user_data().size(),
                                                   " bytes; the limit is 16 KiB (16384 bytes)."));
  }
  return absl::OkStatus();
}

namespace {

std::string IdOf(const std::string& full) {
  auto slash = full.rfind('/');
  return slash == std::string::npos ? full : full.substr(slash + 1);
}

}  // namespace

absl::Status Catalog::CreateMultiCloudImageSetting(
    const Caller& caller, const pb::CreateMultiCloudImageSettingRequest& req,
    pb::MultiCloudImageSetting* out) {
  auto name = ReadableMci(caller, req.parent(), false);
  if (!name.ok()) return name.status();
  const pb::MultiCloudImageSetting& s = req.setting();
  auto cloud = ParseCloudName(s.cloud(), "setting.cloud");
  if (!cloud.ok()) return cloud.status();
  // Four round trips (db::Together, Pool::TransactInline): BEGIN with the row's lock and the
  // setting's validation reads; whether the cloud has a setting already; the insert with the
  // event's sequence; the event with COMMIT. The checks run in the order they always did.
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    std::vector<std::string> first = {"BEGIN",
                                      Execute(txn, "lock_mci", name->account, name->mci_id)};
    const std::vector<std::string> reads = SettingReads(txn, name->account, *cloud, s);
    first.insert(first.end(), reads.begin(), reads.end());
    std::vector<pqxx::result> r = db::Together(txn, first);
    MciRow row;
    if (auto st = ParseLoadedMci(r[1], *name, &row); !st.ok()) return st;
    if (auto st = EditableHead(row, *name); !st.ok()) return st;
    if (!txn.exec_prepared("setting_exists", row.id, *cloud).empty()) {
      return absl::AlreadyExistsError(absl::StrCat(
          name->Head(), " already has a setting for ", CloudName(*cloud),
          " (one image per cloud); update that setting instead, or create another MCI."));
    }
    std::map<std::string, pqxx::result> prefetched;
    for (size_t i = 0; i < reads.size(); ++i) prefetched.emplace(reads[i], r[i + 2]);
    if (auto st = CheckSetting(txn, name->account, *cloud, s, &prefetched); !st.ok()) return st;
    std::vector<pqxx::result> written = db::Together(
        txn,
        {Execute(txn, "insert_setting", row.id, 0, *cloud, IdOf(s.image()), IdOf(s.instance_type()),
                 s.kernel_image().empty() ? "" : IdOf(s.kernel_image()),
                 s.ramdisk_image().empty() ? "" : IdOf(s.ramdisk_image()), s.user_data()),
         Execute(txn, "bump_for_event", row.id, 1)});
    InsertEventAndCommit(txn, BuildEvent(row, Event::SETTINGS_CHANGED, 0, Bumped(written[1])));
    *out = s;
    out->set_name(SettingName{*name, *cloud}.Full());
    return absl::OkStatus();
  });
  if (status.ok()) Committed(*name);
  return status;
}

absl::Status Catalog::UpdateMultiCloudImageSetting(
    const Caller& caller, const pb::UpdateMultiCloudImageSettingRequest& req,
    pb::MultiCloudImageSetting* out) {
  auto setting = ParseSettingName(req.setting().name());
  if (!setting.ok()) return setting.status();
  auto name = ReadableMci(caller, setting->mci.Full(), false);
  if (!name.ok()) return name.status();
  std::vector<std::string> paths(req.update_mask().paths().begin(),
                                 req.update_mask().paths().end());
  static const std::set<std::string> kUpdatable = {"image", "instance_type", "kernel_image",
                                                   "ramdisk_image", "user_data"};
  if (paths.empty()) paths.assign(kUpdatable.begin(), kUpdatable.end());
  for (const auto& p : paths) {
    if (kUpdatable.count(p) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("update_mask path \"", p,
                       "\" cannot be updated; updatable fields are image, "
                       "instance_type, kernel_image, ramdisk_image and user_data."));
    }
  }
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    MciRow row;
    if (auto st = LoadMci(txn, *name, true, &row); !st.ok()) return st;
    if (auto st = EditableHead(row, *name); !st.ok()) return st;
    pb::MultiCloudImage current;
    if (auto st = ReadMci(txn, *name, true, &current); !st.ok()) return st;
    const pb::MultiCloudImageSetting* existing = nullptr;
    for (const auto& s : current.settings()) {
      if (s.cloud() == CloudName(setting->cloud_id)) existing = &s;
    }
    if (existing == nullptr) {
      return absl::NotFoundError(absl::StrCat("Setting ", req.setting().name(), " not found."));
    }
    pb::MultiCloudImageSetting merged = *existing;
    for (const auto& p : paths) {
      if (p == "image") merged.set_image(req.setting().image());
      if (p == "instance_type") merged.set_instance_type(req.setting().instance_type());
      if (p == "kernel_image") merged.set_kernel_image(req.setting().kernel_image());
      if (p == "ramdisk_image") merged.set_ramdisk_image(req.setting().ramdisk_image());
      if (p == "user_data") merged.set_user_data(req.setting().user_data());
    }
    if (auto st = CheckSetting(txn, name->account, setting->cloud_id, merged); !st.ok()) return st;
    txn.exec_prepared("update_setting", row.id, setting->cloud_id, IdOf(merged.image()),
                      IdOf(merged.instance_type()),
                      merged.kernel_image().empty() ? "" : IdOf(merged.kernel_image()),
                      merged.ramdisk_image().empty() ? "" : IdOf(merged.ramdisk_image()),
                      merged.user_data());
    AppendEvent(txn, row, Event::SETTINGS_CHANGED, 0, true);
    *out = merged;
    return absl::OkStatus();
  });
  if (status.ok()) Committed(*name);
  return status;
}

absl::Status Catalog::DeleteMultiCloudImageSetting(
    const Caller& caller, const pb::DeleteMultiCloudImageSettingRequest& req,
    google::protobuf::Empty*) {
  auto setting = ParseSettingName(req.name());
  if (!setting.ok()) return setting.status();
  auto name = ReadableMci(caller, setting->mci.Full(), false);
  if (!name.ok()) return name.status();
  absl::Status status = pool_->Transact([&](pqxx::work& txn) -> absl::Status {
    MciRow row;
    if (auto st = LoadMci(txn, *name, true, &row); !st.ok()) return st;
    if (auto st = EditableHead(row, *name); !st.ok()) return st;
    if (txn.exec_prepared("delete_setting", row.id, setting->cloud_id).affected_rows() == 0) {
      return absl::NotFoundError(absl::StrCat("Setting ", req.name(), " not found."));
    }
    AppendEvent(txn, row, Event::SETTINGS_CHANGED, 0, true);
    return absl::OkStatus();
  });
  if (status.ok()) Committed(*name);
  return status;
}

absl::Status Catalog::ListMultiCloudImageSettings(const Caller& caller,
                                                  const pb::ListMultiCloudImageSettingsRequest& req,
                                                  pb::ListMultiCloudImageSettingsResponse* out) {
  pb::GetMultiCloudImageRequest get;
  get.set_name(req.parent());
  std::shared_ptr<const MciCache::Entry> mci;
  if (auto s = GetMci(caller, get, &mci); !s.ok()) return s;
  *out->mutable_settings() = mci->message.settings();
  return absl::OkStatus();
}

absl::Status Catalog::ListAvailableClouds(const Caller& caller,
                                          const pb::ListAvailableCloudsRequest& req,
                                          pb::ListAvailableCloudsResponse* out) {
  auto name = ReadableMci(caller, req.name(), false);
  if (!name.ok()) return name.status();
  return pool_->Run([&](pqxx::connection& c) {
    pqxx::nontransaction txn(c);
    MciRow row;
    if (auto st = LoadMci(txn, *name, false, &row); !st.ok()) return st;
    for (const auto& r : txn.exec_params(kAvailableClouds, row.id)) {
      pb::Cloud* cloud = out->add_clouds();
      cloud->set_name(CloudName(r[0].c_str()));
      cloud->set_display_name(r[1].c_str());
      cloud->set_provider(r[2].c_str());
      cloud->set_region(r[3].c_str());
    }
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------------------------------------
// Tags

absl::Status Catalog::AddTags(const Caller& caller, const pb::AddTagsRequest& req,
                              pb::MultiCloudImage* out) {
  auto name = ReadableMci(caller, req.name(), false);
  if (!name.ok()) return name.status();
  if (req.tags().empty()) {
    return absl::InvalidArgumentError("tags is empty: name at least one tag.");
  }
  for (const auto& t : req.tags()) {
    if (auto s = ValidateTag(t); !s.ok()) return s;
  }
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    InfoEdit edit;
    if (auto st = BeginInfoEdit(txn, *name, &edit); !st.ok()) return st;
    if (auto st = EditableHead(edit.row, *name); !st.ok()) return st;
    std::set<std::string> tags(edit.row.tags.begin(), edit.row.tags.end());
    tags.insert(req.tags().begin(), req.tags().end());
    if (tags.size() > 100) {
      return absl::InvalidArgumentError("An MCI holds at most 100 tags.");
    }
    edit.row.tags.assign(tags.begin(), tags.end());
    CommitInfoEdit(txn, *name, &edit, Event::TAGS_CHANGED, out);
    return absl::OkStatus();
  });
  if (status.ok()) Committed(*name);
  return status;
}

absl::Status Catalog::RemoveTags(const Caller& caller, const pb::RemoveTagsRequest& req,
                                 pb::MultiCloudImage* out) {
  auto name = ReadableMci(caller, req.name(), false);
  if (!name.ok()) return name.status();
  if (req.tags().empty()) {
    return absl::InvalidArgumentError("tags is empty: name at least one tag.");
  }
  for (const auto& t : req.tags()) {
    if (auto s = ValidateTag(t); !s.ok()) return s;
  }
  absl::Status status = pool_->TransactInline([&](pqxx::nontransaction& txn) -> absl::Status {
    InfoEdit edit;
    if (auto st = BeginInfoEdit(txn, *name, &edit); !st.ok()) return st;
    if (auto st = EditableHead(edit.row, *name); !st.ok()) return st;
    std::set<std::string> tags(edit.row.tags.begin(), edit.row.tags.end());
    for (const auto& t : req.tags()) tags.erase(t);
    edit.row.tags.assign(tags.begin(), tags.end());
    CommitInfoEdit(txn, *name, &edit, Event::TAGS_CHANGED, out);
    return absl::OkStatus();
  });
  if (status.ok()) Committed(*name);
  return status;
}

// ---------------------------------------------------------------------------------------------
// Resolve and validate

namespace {

// ResolveImage's answer (or its FAILED_PRECONDITION: the cloud is not covered) from a row of
// RESOLVE_SELECT; NOT_FOUND when the revision does not exist.
absl::Status ResolveAnswer(const MciName& name, const std::string& cloud, const pqxx::row& f,
                           ResolveCache::Answer* out) {
  ResolveCache::Answer& answer = *out;
  if (!f[1].as<bool>()) {
    return absl::NotFoundError(
        absl::StrCat("Revision ", name.revision, " of ", name.Head(), " not found."));
  }
  if (!f[2].as<bool>()) {
    std::vector<std::string> clouds;
    for (const auto& cl : JsonStrings(f[17].c_str())) clouds.push_back(CloudName(cl));
    answer.status = absl::FailedPreconditionError(absl::StrCat(
        name.Full(), " has no image for ", CloudName(cloud), "; it supports ",
        clouds.empty() ? "no clouds yet" : absl::StrJoin(clouds, ", "),
        ". Add a setting for that cloud (on HEAD or a clone) or launch in a supported one."));
    return absl::OkStatus();
  }
  pb::ResolveImageResponse& resp = answer.response;
  resp.set_multi_cloud_image(name.Full());
  resp.set_revision(name.revision);
  pb::MultiCloudImageSetting* s = resp.mutable_setting();
  s->set_name(SettingName{name, cloud}.Full());
  s->set_cloud(CloudName(cloud));
  s->set_image(ImageName(cloud, f[3].c_str()));
  s->set_instance_type(InstanceTypeName(cloud, f[4].c_str()));
  if (*f[5].c_str() != '\0') s->set_kernel_image(ImageName(cloud, f[5].c_str()));
  if (*f[6].c_str() != '\0') s->set_ramdisk_image(ImageName(cloud, f[6].c_str()));
  s->set_user_data(f[7].c_str());
  pb::Image* image = resp.mutable_image();
  image->set_name(s->image());
  image->set_provider_id(f[8].c_str());
  image->set_kind(static_cast<pb::ImageKind>(f[9].as<int>()));
  image->set_os(f[10].c_str());
  image->set_architecture(static_cast<pb::Architecture>(f[11].as<int>()));
  image->set_agent_version(f[12].c_str());
  image->set_display_name(f[13].c_str());
  std::string owner = f[14].c_str();
  image->set_visibility(owner.empty() ? pb::PUBLIC : pb::PRIVATE);
  if (!owner.empty()) image->set_owner("accounts/" + owner);
  resp.set_image_provider_id(f[8].c_str());
  resp.set_kernel_provider_id(f[15].c_str());
  resp.set_ramdisk_provider_id(f[16].c_str());
  resp.set_sequence(f[18].as<int64_t>());
  return absl::OkStatus();
}

}  // namespace

std::optional<absl::Status> Catalog::LookUpResolve(const Caller& caller,
                                                   const pb::ResolveImageRequest& req,
                                                   std::shared_ptr<const ResolveCache::Answer>* out,
                                                   CacheMiss* miss) {
  auto name = ReadableMci(caller, req.name(), true);
  if (!name.ok()) return name.status();
  auto cloud = ParseCloudName(req.cloud(), "cloud");
  if (!cloud.ok()) return cloud.status();
  miss->name = *std::move(name);
  miss->cloud = *std::move(cloud);
  auto hit = cache_.Get(miss->name.Key(), miss->name.revision, miss->cloud, &miss->generation);
  if (hit == nullptr) return std::nullopt;
  absl::Status status = hit->status;
  if (status.ok()) *out = std::move(hit);
  return status;
}

absl::Status Catalog::ResolveImageWire(const Caller& caller, const pb::ResolveImageRequest& req,
                                       Wire* out) {
  std::shared_ptr<const ResolveCache::Answer> answer;
  absl::Status status = Resolve(caller, req, &answer);
  if (status.ok()) *out = Wire(answer, &answer->wire);
  return status;
}

std::optional<absl::Status> Catalog::ResolveImageWireCached(const Caller& caller,
                                                            const pb::ResolveImageRequest& req,
                                                            Wire* out) {
  CacheMiss miss;
  std::shared_ptr<const ResolveCache::Answer> answer;
  auto answered = LookUpResolve(caller, req, &answer, &miss);
  if (answered.has_value() && answered->ok()) *out = Wire(answer, &answer->wire);
  return answered;
}

absl::Status Catalog::Resolve(const Caller& caller, const pb::ResolveImageRequest& req,
                              std::shared_ptr<const ResolveCache::Answer>* out) {
  CacheMiss miss;
  if (auto answered = LookUpResolve(caller, req, out, &miss)) return *answered;
  const MciName& name = miss.name;
  const std::string& cloud = miss.cloud;
  ResolveCache::Answer answer;
  absl::Status status = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    pqxx::result r = txn.exec_prepared("resolve", name.account, name.mci_id, name.revision, cloud);
    if (r.empty()) return NotFound(name);
    return ResolveAnswer(name, cloud, r[0], &answer);
  });
  Metrics::Global().AddCounter("mci_resolve_cache_misses_total", 1);
  if (!status.ok()) return status;
  auto entry = cache_.Put(name.Key(), name.revision, cloud, miss.generation, std::move(answer));
  if (entry->status.ok()) *out = entry;
  return entry->status;
}

namespace {

// The HEAD name of a cache group's key, account/mci_id (MciName::Key).
MciName HeadOfKey(const std::string& key) {
  auto slash = key.find('/');
  return MciName{key.substr(0, slash), key.substr(slash + 1), 0};
}

// The refresh of `count` due answers, a thousand to a query: `query(txn, from, to)` reads
// answers [from, to), each row carrying its 1-based place among them in its last column;
// `parse(i, row, &answer)` makes answer i of a row, and `store(i, answer)` caches it once the
// read is done. An answer without a row (its MCI gone) or that does not parse is not stored: it
// expires, and its next reader is told. Returns how many were stored.
template <typename Answer, typename Query, typename Parse, typename Store>
int RefreshInBatches(db::Pool* pool, size_t count, const Query& query, const Parse& parse,
                     const Store& store) {
  constexpr size_t kPerQuery = 1000;
  int refreshed = 0;
  for (size_t from = 0; from < count; from += kPerQuery) {
    const size_t to = std::min(count, from + kPerQuery);
    std::vector<std::pair<size_t, Answer>> answers;
    absl::Status status = pool->Run([&](pqxx::connection& c) -> absl::Status {
      pqxx::nontransaction txn(c);
      for (const auto& row : query(txn, from, to)) {
        const size_t i = from + row[row.size() - 1].template as<size_t>() - 1;
        Answer answer;
        if (i >= to || !parse(i, row, &answer).ok()) continue;
        answers.emplace_back(i, std::move(answer));
      }
      return absl::OkStatus();
    });
    if (!status.ok()) {
      // The answers expire as they would have without this; their readers read them again.
      log::Warn("cannot refresh cached answers", {{"error", status.ToString()}});
      break;
    }
    for (auto& [i, answer] : answers) store(i, std::move(answer));
    refreshed += static_cast<int>(answers.size());
  }
  return refreshed;
}

// `field(i)` for i in [from, to), joined by \x1f: the lists the *_heads statements take.
template <typename Field>
std::string JoinedRange(size_t from, size_t to, const Field& field) {
  std::string out;
  for (size_t i = from; i < to; ++i) absl::StrAppend(&out, i > from ? "\x1f" : "", field(i));
  return out;
}

// At most this many due answers of each cache per refresh (20 queries).
constexpr size_t kRefreshLimit = 20000;

}  // namespace

int Catalog::RefreshDueHeads(absl::Duration ahead) {
  return RefreshDueResolves(ahead) + RefreshDueMcis(ahead);
}

int Catalog::RefreshDueResolves(absl::Duration ahead) {
  const std::vector<ResolveCache::DueHead> due =
      cache_.DueHeads(absl::Now() + ahead, kRefreshLimit);
  std::vector<MciName> names;
  for (const auto& d : due) names.push_back(HeadOfKey(d.mci_key));
  const int refreshed = RefreshInBatches<ResolveCache::Answer>(
      pool_, due.size(),
      [&](pqxx::nontransaction& txn, size_t from, size_t to) {
        return txn.exec_prepared(
            "resolve_heads", JoinedRange(from, to, [&](size_t i) { return names[i].account; }),
            JoinedRange(from, to, [&](size_t i) { return names[i].mci_id; }),
            JoinedRange(from, to, [&](size_t i) { return due[i].cloud; }));
      },
      [&](size_t i, const pqxx::row& row, ResolveCache::Answer* answer) {
        return ResolveAnswer(names[i], due[i].cloud, row, answer);
      },
      [&](size_t i, ResolveCache::Answer answer) {
        cache_.Put(due[i].mci_key, 0, due[i].cloud, due[i].generation, std::move(answer));
      });
  if (refreshed > 0) Metrics::Global().AddCounter("mci_resolve_cache_refreshed_total", refreshed);
  return refreshed;
}

int Catalog::RefreshDueMcis(absl::Duration ahead) {
  const std::vector<MciCache::DueHead> due =
      mcis_cache_.DueHeads(absl::Now() + ahead, kRefreshLimit);
  std::vector<MciName> names;
  for (const auto& d : due) names.push_back(HeadOfKey(d.mci_key));
  const int refreshed = RefreshInBatches<pb::MultiCloudImage>(
      pool_, due.size(),
      [&](pqxx::nontransaction& txn, size_t from, size_t to) {
        return txn.exec_prepared(
            "read_mci_heads", JoinedRange(from, to, [&](size_t i) { return names[i].account; }),
            JoinedRange(from, to, [&](size_t i) { return names[i].mci_id; }));
      },
      [&](size_t i, const pqxx::row& row, pb::MultiCloudImage* answer) {
        return ParseReadMciRow(row, names[i], /*with_settings=*/true, answer);
      },
      [&](size_t i, pb::MultiCloudImage answer) {
        mcis_cache_.Put(due[i].mci_key, 0, due[i].generation, std::move(answer));
      });
  if (refreshed > 0) Metrics::Global().AddCounter("mci_get_cache_refreshed_total", refreshed);
  return refreshed;
}

absl::Status Catalog::ValidateMultiCloudImage(const Caller& caller,
                                              const pb::ValidateMultiCloudImageRequest& req,
                                              pb::ValidateMultiCloudImageResponse* out) {
  auto name = ReadableMci(caller, req.name(), true);
  if (!name.ok()) return name.status();
  return pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction txn(c);
    pb::MultiCloudImage mci;
    if (auto s = ReadMci(txn, *name, false, &mci); !s.ok()) return s;
    MciRow row;
    if (auto s = LoadMci(txn, *name, false, &row); !s.ok()) return s;
    std::vector<SettingFacts> facts;
    for (const auto& r :
         txn.exec_prepared("validate_settings", row.id, name->revision, name->account)) {
      SettingFacts f;
      std::string cloud = r[0].c_str();
      f.cloud = CloudName(cloud);
      f.image_found = r[3].as<bool>();
      f.image.set_name(ImageName(cloud, r[1].c_str()));
      f.image.set_kind(static_cast<pb::ImageKind>(r[4].as<int>()));
      f.image.set_provider_id(r[5].c_str());
      f.image.set_os(r[6].c_str());
      f.image.set_architecture(static_cast<pb::Architecture>(r[7].as<int>()));
      f.image.set_agent_version(r[8].c_str());
      if (*r[9].c_str() != '\0') f.image.set_owner(absl::StrCat("accounts/", r[9].c_str()));
      f.image_usable = !r[10].is_null() && r[10].as<bool>();
      f.instance_type_found = r[11].as<bool>();
      f.instance_type.set_name(InstanceTypeName(cloud, r[2].c_str()));
      for (int a : JsonInts(r[12].c_str())) {
        f.instance_type.add_architectures(static_cast<pb::Architecture>(a));
      }
      facts.push_back(std::move(f));
    }
    std::vector<std::string> tags(mci.tags().begin(), mci.tags().end());
    for (auto& f : ComputeFindings(tags, facts, name->account)) *out->add_findings() = std::move(f);
    return absl::OkStatus();
  });
}

}  // namespace mci::catalog
