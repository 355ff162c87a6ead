// ServerTemplateLogic over an in-memory repository and a scripted catalog: the replica-miss path
// (read-your-writes), account isolation, launch order, the commit rule and the saga identity.

#include "services/templates/template_logic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace mci::templates {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace catalog = mci::catalog::v1;

constexpr char kEast[] = "clouds/aws-us-east-1";
constexpr char kWest[] = "clouds/aws-us-west-1";
constexpr char kGoogle[] = "clouds/google-us-central1";
constexpr char kBase[] = "accounts/acme/multiCloudImages/base";
constexpr char kOther[] = "accounts/acme/multiCloudImages/other";
constexpr char kTemplate[] = "accounts/acme/serverTemplates/web";

absl::Status Unimplemented() { return absl::UnimplementedError("not in the fake"); }

class FakeRepository : public Repository {
 public:
  absl::StatusOr<TemplateRecord> CreateTemplate(const NewTemplate&) override {
    return Unimplemented();
  }
  absl::StatusOr<TemplateRecord> GetTemplate(const std::string& account, const std::string& id,
                                             int64_t revision) override {
    ++template_reads;
    auto it = templates.find({absl::StrCat(account, "/", id), revision});
    if (it == templates.end()) return absl::NotFoundError("no such template");
    return it->second;
  }
  absl::StatusOr<std::vector<TemplateRecord>> GetTemplates(
      const std::vector<TemplateKey>& keys) override {
    ++template_reads;
    if (!available) return absl::UnavailableError("database down");
    std::vector<TemplateRecord> out;
    for (const TemplateKey& k : keys) {
      auto it = templates.find({absl::StrCat(k.account, "/", k.template_id), k.revision});
      if (it != templates.end()) out.push_back(it->second);
    }
    return out;
  }
  absl::StatusOr<std::vector<TemplateRecord>> ListTemplates(const std::string&, int64_t,
                                                            int) override {
    return Unimplemented();
  }
  absl::StatusOr<TemplateRecord> UpdateTemplate(const std::string&, const std::string&,
                                                const TemplateUpdate&) override {
    return Unimplemented();
  }
  absl::Status DeleteTemplate(const std::string&, const std::string&, int64_t) override {
    return Unimplemented();
  }
  absl::StatusOr<TemplateRecord> CommitTemplate(const std::string& account, const std::string& id,
                                                int64_t, const std::string& message,
                                                const std::map<std::string, int64_t>& p) override {
    pins = p;
    TemplateRecord t = templates[{absl::StrCat(account, "/", id), 0}];
    t.revision = 1;
    t.commit_message = message;
    for (auto& r : t.references) {
      if (r.mci_revision == 0) r.mci_revision = p.at(r.mci);
    }
    return t;
  }
  absl::StatusOr<TemplateRecord> AddReference(const std::string& account, const std::string& id,
                                              const Reference& ref, bool) override {
    TemplateRecord& t = templates[{absl::StrCat(account, "/", id), 0}];
    t.references.push_back(ref);
    return t;
  }
  absl::StatusOr<TemplateRecord> RemoveReference(const std::string&, const std::string&,
                                                 const Reference&) override {
    return Unimplemented();
  }
  absl::StatusOr<TemplateRecord> SetDefaultReference(const std::string&, const std::string&,
                                                     const Reference&) override {
    return Unimplemented();
  }
  absl::StatusOr<std::vector<Usage>> ListUsages(const std::string&, std::optional<int64_t>,
                                                const UsageKey&, int) override {
    return Unimplemented();
  }
  absl::StatusOr<std::map<std::string, ReplicaRecord>> GetReplicas(
      const std::vector<std::string>& mcis) override {
    std::map<std::string, ReplicaRecord> out;
    for (const auto& m : mcis) {
      if (auto it = replicas.find(m); it != replicas.end()) out[m] = it->second;
    }
    return out;
  }
  absl::Status RecordCatalogState(const CatalogState& state, std::optional<int64_t>) override {
    ReplicaRecord& r = replicas[state.mci];
    r.mci = state.mci;
    r.state = ReplicaState::kActive;
    if (state.revision == 0) {
      r.head_clouds = state.clouds;
    } else {
      r.revision_clouds[state.revision] = state.clouds;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<bool> ApplyEvent(const mci::events::v1::MultiCloudImageEvent&) override {
    return Unimplemented();
  }
  absl::StatusOr<bool> DeletionFenced(const std::string& mci) override {
    return fenced.count(mci) > 0;
  }
  absl::StatusOr<Reservation> ReserveDeletion(const std::string& mci,
                                              const std::string& deletion_id) override {
    reserved.push_back(absl::StrCat(mci, "#", deletion_id));
    return Reservation{true, {}};
  }
  absl::Status ReleaseDeletion(const std::string&, const std::string&, bool) override {
    return absl::OkStatus();
  }
  bool Healthy() override { return true; }

  void AddTemplate(std::vector<Reference> refs, int64_t revision = 0,
                   const std::string& id = "web") {
    TemplateRecord t;
    t.account = "acme";
    t.template_id = id;
    t.display_name = "Web";
    t.revision = revision;
    t.version = 1;
    int position = 0;
    for (auto& r : refs) r.position = ++position;
    t.references = std::move(refs);
    templates[{"acme/" + id, revision}] = t;
  }
  void AddReplica(const std::string& mci, std::vector<std::string> head_clouds,
                  std::map<int64_t, std::vector<std::string>> revisions = {}) {
    ReplicaRecord r;
    r.mci = mci;
    r.account = "acme";
    r.head_clouds = std::move(head_clouds);
    r.revision_clouds = std::move(revisions);
    replicas[mci] = r;
  }

  std::map<std::pair<std::string, int64_t>, TemplateRecord> templates;
  int template_reads = 0;
  bool available = true;  // GetTemplates only
  std::map<std::string, ReplicaRecord> replicas;
  std::set<std::string> fenced;
  std::map<std::string, int64_t> pins;
  std::vector<std::string> reserved;
};

class FakeCatalog : public CatalogClient {
 public:
  absl::StatusOr<catalog::MultiCloudImage> GetMultiCloudImage(const std::string& token,
                                                              const std::string& name) override {
    calls.push_back(absl::StrCat("Get ", name));
    tokens.push_back(token);
    if (!available) return absl::UnavailableError("catalog down");
    auto it = mcis.find(name);
    if (it == mcis.end()) return absl::NotFoundError("no such MCI");
    return it->second;
  }
  absl::StatusOr<catalog::MultiCloudImage> CommitMultiCloudImage(const std::string&,
                                                                 const std::string& name,
                                                                 const std::string&) override {
    calls.push_back(absl::StrCat("Commit ", name));
    catalog::MultiCloudImage m;
    m.set_name(absl::StrCat(name, "@4"));
    m.set_revision(4);
    m.add_clouds(kEast);
    return m;
  }
  absl::StatusOr<catalog::ResolveImageResponse> ResolveImage(const std::string& token,
                                                             const std::string& name,
                                                             const std::string& cloud) override {
    calls.push_back(absl::StrCat("Resolve ", name, " ", cloud));
    tokens.push_back(token);
    if (!available) return absl::UnavailableError("catalog down");
    auto it = coverage.find(name);
    if (it == coverage.end() || it->second.count(cloud) == 0) {
      return absl::FailedPreconditionError("no setting for that cloud");
    }
    catalog::ResolveImageResponse r;
    r.set_multi_cloud_image(name);
    r.mutable_setting()->set_cloud(cloud);
    r.set_sequence(sequence);
    return r;
  }

  std::vector<absl::StatusOr<catalog::ResolveImageResponse>> ResolveImages(
      const std::string& token, const std::vector<ResolveCall>& calls, size_t in_flight) override {
    batches.push_back(calls.size());
    in_flights.push_back(in_flight);
    return CatalogClient::ResolveImages(token, calls, in_flight);
  }

  void AddMci(const std::string& name, std::vector<std::string> clouds,
              catalog::MultiCloudImage::State state = catalog::MultiCloudImage::ACTIVE) {
    catalog::MultiCloudImage m;
    m.set_name(name);
    m.set_state(state);
    for (const auto& c : clouds) m.add_clouds(c);
    mcis[name] = m;
    coverage[name] = {clouds.begin(), clouds.end()};
  }

  bool available = true;
  // The MCI sequence the catalog's ResolveImage answers reflect.
  int64_t sequence = 0;
  std::map<std::string, catalog::MultiCloudImage> mcis;
  std::map<std::string, std::set<std::string>> coverage;
  std::vector<std::string> calls;
  std::vector<std::string> tokens;
  // The sizes of the ResolveImages rounds, and the calls each let overlap.
  std::vector<size_t> batches;
  std::vector<size_t> in_flights;
};

class TemplateLogicTest : public ::testing::Test {
 protected:
  TemplateLogicTest() : logic_(&repository_, &catalog_, Options()) {
    designer_.subject = "user@acme";
    designer_.account = "acme";
    designer_.roles = {auth::Role::kDesigner};
    designer_.token = "designer-token";
    catalog_service_.subject = "catalog-service";
    catalog_service_.roles = {auth::Role::kService};
  }

  absl::Status Add(const std::string& mci, v1::ServerTemplate* out = nullptr) {
    v1::AddMultiCloudImageRequest req;
    req.set_server_template(kTemplate);
    req.set_multi_cloud_image(mci);
    v1::ServerTemplate t;
    return logic_.AddMultiCloudImage(designer_, req, out != nullptr ? out : &t);
  }
  absl::StatusOr<v1::ResolveLaunchResponse> Resolve(const std::string& tmpl,
                                                    const std::string& cloud) {
    v1::ResolveLaunchRequest req;
    req.set_server_template(tmpl);
    req.set_cloud(cloud);
    v1::ResolveLaunchResponse resp;
    absl::Status s = logic_.ResolveLaunch(designer_, req, &resp);
    if (!s.ok()) return s;
    return resp;
  }
  // What the in-memory fast path answers (nullopt: it needs the slow path).
  std::optional<absl::Status> Cached(const std::string& tmpl, const std::string& cloud,
                                     const auth::Caller* caller = nullptr) {
    v1::ResolveLaunchRequest req;
    req.set_server_template(tmpl);
    req.set_cloud(cloud);
    ServerTemplateLogic::Wire wire;
    return logic_.ResolveLaunchWireCached(caller != nullptr ? *caller : designer_, req, &wire);
  }

  static LogicOptions Options() {
    LogicOptions options;
    options.service_token = "templates-service-token";
    return options;
  }

  FakeRepository repository_;
  FakeCatalog catalog_;
  ServerTemplateLogic logic_;
  auth::Caller designer_;
  auth::Caller catalog_service_;
};

TEST_F(TemplateLogicTest, AnotherAccountsMciIsNotFoundWithoutAskingTheCatalog) {
  repository_.AddTemplate({});
  absl::Status s = Add("accounts/rival/multiCloudImages/base");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(catalog_.calls.empty());
}

TEST_F(TemplateLogicTest, AReplicaMissAsksTheCatalogWithTheCallersToken) {
  repository_.AddTemplate({});
  catalog_.AddMci(kBase, {kEast});
  v1::ServerTemplate t;
  ASSERT_TRUE(Add(kBase, &t).ok());
  EXPECT_THAT(catalog_.calls, ElementsAre(absl::StrCat("Get ", kBase)));
  EXPECT_THAT(catalog_.tokens, ElementsAre("designer-token"));
  ASSERT_EQ(t.multi_cloud_images_size(), 1);
  EXPECT_THAT(t.multi_cloud_images(0).clouds(), ElementsAre(kEast));
  // Known now: no second call.
  ASSERT_TRUE(Add(kBase).ok());
  EXPECT_EQ(catalog_.calls.size(), 1u);
}

TEST_F(TemplateLogicTest, RevisionsUnknownToTheReplicaAreLookedUp) {
  repository_.AddTemplate({});
  repository_.AddReplica(kBase, {kEast});
  catalog_.AddMci(absl::StrCat(kBase, "@2"), {kWest});
  ASSERT_TRUE(Add(absl::StrCat(kBase, "@2")).ok());
  EXPECT_THAT(catalog_.calls, ElementsAre(absl::StrCat("Get ", kBase, "@2")));
  EXPECT_EQ(Add(absl::StrCat(kBase, "@3")).code(), absl::StatusCode::kNotFound);
}

TEST_F(TemplateLogicTest, UnknownDeletingAndFencedMcis) {
  repository_.AddTemplate({});
  EXPECT_EQ(Add(kBase).code(), absl::StatusCode::kNotFound);
  catalog_.AddMci(kOther, {kEast}, catalog::MultiCloudImage::DELETING);
  EXPECT_EQ(Add(kOther).code(), absl::StatusCode::kFailedPrecondition);
  // A standing fence answers by itself, even with the catalog down.
  repository_.fenced.insert(kBase);
  catalog_.available = false;
  absl::Status s = Add(kBase);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("being deleted"));
}

TEST_F(TemplateLogicTest, ResolveLaunchTriesTheDefaultFirstThenTheOthersInOrder) {
  repository_.AddTemplate({{kOther, 0, true}, {kBase, 0, false}});
  repository_.AddReplica(kOther, {kEast});
  repository_.AddReplica(kBase, {kEast, kWest});
  catalog_.AddMci(kOther, {kEast});
  catalog_.AddMci(kBase, {kEast, kWest});
  auto east = Resolve(kTemplate, kEast);
  ASSERT_TRUE(east.ok()) << east.status();
  EXPECT_EQ(east->multi_cloud_image(), kOther);
  auto west = Resolve(kTemplate, kWest);
  ASSERT_TRUE(west.ok());
  EXPECT_EQ(west->multi_cloud_image(), kBase);
  auto google = Resolve(kTemplate, kGoogle);
  EXPECT_EQ(google.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(google.status().message()), HasSubstr(absl::StrCat(kEast, ", ", kWest)));
  EXPECT_EQ(Resolve(kTemplate, "east").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TemplateLogicTest, ResolveLaunchAsksTheCatalogWhenTheReplicaLagsBehindAHead) {
  repository_.AddTemplate({{kBase, 0, true}});
  repository_.AddReplica(kBase, {kEast});
  catalog_.AddMci(kBase, {kEast, kGoogle});
  auto google = Resolve(kTemplate, kGoogle);
  ASSERT_TRUE(google.ok()) << google.status();
  EXPECT_EQ(google->multi_cloud_image(), kBase);
}

TEST_F(TemplateLogicTest, ResolvedRevisionsAreCached) {
  repository_.AddTemplate({{kBase, 2, true}});
  repository_.AddReplica(kBase, {}, {{2, {kEast}}});
  catalog_.AddMci(absl::StrCat(kBase, "@2"), {kEast});
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  EXPECT_EQ(catalog_.calls.size(), 1u);
}

TEST_F(TemplateLogicTest, ALaunchIsAnsweredFromMemoryOnceResolved) {
  repository_.AddTemplate({{kOther, 0, true}, {kBase, 0, false}});
  catalog_.AddMci(kOther, {kEast});
  catalog_.AddMci(kBase, {kEast, kWest});
  EXPECT_FALSE(Cached(kTemplate, kWest).has_value());
  ASSERT_TRUE(Resolve(kTemplate, kWest).ok());
  // The default's HEAD does not cover west: that answer is not cached, so the fast path steps
  // aside (HEAD refusals carry no sequence) and the slow path asks again.
  EXPECT_FALSE(Cached(kTemplate, kWest).has_value());
  auto east = Cached(kTemplate, kEast);
  EXPECT_FALSE(east.has_value());
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  size_t calls = catalog_.calls.size();
  east = Cached(kTemplate, kEast);
  ASSERT_TRUE(east.has_value());
  EXPECT_TRUE(east->ok());
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  EXPECT_EQ(catalog_.calls.size(), calls);
  // The raw method's answer: the cached bytes of the same response.
  v1::ResolveLaunchRequest req;
  req.set_server_template(kTemplate);
  req.set_cloud(kEast);
  ServerTemplateLogic::Wire wire;
  auto raw = logic_.ResolveLaunchWireCached(designer_, req, &wire);
  ASSERT_TRUE(raw.has_value() && raw->ok());
  v1::ResolveLaunchResponse from_wire;
  ASSERT_TRUE(from_wire.ParseFromString(*wire));
  EXPECT_EQ(from_wire.multi_cloud_image(), kOther);
  EXPECT_EQ(from_wire.image().setting().cloud(), kEast);
  // Another account's caller is not answered from this account's cached template.
  auth::Caller rival = designer_;
  rival.account = "rival";
  EXPECT_FALSE(Cached(kTemplate, kEast, &rival).has_value());
}

TEST_F(TemplateLogicTest, AnMciEventDropsItsHeadAnswersAndStaleAnswersAreNotCached) {
  repository_.AddTemplate({{kBase, 0, true}});
  catalog_.AddMci(kBase, {kEast});
  catalog_.sequence = 4;
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  ASSERT_TRUE(Cached(kTemplate, kEast).has_value());
  logic_.launch_cache().MciChanged(kBase, 5);
  EXPECT_FALSE(Cached(kTemplate, kEast).has_value());
  // A catalog replica that has not applied sequence 5 yet answers with 4: served, not cached.
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  EXPECT_FALSE(Cached(kTemplate, kEast).has_value());
  catalog_.sequence = 5;
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  EXPECT_TRUE(Cached(kTemplate, kEast).has_value());
}

// Entries in use are read again ahead of their expiry (an hour ahead here: every one is due),
// the catalog asked with the service's own token; entries nobody read since they were cached are
// left to expire; a catalog that fails stops the refresh until the next one.
TEST_F(TemplateLogicTest, LaunchesInUseAreRefreshedAheadOfTheirExpiry) {
  repository_.AddTemplate({{kBase, 0, true}, {kOther, 0, false}});
  catalog_.AddMci(kBase, {kEast, kWest});
  catalog_.AddMci(kOther, {kEast});
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  ASSERT_TRUE(Resolve(kTemplate, kWest).ok());
  // The second launch read the template from the cache; no answer was read from it yet.
  const size_t calls = catalog_.calls.size();
  const int reads = repository_.template_reads;
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 1);
  EXPECT_EQ(repository_.template_reads, reads + 1);
  EXPECT_EQ(catalog_.calls.size(), calls);
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 0);  // refreshed, not read since

  ASSERT_TRUE(Cached(kTemplate, kEast).has_value());
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 2);  // the template and east's answer
  EXPECT_EQ(repository_.template_reads, reads + 2);
  ASSERT_EQ(catalog_.calls.size(), calls + 1);
  EXPECT_EQ(catalog_.calls.back(), absl::StrCat("Resolve ", kBase, " ", kEast));
  EXPECT_EQ(catalog_.tokens.back(), "templates-service-token");
  // Refreshed entries stay cached, and are due again only once read again.
  EXPECT_TRUE(Cached(kTemplate, kEast).has_value());
  ASSERT_TRUE(Cached(kTemplate, kWest).has_value());
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 3);

  // The catalog down: the round of answers that failed ends the refresh (the entries expire as
  // without it); the two answers were asked together.
  ASSERT_TRUE(Cached(kTemplate, kEast).has_value());
  ASSERT_TRUE(Cached(kTemplate, kWest).has_value());
  catalog_.available = false;
  const size_t before = catalog_.calls.size();
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 1);  // the template only
  EXPECT_EQ(catalog_.calls.size(), before + 2);
  EXPECT_EQ(catalog_.batches.back(), 2u);
}

// More answers due than a round holds: rounds of 256, each asked together; a failing round ends
// the refresh, the rounds after it not asked.
TEST_F(TemplateLogicTest, DueAnswersAreAskedInRoundsUntilOneFails) {
  std::vector<std::string> clouds;
  for (int i = 0; i < 600; ++i) clouds.push_back(absl::StrCat("clouds/c", i));
  repository_.AddTemplate({{kBase, 0, true}});
  catalog_.AddMci(kBase, clouds);
  for (const std::string& cloud : clouds) ASSERT_TRUE(Resolve(kTemplate, cloud).ok()) << cloud;
  for (const std::string& cloud : clouds) ASSERT_TRUE(Cached(kTemplate, cloud).has_value());
  catalog_.batches.clear();
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 1 + 600);
  EXPECT_EQ(catalog_.batches, (std::vector<size_t>{256, 256, 88}));
  EXPECT_EQ(catalog_.in_flights, (std::vector<size_t>{16, 16, 16}));

  for (const std::string& cloud : clouds) ASSERT_TRUE(Cached(kTemplate, cloud).has_value());
  catalog_.batches.clear();
  catalog_.available = false;
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 1);  // the template only
  EXPECT_EQ(catalog_.batches, (std::vector<size_t>{256}));
}

// The templates due are read together (HEADs and revisions in one repository read); one gone
// meanwhile is left to expire; a failed read ends the refresh.
TEST_F(TemplateLogicTest, DueTemplatesAreRefreshedInOneRead) {
  repository_.AddTemplate({{kBase, 0, true}});
  repository_.AddTemplate({{kBase, 3, true}}, 1);
  repository_.AddTemplate({{kOther, 0, true}}, 0, "api");
  catalog_.AddMci(kBase, {kEast});
  catalog_.AddMci(kOther, {kEast});
  catalog_.AddMci(absl::StrCat(kBase, "@3"), {kEast});
  for (const std::string tmpl : {"accounts/acme/serverTemplates/web",
                                 "accounts/acme/serverTemplates/web@1",
                                 "accounts/acme/serverTemplates/api"}) {
    ASSERT_TRUE(Resolve(tmpl, kEast).ok()) << tmpl;
    ASSERT_TRUE(Cached(tmpl, kEast).has_value()) << tmpl;  // the template read from the cache
  }
  repository_.templates.erase({"acme/api", 0});  // deleted, its announcement not here yet
  const int reads = repository_.template_reads;
  // The three templates in one read, and the three catalog answers read since cached (web@1's
  // is a revision's, which never expires: not due).
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 2 + 2);
  EXPECT_EQ(repository_.template_reads, reads + 1);
  // The refreshed ones serve launches; the gone one is still cached until it expires.
  EXPECT_TRUE(Cached("accounts/acme/serverTemplates/web", kEast).has_value());
  EXPECT_TRUE(Cached("accounts/acme/serverTemplates/web@1", kEast).has_value());
  EXPECT_TRUE(Cached("accounts/acme/serverTemplates/api", kEast).has_value());
  repository_.available = false;
  // The templates' read fails: none refreshed; the two HEAD answers read since still are.
  EXPECT_EQ(logic_.RefreshDueLaunches(absl::Hours(1)), 2);
  EXPECT_EQ(repository_.template_reads, reads + 2);
}

TEST_F(TemplateLogicTest, TemplateWritesDropItFromTheLaunchCacheAndAreAnnounced) {
  repository_.AddTemplate({{kBase, 0, true}});
  repository_.AddReplica(kBase, {kEast});
  catalog_.AddMci(kBase, {kEast});
  catalog_.AddMci(kOther, {kEast, kWest});
  std::vector<std::string> announced;
  logic_.set_on_template_changed([&](const std::string& account, const std::string& id) {
    announced.push_back(absl::StrCat(account, "/", id));
  });
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  ASSERT_TRUE(Cached(kTemplate, kEast).has_value());
  ASSERT_TRUE(Add(kOther).ok());
  EXPECT_THAT(announced, ElementsAre("acme/web"));
  EXPECT_FALSE(Cached(kTemplate, kEast).has_value());
  auto west = Resolve(kTemplate, kWest);  // the new reference is seen at once
  ASSERT_TRUE(west.ok()) << west.status();
  EXPECT_EQ(west->multi_cloud_image(), kOther);
  // Another replica's announcement drops it too.
  ASSERT_TRUE(Resolve(kTemplate, kEast).ok());
  ASSERT_TRUE(Cached(kTemplate, kEast).has_value());
  logic_.launch_cache().TemplateChanged("acme", "web");
  EXPECT_FALSE(Cached(kTemplate, kEast).has_value());
}

TEST_F(TemplateLogicTest, ARevisionThatLacksTheCloudIsRememberedToo) {
  repository_.AddTemplate({{kBase, 2, true}});
  repository_.AddReplica(kBase, {}, {{2, {kEast}}});
  catalog_.AddMci(absl::StrCat(kBase, "@2"), {kEast});
  EXPECT_EQ(Resolve(kTemplate, kWest).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Resolve(kTemplate, kWest).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(catalog_.calls.size(), 1u);
}

TEST_F(TemplateLogicTest, CommitRefusesHeadReferencesUnlessAskedToCommitThem) {
  repository_.AddTemplate({{kBase, 0, true}, {kOther, 3, false}});
  repository_.AddReplica(kBase, {kEast});
  v1::CommitServerTemplateRequest req;
  req.set_name(kTemplate);
  v1::ServerTemplate t;
  absl::Status s = logic_.CommitServerTemplate(designer_, req, &t);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr(kBase));
  EXPECT_TRUE(catalog_.calls.empty());

  req.set_commit_head_multi_cloud_images(true);
  ASSERT_TRUE(logic_.CommitServerTemplate(designer_, req, &t).ok());
  EXPECT_THAT(catalog_.calls, ElementsAre(absl::StrCat("Commit ", kBase)));
  EXPECT_EQ(repository_.pins, (std::map<std::string, int64_t>{{kBase, 4}}));
  EXPECT_EQ(t.name(), absl::StrCat(kTemplate, "@1"));
  EXPECT_EQ(t.multi_cloud_images(0).multi_cloud_image(), absl::StrCat(kBase, "@4"));
  EXPECT_THAT(t.multi_cloud_images(0).clouds(), ElementsAre(kEast));
}

TEST_F(TemplateLogicTest, OnlyTheCatalogIdentityReservesDeletions) {
  v1::ReserveMultiCloudImageDeletionRequest req;
  req.set_multi_cloud_image(kBase);
  req.set_deletion_id("del-1");
  v1::ReserveMultiCloudImageDeletionResponse resp;
  auth::Caller marketplace = catalog_service_;
  marketplace.subject = "marketplace-service";
  EXPECT_EQ(logic_.ReserveMultiCloudImageDeletion(marketplace, req, &resp).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(logic_.ReserveMultiCloudImageDeletion(designer_, req, &resp).code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(logic_.ReserveMultiCloudImageDeletion(catalog_service_, req, &resp).ok());
  EXPECT_TRUE(resp.reserved());
  req.set_multi_cloud_image(absl::StrCat(kBase, "@1"));
  EXPECT_EQ(logic_.ReserveMultiCloudImageDeletion(catalog_service_, req, &resp).code(),
            absl::StatusCode::kInvalidArgument);
  req.set_multi_cloud_image(kBase);
  req.set_deletion_id("");
  EXPECT_EQ(logic_.ReserveMultiCloudImageDeletion(catalog_service_, req, &resp).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(repository_.reserved, ElementsAre(absl::StrCat(kBase, "#del-1")));
}

TEST(LaunchOrderTest, DefaultFirstThenAsAddedAndCoveredClouds) {
  std::map<std::string, ReplicaRecord> replicas;
  replicas[kBase].head_clouds = {kEast, kWest};
  replicas[kBase].revision_clouds[1] = {kWest};
  replicas[kOther].head_clouds = {kWest};
  std::vector<Reference> refs = {{kBase, 1, false, 1}, {kOther, 0, true, 2}, {kBase, 0, false, 3}};
  auto ordered = LaunchOrder(refs);
  ASSERT_EQ(ordered.size(), 3u);
  EXPECT_EQ(ordered[0].mci, kOther);
  EXPECT_EQ(ordered[1].mci_revision, 1);
  EXPECT_EQ(ordered[2].mci_revision, 0);
  EXPECT_THAT(CoveredClouds(refs, replicas), ElementsAre(kEast, kWest));
}

}  // namespace
}  // namespace mci::templates
