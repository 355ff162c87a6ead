// template-reference-service: ServerTemplates, their MCI references, the replica of MCI state and
// the template side of the MCI deletion saga. Wiring only.
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "libs/common/auth.h"
#include "libs/common/bootstrap.h"
#include "libs/common/config.h"
#include "libs/common/db.h"
#include "libs/common/log.h"
#include "libs/common/nats.h"
#include "libs/common/periodic.h"
#include "libs/common/server.h"
#include "mci/events/v1/events.pb.h"
#include "services/templates/catalog_client.h"
#include "services/templates/event_consumer.h"
#include "services/templates/pg_repository.h"
#include "services/templates/template_logic.h"
#include "services/templates/templates_service.h"

namespace mci::templates {
std::vector<mci::db::Migration> Migrations();
}  // namespace mci::templates

namespace {

// Calls to the catalog made on a caller's behalf.
constexpr absl::Duration kCatalogDeadline = absl::Seconds(5);

int Fail(absl::string_view what, const absl::Status& status) {
  mci::log::Error(what, {{"error", status.ToString()}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  mci::BlockTerminationSignals();
  mci::log::SetService("template-reference-service");
  auto config = mci::Config::Parse(argc, argv);
  if (!config.ok()) return Fail("bad arguments", config.status());
  auto settings = mci::BootstrapService(*config, "127.0.0.1:50053", "127.0.0.1:9093",
                                        mci::templates::Migrations());
  if (!settings.ok()) return Fail("cannot start", settings.status());
  mci::db::Pool pool(settings->database_url, settings->db_pool_size,
                     &mci::templates::PgRepository::Prepare);
  auto nats = mci::nats::Client::Connect(settings->nats_url, "template-reference-service",
                                         settings->nats_ca_file);
  if (!nats.ok()) return Fail("cannot set up NATS", nats.status());

  mci::templates::PgRepository repository(&pool);
  mci::templates::GrpcCatalogClient catalog(
      grpc::CreateChannel(config->String("catalog-address", "127.0.0.1:50051"),
                          grpc::InsecureChannelCredentials()),
      kCatalogDeadline);
  mci::auth::Authenticator authenticator(settings->jwt_secret);
  mci::templates::LogicOptions logic_options;
  auto launch_ttl_ms = config->Int("launch-cache-ttl-ms", 10000);
  if (!launch_ttl_ms.ok()) return Fail("bad arguments", launch_ttl_ms.status());
  if (*launch_ttl_ms < 3000) {
    // An entry lives half of it to all of it, and the refresh runs every second.
    return Fail("bad arguments",
                absl::InvalidArgumentError("--launch-cache-ttl-ms must be at least 3000."));
  }
  logic_options.launch_cache_ttl = absl::Milliseconds(*launch_ttl_ms);
  logic_options.service_token = authenticator.ServiceToken("template-reference-service");
  mci::templates::ServerTemplateLogic logic(&repository, &catalog, logic_options);
  mci::templates::TemplatesService service(&logic, &authenticator);
  // The launch cache: announce this replica's template changes, hear the others' and the MCI
  // events (see services/templates/launch_cache.h).
  mci::nats::Client* announcer = nats->get();
  logic.set_on_template_changed([announcer](const std::string& account, const std::string& id) {
    if (auto s = announcer->Announce(mci::templates::kTemplateChangesSubject,
                                     absl::StrCat(account, "/", id));
        !s.ok()) {
      mci::log::Warn("cannot announce a template change; other replicas' launch caches expire it",
                     {{"template", absl::StrCat(account, "/", id)}, {"error", s.ToString()}});
    }
  });
  mci::templates::LaunchCache& launch_cache = logic.launch_cache();
  absl::Status templates_heard = announcer->Subscribe(
      mci::templates::kTemplateChangesSubject, [&launch_cache](absl::string_view data) {
        std::pair<std::string, std::string> parts = absl::StrSplit(data, absl::MaxSplits('/', 1));
        launch_cache.TemplateChanged(parts.first, parts.second);
      });
  absl::Status mcis_heard =
      announcer->Subscribe("mci.v1.events.>", [&launch_cache](absl::string_view data) {
        mci::events::v1::MultiCloudImageEvent event;
        if (event.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
          launch_cache.MciChanged(event.multi_cloud_image(), event.sequence());
        }
      });
  for (const absl::Status& s : {templates_heard, mcis_heard}) {
    // Not fatal: without it, other replicas' changes reach the launch cache by its expiry.
    if (!s.ok()) mci::log::Warn("cannot subscribe for the launch cache", {{"error", s.ToString()}});
  }
  mci::templates::EventConsumer consumer(nats->get(), &repository);
  // Launches in steady use find their template and answer cached: the entries they read are
  // read again before they expire, in the background.
  mci::Periodic refresh(std::chrono::seconds(1), [&logic] { logic.RefreshDueLaunches(); });

  mci::ServerOptions options;
  options.service_name = "mci.templates.v1.ServerTemplateService";
  options.grpc_address = settings->grpc_address;
  options.http_address = settings->http_address;
  mci::nats::Client* nats_client = nats->get();
  options.ready = [&pool, nats_client] { return nats_client->connected() && pool.Ping(); };
  options.on_shutdown = [&consumer] { consumer.Stop(); };
  mci::ServiceHost host(options);
  host.AddService(&service);
  if (auto s = host.Start(); !s.ok()) return Fail("cannot start", s);
  consumer.Start();
  host.Wait();
  consumer.Stop();
  announcer->Unsubscribe();
  return 0;
}
