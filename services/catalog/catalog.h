#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/common/auth.h"
#include "libs/common/db.h"
#include "mci/catalog/v1/catalog.pb.h"
#include "mci/events/v1/events.pb.h"
#include "services/catalog/names.h"
#include "services/catalog/resolve_cache.h"

namespace mci::catalog {

namespace pb = ::mci::catalog::v1;

// The template-reference side of the deletion saga.
class DeletionPeer {
 public:
  struct Reservation {
    bool reserved = false;
    // Templates (HEAD or @N) that use the MCI, when refused.
    std::vector<std::string> usages;
  };
  virtual ~DeletionPeer() = default;
  virtual absl::StatusOr<Reservation> Reserve(const std::string& mci,
                                              const std::string& deletion_id) = 0;
  virtual absl::Status Release(const std::string& mci, const std::string& deletion_id,
                               bool deleted) = 0;
};

struct CatalogOptions {
  // Test-only: "crash-after-reserve" exits the process right after a successful reservation.
  std::string fault_injection;
  // A DELETING MCI untouched for this long is finished by the recovery loop.
  absl::Duration deletion_recovery_after = absl::Seconds(3);
  // The lifetime of HEAD's cached answers (JitteredTtl: half of it to all of it), the bound on how
  // long a write whose event this replica missed can go unseen.
  absl::Duration head_ttl = absl::Seconds(10);
};

// The catalog's domain logic: inventory, MultiCloud Images, revisions, settings, tags, resolve,
// validation and the catalog side of the deletion saga. Every write runs in one transaction that
// also appends its event to the outbox. No gRPC types: the adapter converts statuses.
class Catalog {
 public:
  Catalog(db::Pool* pool, DeletionPeer* deletion_peer, CatalogOptions options = {});

  // Called after a transaction with events committed (wakes the outbox relay).
  void set_on_events(std::function<void()> fn) { on_events_ = std::move(fn); }
  ResolveCache& resolve_cache() { return cache_; }
  // Statements prepared on every pooled connection.
  static void Prepare(pqxx::connection& conn);
  // Loads the inventory seed (JSON of pb::Inventory) idempotently.
  absl::Status SeedInventory(const std::string& json);

  using Caller = auth::Caller;
  absl::Status ListClouds(const Caller&, const pb::ListCloudsRequest&, pb::ListCloudsResponse*);
  absl::Status RegisterCloud(const Caller&, const pb::RegisterCloudRequest&, pb::Cloud*);
  absl::Status ListInstanceTypes(const Caller&, const pb::ListInstanceTypesRequest&,
                                 pb::ListInstanceTypesResponse*);
  absl::Status ListImages(const Caller&, const pb::ListImagesRequest&, pb::ListImagesResponse*);
  absl::Status RegisterImage(const Caller&, const pb::RegisterImageRequest&, pb::Image*);
  absl::Status ShareImage(const Caller&, const pb::ShareImageRequest&, pb::Image*);

  absl::Status CreateMultiCloudImage(const Caller&, const pb::CreateMultiCloudImageRequest&,
                                     pb::MultiCloudImage*);
  // GetMultiCloudImage's answer serialized, for the service to reply with as it is: the cached
  // bytes when cached (then the Cached one answers without the database: a cached answer, or a
  // bad request; else nullopt).
  using Wire = std::shared_ptr<const std::string>;
  absl::Status GetMultiCloudImageWire(const Caller&, const pb::GetMultiCloudImageRequest&, Wire*);
  std::optional<absl::Status> GetMultiCloudImageWireCached(const Caller&,
                                                           const pb::GetMultiCloudImageRequest&,
                                                           Wire*);
  absl::Status ListMultiCloudImages(const Caller&, const pb::ListMultiCloudImagesRequest&,
                                    pb::ListMultiCloudImagesResponse*);
  absl::Status UpdateMultiCloudImage(const Caller&, const pb::UpdateMultiCloudImageRequest&,
                                     pb::MultiCloudImage*);
  absl::Status DeleteMultiCloudImage(const Caller&, const pb::DeleteMultiCloudImageRequest&,
                                     google::protobuf::Empty*);
  absl::Status CloneMultiCloudImage(const Caller&, const pb::CloneMultiCloudImageRequest&,
                                    pb::MultiCloudImage*);
  absl::Status CommitMultiCloudImage(const Caller&, const pb::CommitMultiCloudImageRequest&,
                                     pb::MultiCloudImage*);
  absl::Status ListMultiCloudImageRevisions(const Caller&,
                                            const pb::ListMultiCloudImageRevisionsRequest&,
                                            pb::ListMultiCloudImageRevisionsResponse*);
  absl::Status ImportMultiCloudImage(const Caller&, const pb::ImportMultiCloudImageRequest&,
                                     pb::MultiCloudImage*);

  absl::Status CreateMultiCloudImageSetting(const Caller&,
                                            const pb::CreateMultiCloudImageSettingRequest&,
                                            pb::MultiCloudImageSetting*);
  absl::Status UpdateMultiCloudImageSetting(const Caller&,
                                            const pb::UpdateMultiCloudImageSettingRequest&,
                                            pb::MultiCloudImageSetting*);
  absl::Status DeleteMultiCloudImageSetting(const Caller&,
                                            const pb::DeleteMultiCloudImageSettingRequest&,
                                            google::protobuf::Empty*);
  absl::Status ListMultiCloudImageSettings(const Caller&,
                                           const pb::ListMultiCloudImageSettingsRequest&,
                                           pb::ListMultiCloudImageSettingsResponse*);
  absl::Status ListAvailableClouds(const Caller&, const pb::ListAvailableCloudsRequest&,
                                   pb::ListAvailableCloudsResponse*);

  absl::Status AddTags(const Caller&, const pb::AddTagsRequest&, pb::MultiCloudImage*);
  absl::Status RemoveTags(const Caller&, const pb::RemoveTagsRequest&, pb::MultiCloudImage*);

  // ResolveImage's answer serialized (gRPC's raw method), as GetMultiCloudImageWire.
  absl::Status ResolveImageWire(const Caller&, const pb::ResolveImageRequest&, Wire*);
  // The answer when the resolve cache has it (or the request is bad), else nullopt.
  std::optional<absl::Status> ResolveImageWireCached(const Caller&, const pb::ResolveImageRequest&,
                                                     Wire*);
  absl::Status ValidateMultiCloudImage(const Caller&, const pb::ValidateMultiCloudImageRequest&,
                                       pb::ValidateMultiCloudImageResponse*);

  // Finishes sagas left DELETING by a crash or a peer outage. Returns how many were settled.
  int RecoverDeletions();
  // Re-reads, a thousand to a query, the cached ResolveImage and GetMultiCloudImage HEAD answers
  // that expire within `ahead` and were read since they were cached, and caches them again with
  // a new lifetime: answers in use are refreshed off the request path (run every second, with
  // `ahead` above that), so a launch is not the one that waits for the read. Returns how many
  // were read.
  int RefreshDueHeads(absl::Duration ahead = absl::Seconds(2));
  // Another replica changed an MCI (from MCI_EVENTS).
  void OnRemoteEvent(const mci::events::v1::MultiCloudImageEvent& event);

 private:
  struct MciRow;
  struct InfoEdit;
  using Event = mci::events::v1::MultiCloudImageEvent;

  absl::StatusOr<MciName> ReadableMci(const Caller& caller, absl::string_view name,
                                      bool allow_revision) const;
  absl::Status LoadMci(pqxx::transaction_base& txn, const MciName& name, bool for_update,
                       MciRow* row);
  // LoadMci's row from a lock_mci or get_mci result.
  absl::Status ParseLoadedMci(const pqxx::result& r, const MciName& name, MciRow* row);
  absl::Status EditableHead(const MciRow& row, const MciName& name);
  // `row`, when given, gets the MCI's row as read.
  absl::Status ReadMci(pqxx::transaction_base& txn, const MciName& name, bool with_settings,
                       pb::MultiCloudImage* out, MciRow* row = nullptr);
  // ReadMci's answer from read_mci's result.
  absl::Status ParseReadMci(const pqxx::result& r, const MciName& name, bool with_settings,
                            pb::MultiCloudImage* out, MciRow* row = nullptr);
  // The same from one row of read_mci or read_mci_heads.
  absl::Status ParseReadMciRow(const pqxx::row& f, const MciName& name, bool with_settings,
                               pb::MultiCloudImage* out, MciRow* row = nullptr);
  absl::Status ReadMciByRequestId(pqxx::transaction_base& txn, const std::string& account,
                                  const std::string& request_id, pb::MultiCloudImage* out);
  // The first round trip of a create or clone (Pool::TransactInline): BEGIN, `reads` (their
  // results go to `results`, in order), the new name's check (`name_taken`) and, with a
  // request_id, its lookup. True when the request_id names the first attempt's MCI: `out` is
  // then its answer and the transaction committed.
  bool BeginCreate(pqxx::nontransaction& txn, const MciName& name, const std::string& request_id,
                   std::vector<std::string> reads, pb::MultiCloudImage* out,
                   std::vector<pqxx::result>* results, bool* name_taken);
  // The end of every create-like transaction (create, clone, import): runs `before` (a statement
  // whose result is not needed, or none), records the request_id, appends the CREATED event and
  // reads the new MCI back; all but the event's insert in one round trip (db::Together).
  // With `commit` (in Pool::TransactInline), the event's insert carries the COMMIT.
  absl::Status FinishCreate(pqxx::transaction_base& txn, const MciName& name, int64_t id,
                            const std::string& request_id, pb::MultiCloudImage* out,
                            bool commit = false, const std::string& before = "");
  // The event's outbox row.
  void InsertEvent(pqxx::transaction_base& txn, const Event& event);
  // The event's outbox row and COMMIT in one round trip, after the statements in `before`.
  void InsertEventAndCommit(pqxx::transaction_base& txn, const Event& event,
                            absl::string_view before = "");
  // True (with `out` set) when `status` is a lost request_id race whose winner can be answered.
  bool FirstResultOfRequest(const absl::Status& status, const std::string& account,
                            const std::string& request_id, pb::MultiCloudImage* out);
  // Bumps the MCI's event sequence (and HEAD version when `head_changed`) and appends the event.
  void AppendEvent(pqxx::transaction_base& txn, const MciRow& row, Event::Type type,
                   int64_t revision, bool head_changed);
  // With the row already bumped by a statement that returned MCI_BUMP_RETURNING's columns.
  void AppendEvent(pqxx::transaction_base& txn, const MciRow& row, Event::Type type,
                   int64_t revision, const pqxx::result& bumped);
  // What an event carries of its bump: the MCI's new sequence, HEAD's clouds (JSON) and the
  // revisions' clouds (MCI_BUMP_RETURNING's "1:a,b;2:a").
  struct Bump {
    int64_t sequence = 0;
    std::string head_clouds_json;
    std::string revisions;
  };
  static Bump Bumped(const pqxx::result& bumped);  // from MCI_BUMP_RETURNING's columns
  Event BuildEvent(const MciRow& row, Event::Type type, int64_t revision, const Bump& bump);
  // An edit of HEAD's display name, description or tags in two round trips, for
  // Pool::TransactInline: BeginInfoEdit sends BEGIN, the row lock and the read of what the edit
  // needs; the caller checks and changes edit->row; CommitInfoEdit sends the update, the event
  // and COMMIT, and answers as ReadMci would after it.
  absl::Status BeginInfoEdit(pqxx::transaction_base& txn, const MciName& name, InfoEdit* edit);
  void CommitInfoEdit(pqxx::transaction_base& txn, const MciName& name, InfoEdit* edit,
                      Event::Type type, pb::MultiCloudImage* out);
  // The reads CheckSetting makes (as db::Execute statements), to send ahead of it in one round
  // trip; the names that do not parse are left out (CheckSetting refuses them itself).
  std::vector<std::string> SettingReads(pqxx::transaction_base& txn, const std::string& account,
                                        const std::string& cloud_id,
                                        const pb::MultiCloudImageSetting& s);
  // With `prefetched` (SettingReads' statements and their results), the reads found there are
  // not made again.
  absl::Status CheckSetting(pqxx::transaction_base& txn, const std::string& account,
                            const std::string& cloud_id, const pb::MultiCloudImageSetting& s,
                            const std::map<std::string, pqxx::result>* prefetched = nullptr);
  void Committed(const MciName& name);
  // What a cache miss needs for the read and its Put.
  struct CacheMiss {
    MciName name;
    std::string cloud;  // ResolveImage only
    uint64_t generation = 0;
  };
  // Parse the request and answer it from the cache: the answer (or the request's error), or
  // nullopt on a miss with *miss set.
  std::optional<absl::Status> LookUpMci(const Caller& caller,
                                        const pb::GetMultiCloudImageRequest& req,
                                        std::shared_ptr<const MciCache::Entry>* out,
                                        CacheMiss* miss);
  // LookUpMci, then on a miss the read and the Put.
  absl::Status GetMci(const Caller& caller, const pb::GetMultiCloudImageRequest& req,
                      std::shared_ptr<const MciCache::Entry>* out);
  std::optional<absl::Status> LookUpResolve(const Caller& caller,
                                            const pb::ResolveImageRequest& req,
                                            std::shared_ptr<const ResolveCache::Answer>* out,
                                            CacheMiss* miss);
  // LookUpResolve, then on a miss the read and the Put; `*out` is set when the answer is OK.
  absl::Status Resolve(const Caller& caller, const pb::ResolveImageRequest& req,
                       std::shared_ptr<const ResolveCache::Answer>* out);
  // RefreshDueHeads' two halves: ResolveImage's answers, GetMultiCloudImage's.
  int RefreshDueResolves(absl::Duration ahead);
  int RefreshDueMcis(absl::Duration ahead);
  absl::Status FinishDeletion(const MciName& name, const std::string& deletion_id,
                              std::vector<std::string>* usages);

  db::Pool* pool_;
  DeletionPeer* deletion_peer_;
  CatalogOptions options_;
  ResolveCache cache_;
  MciCache mcis_cache_;
  std::function<void()> on_events_;
};

}  // namespace mci::catalog
