// catalog-service: wiring only.
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "libs/common/auth.h"
#include "libs/common/bootstrap.h"
#include "libs/common/config.h"
#include "libs/common/db.h"
#include "libs/common/log.h"
#include "libs/common/nats.h"
#include "libs/common/periodic.h"
#include "libs/common/server.h"
#include "services/catalog/catalog.h"
#include "services/catalog/catalog_service.h"
#include "services/catalog/outbox_relay.h"

namespace mci::catalog {
std::vector<db::Migration> Migrations();
}

namespace {

int Fail(const std::string& message) {
  mci::log::Error(message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  mci::BlockTerminationSignals();
  mci::log::SetService("catalog");
  auto config = mci::Config::Parse(argc, argv);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  auto settings = mci::BootstrapService(*config, "127.0.0.1:50051", "127.0.0.1:9091",
                                        mci::catalog::Migrations());
  if (!settings.ok()) return Fail(settings.status().ToString());
  const std::string& database_url = settings->database_url;
  mci::db::Pool pool(database_url, settings->db_pool_size, &mci::catalog::Catalog::Prepare);

  auto nats =
      mci::nats::Client::Connect(settings->nats_url, "catalog-service", settings->nats_ca_file);
  if (!nats.ok()) return Fail(nats.status().ToString());

  mci::auth::Authenticator authenticator(settings->jwt_secret);
  mci::catalog::GrpcDeletionPeer peer(
      grpc::CreateChannel(config->String("templates-address", "127.0.0.1:50053"),
                          grpc::InsecureChannelCredentials()),
      authenticator.ServiceToken("catalog-service"));
  mci::catalog::CatalogOptions options;
  options.fault_injection = config->String("fault-injection", "");
  auto head_ttl_ms = config->Int("head-cache-ttl-ms", 10000);
  if (!head_ttl_ms.ok()) return Fail(std::string(head_ttl_ms.status().message()));
  if (*head_ttl_ms < 3000) {
    // An answer lives half of it to all of it, and the refresh runs every second.
    return Fail("--head-cache-ttl-ms must be at least 3000.");
  }
  options.head_ttl = absl::Milliseconds(*head_ttl_ms);
  mci::catalog::Catalog catalog(&pool, &peer, options);

  std::string inventory_file = config->String("inventory-file", "deploy/inventory.json");
  if (!inventory_file.empty()) {
    std::ifstream in(inventory_file);
    if (!in) return Fail(absl::StrCat("Cannot read the inventory file ", inventory_file, "."));
    std::stringstream json;
    json << in.rdbuf();
    if (auto s = catalog.SeedInventory(json.str()); !s.ok()) return Fail(s.ToString());
  }

  mci::catalog::OutboxRelay relay(database_url, nats->get());
  catalog.set_on_events([&relay] { relay.Notify(); });
  relay.Start();

  // Other replicas' writes invalidate this replica's resolve cache.
  if (auto s = (*nats)->Subscribe("mci.v1.events.>",
                                  [&catalog](absl::string_view data) {
                                    mci::events::v1::MultiCloudImageEvent event;
                                    if (event.ParseFromArray(data.data(),
                                                             static_cast<int>(data.size()))) {
                                      catalog.OnRemoteEvent(event);
                                    }
                                  });
      !s.ok()) {
    // Not fatal: without it, other replicas' writes reach this cache only by its expiry.
    mci::log::Warn("cannot subscribe to MCI events", {{"error", s.ToString()}});
  }

  mci::Periodic recovery(std::chrono::seconds(2), [&catalog] { catalog.RecoverDeletions(); });
  // HEAD answers in use are read again before they expire, a thousand to a query, rather than
  // one by one by the launches that find them expired.
  mci::Periodic refresh(std::chrono::seconds(1), [&catalog] { catalog.RefreshDueHeads(); });

  mci::catalog::CatalogService service(&catalog, &authenticator);
  mci::ServerOptions server_options;
  server_options.service_name = "mci.catalog.v1.CatalogService";
  server_options.grpc_address = settings->grpc_address;
  server_options.http_address = settings->http_address;
  mci::nats::Client* nats_client = nats->get();
  server_options.ready = [&pool, nats_client] { return nats_client->connected() && pool.Ping(); };
  server_options.on_shutdown = [&] {
    recovery.Stop();
    refresh.Stop();
    relay.Stop();
  };
  mci::ServiceHost host(server_options);
  host.AddService(&service);
  if (auto s = host.Start(); !s.ok()) return Fail(s.ToString());
  host.Wait();
  (*nats)->Unsubscribe();
  mci::log::Info("stopped");
  return 0;
}
