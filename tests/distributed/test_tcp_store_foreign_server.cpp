// A TCPStore client whose MASTER_ADDR:MASTER_PORT reaches some other program (a web server, a
// proxy, another service) says so, instead of reporting a store server that went away.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "distributed/tcp_store.h"
#include "tensor/error.h"

namespace fd = fabric::distributed;
using namespace std::chrono_literals;

namespace {

// A listening socket on an ephemeral loopback port that answers the first bytes of one connection
// with `reply`, as an HTTP server answers a request it cannot parse, then closes it.
class ForeignServer {
 public:
  explicit ForeignServer(std::string reply) : reply_(std::move(reply)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      ADD_FAILURE() << "cannot listen on loopback";
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve_one(); });
  }
  ~ForeignServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  void serve_one() {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 10'000) <= 0) return;
    const int c = ::accept(listen_fd_, nullptr, nullptr);
    if (c < 0) return;
    pollfd q{c, POLLIN, 0};
    char buf[256];
    if (::poll(&q, 1, 10'000) > 0 && ::recv(c, buf, sizeof buf, 0) > 0)
      (void)::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
    ::close(c);
  }
  std::string reply_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(TCPStoreForeignServer, AReplyNoStoreSendsNamesTheAddressAsAnotherProgram) {
  ForeignServer http("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  fd::TCPStore client(fd::TCPStoreOptions{.host = "127.0.0.1", .port = http.port(), .timeout = 5s});
  try {
    client.add("rendezvous", 1);
    FAIL() << "add succeeded against an HTTP server";
  } catch (const fabric::DistributedError& e) {
    const std::string what = e.what();
    const std::string addr = "127.0.0.1:" + std::to_string(http.port());
    EXPECT_NE(what.find("TCPStore.add: the server at " + addr + " is not a fabric store server"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("began with byte 72 ('H')"), std::string::npos) << what;
    EXPECT_NE(what.find("MASTER_ADDR, MASTER_PORT"), std::string::npos) << what;
    EXPECT_EQ(what.find("has probably exited"), std::string::npos) << what;
  }
}

}  // namespace
