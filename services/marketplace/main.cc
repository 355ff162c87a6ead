// marketplace-service: publications of MultiCloud Images, their sharing, imports and updates.
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/common/auth.h"
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
  mci::log::Level level;
  if (mci::log::ParseLevel(config->String("log-level", "info"), &level)) {
    mci::log::SetMinLevel(level);
  }
  std::string database_url = config->String("database-url", "");
  std::string secret = config->String("jwt-secret", "");
  if (database_url.empty() || secret.empty()) {
    return Fail("missing configuration",
                absl::InvalidArgumentError("--database-url (MCI_DATABASE_URL) and --jwt-secret "
                                           "(MCI_JWT_SECRET) are required."));
  }
  auto pool_size = config->Int("db-pool-size", 8);
  if (!pool_size.ok()) return Fail("bad flags", pool_size.status());

  if (auto s = mci::db::WaitForDatabase(database_url, absl::Seconds(30)); !s.ok()) {
    return Fail("database not reachable", s);
  }
  if (auto s = mci::db::Migrate(database_url, mci::marketplace::Migrations()); !s.ok()) {
    return Fail("migrations failed", s);
  }
  mci::db::Pool pool(database_url, *pool_size);
  auto nats = mci::nats::Client::Connect(config->String("nats-url", "nats://127.0.0.1:4222"),
                                         "marketplace-service");
  if (!nats.ok()) return Fail("cannot set up NATS", nats.status());

  mci::auth::Authenticator authenticator(secret);
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
  options.grpc_address = config->String("grpc-address", "127.0.0.1:50052");
  options.http_address = config->String("http-address", "127.0.0.1:9092");
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
