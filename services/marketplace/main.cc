// marketplace-service: publications of MultiCloud Images, their sharing, imports and updates.
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/common/auth.h"
#include "libs/common/bootstrap.h"
#include "libs/common/config.h"
#include "libs/common/db.h"
#include "libs/common/log.h"
#include "libs/common/nats.h"
#include "libs/common/server.h"
#include "services/marketplace/catalog_client.h"
#include "services/marketplace/lineage_consumer.h"
#include "services/marketplace/marketplace.h"
#include "services/marketplace/marketplace_service.h"
#include "services/marketplace/migrations.h"
#include "services/marketplace/pg_repository.h"

namespace {

constexpr absl::Duration kCatalogDeadline = absl::Seconds(5);

int Fail(absl::string_view what, const absl::Status& status) {
  mci::log::Error(what, {{"error", status.ToString()}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  mci::BlockTerminationSignals();
  mci::log::SetService("marketplace-service");
  auto config = mci::Config::Parse(argc, argv);
  if (!config.ok()) return Fail("bad flags", config.status());
  auto settings = mci::BootstrapService(*config, "127.0.0.1:50052", "127.0.0.1:9092",
                                        mci::marketplace::Migrations());
  if (!settings.ok()) return Fail("cannot start", settings.status());
  mci::db::Pool pool(settings->database_url, settings->db_pool_size);
  auto nats =
      mci::nats::Client::Connect(settings->nats_url, "marketplace-service", settings->nats_ca_file);
  if (!nats.ok()) return Fail("cannot set up NATS", nats.status());

  mci::auth::Authenticator authenticator(settings->jwt_secret);
  auto catalog = mci::marketplace::NewGrpcCatalogClient(
      grpc::CreateChannel(config->String("catalog-address", "127.0.0.1:50051"),
                          grpc::InsecureChannelCredentials()),
      kCatalogDeadline);
  mci::marketplace::PgRepository repository(&pool);
  mci::marketplace::Marketplace marketplace(&repository, catalog.get());
  mci::marketplace::MarketplaceService service(&marketplace, &authenticator);
  mci::marketplace::LineageConsumer lineage(nats->get(), &repository);

  mci::ServerOptions options;
  options.service_name = "mci.marketplace.v1.MarketplaceService";
  options.grpc_address = settings->grpc_address;
  options.http_address = settings->http_address;
  options.ready = [&] { return (*nats)->connected() && pool.Ping(); };
  options.on_shutdown = [&] { lineage.Stop(); };
  mci::ServiceHost host(options);
  host.AddService(&service);
  if (auto s = host.Start(); !s.ok()) return Fail("cannot start", s);
  lineage.Start();
  host.Wait();
  lineage.Stop();
  return 0;
}
