// template-reference-service: ServerTemplates, their MCI references, the replica of MCI state and
// the template side of the MCI deletion saga. Wiring only.
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <memory>

#include "absl/time/time.h"
#include "libs/common/auth.h"
#include "libs/common/config.h"
#include "libs/common/db.h"
#include "libs/common/log.h"
#include "libs/common/nats.h"
#include "libs/common/server.h"
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
  mci::log::Level level;
  if (mci::log::ParseLevel(config->String("log-level", "info"), &level)) {
    mci::log::SetMinLevel(level);
  }
  std::string database_url = config->String("database-url", "");
  std::string jwt_secret = config->String("jwt-secret", "");
  if (database_url.empty() || jwt_secret.empty()) {
    std::cerr << "template-reference-service: --database-url (MCI_DATABASE_URL) and --jwt-secret "
                 "(MCI_JWT_SECRET) are required.\n";
    return 2;
  }
  auto pool_size = config->Int("db-pool-size", 8);
  if (!pool_size.ok()) return Fail("bad --db-pool-size", pool_size.status());

  if (auto s = mci::db::WaitForDatabase(database_url, absl::Seconds(60)); !s.ok()) {
    return Fail("database not reachable", s);
  }
  if (auto s = mci::db::Migrate(database_url, mci::templates::Migrations()); !s.ok()) {
    return Fail("migrations failed", s);
  }
  mci::db::Pool pool(database_url, *pool_size);
  auto nats = mci::nats::Client::Connect(config->String("nats-url", "nats://127.0.0.1:4222"),
                                         "template-reference-service");
  if (!nats.ok()) return Fail("cannot set up NATS", nats.status());

  mci::templates::PgRepository repository(&pool);
  mci::templates::GrpcCatalogClient catalog(
      grpc::CreateChannel(config->String("catalog-address", "127.0.0.1:50051"),
                          grpc::InsecureChannelCredentials()),
      kCatalogDeadline);
  mci::auth::Authenticator authenticator(jwt_secret);
  mci::templates::ServerTemplateLogic logic(&repository, &catalog);
  mci::templates::TemplatesService service(&logic, &authenticator);
  mci::templates::EventConsumer consumer(nats->get(), &repository);

  mci::ServerOptions options;
  options.service_name = "mci.templates.v1.ServerTemplateService";
  options.grpc_address = config->String("grpc-address", "127.0.0.1:50053");
  options.http_address = config->String("http-address", "127.0.0.1:9093");
  mci::nats::Client* nats_client = nats->get();
  options.ready = [&pool, nats_client] { return nats_client->connected() && pool.Ping(); };
  options.on_shutdown = [&consumer] { consumer.Stop(); };
  mci::ServiceHost host(options);
  host.AddService(&service);
  if (auto s = host.Start(); !s.ok()) return Fail("cannot start", s);
  consumer.Start();
  host.Wait();
  consumer.Stop();
  return 0;
}
