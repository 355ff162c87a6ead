// fake-service: a ServiceHost whose readiness is a ping of --database-url (harness tests only).
#include <iostream>

#include "libs/common/config.h"
#include "libs/common/db.h"
#include "libs/common/log.h"
#include "libs/common/server.h"

int main(int argc, char** argv) {
  mci::BlockTerminationSignals();
  auto config = mci::Config::Parse(argc, argv);
  if (!config.ok()) return 2;
  mci::log::SetService("fake");
  mci::db::Pool pool(config->String("database-url", ""), 1);
  mci::ServerOptions options;
  options.service_name = "mci.fake.v1.FakeService";
  options.grpc_address = config->String("grpc-address", "127.0.0.1:0");
  options.http_address = config->String("http-address", "");
  options.ready = [&pool] { return pool.Ping(); };
  mci::ServiceHost host(options);
  if (auto s = host.Start(); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  host.Wait();
  return 0;
}
