#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "absl/time/clock.h"
#include "libs/common/auth.h"
#include "tests/support/stack.h"

namespace mci::testing {
namespace {

TEST(FreePortTest, PortsAreDistinctAndBindable) {
  std::set<int> ports;
  for (int i = 0; i < 20; ++i) {
    int port = FreePort();
    EXPECT_GT(port, 0);
    EXPECT_TRUE(ports.insert(port).second) << "port " << port << " handed out twice";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << port;
    close(fd);
  }
}

TEST(TokenTest, VerifiesWithTheTestSecret) {
  std::string token = Token("acme", {auth::Role::kDesigner, auth::Role::kPublisher});
  auto caller = auth::VerifyToken(kTestSecret, token, absl::Now());
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->account, "acme");
  EXPECT_TRUE(caller->Has(auth::Role::kDesigner));
  EXPECT_TRUE(caller->Has(auth::Role::kPublisher));
  EXPECT_FALSE(caller->Has(auth::Role::kAdmin));
}

TEST(TokenTest, OtherSecretAndExpiryAreRejected) {
  EXPECT_EQ(auth::VerifyToken(kTestSecret, Token("acme", {}, absl::Hours(1), "other"), absl::Now())
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth::VerifyToken(kTestSecret, Token("acme", {}, -absl::Minutes(1)), absl::Now())
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(ContextTest, CarriesDeadline) {
  auto context = Context(Token("acme", {}));
  EXPECT_LT(context->deadline(), std::chrono::system_clock::now() + std::chrono::seconds(11));
  EXPECT_GT(context->deadline(), std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace
}  // namespace mci::testing
