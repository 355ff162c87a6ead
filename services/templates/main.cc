// template-reference-service: ServerTemplates, their MCI references, the replica of MCI state and
// the template side of the MCI deletion saga. Wiring only.
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <memory>

#include "absl/time/time.h"
#include "libs/common/auth.h"
#include "libs/common/bootstrap.h"
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
  auto settings = mci::BootstrapService(*config, "127.0.0.1:50053", "127.0.0.1:9093",
                                        mci::templates::Migrations());
  if (!settings.ok()) return Fail("cannot start", settings.status());
  mci::db::Pool pool(settings->database_url, settings->db_pool_size);
  auto nats = mci::nats::Client::Connect(settings->nats_url, "template-reference-service",
                                         settings->nats_ca_file);
  if (!nats.ok()) return Fail("cannot set up NATS", nats.status());

  mci::templates::PgRepository repository(&pool);
  mci::templates::GrpcCatalogClient catalog(
      grpc::CreateChannel(config->String("catalog-address", "127.0.0.1:50051"),
                          grpc::InsecureChannelCredentials()),
      kCatalogDeadline);
  mci::auth::Authenticator authenticator(settings->jwt_secret);
  mci::templates::ServerTemplateLogic logic(&repository, &catalog);
  mci::templates::TemplatesService service(&logic, &authenticator);
  mci::templates::EventConsumer consumer(nats->get(), &repository);

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
  return 0;
}
