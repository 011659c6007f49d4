// TCPStore: the rendezvous store between threads and processes, its timeouts, and a server that
// survives malformed requests from raw sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "distributed/cluster_env.h"
#include "distributed/tcp_store.h"
#include "tensor/error.h"

namespace fd = fabric::distributed;
using namespace std::chrono_literals;
using fd::Bytes;

namespace {

std::unique_ptr<fd::TCPStore> make_server(std::chrono::milliseconds timeout = 5s, int port = 0) {
  return std::make_unique<fd::TCPStore>(fd::TCPStoreOptions{
      .host = "127.0.0.1", .port = port, .is_server = true, .timeout = timeout});
}

std::unique_ptr<fd::TCPStore> make_client(int port, std::chrono::milliseconds timeout = 5s) {
  return std::make_unique<fd::TCPStore>(fd::TCPStoreOptions{
      .host = "127.0.0.1", .port = port, .is_server = false, .timeout = timeout});
}

// ---- raw wire access, to send what a well-behaved client never would ----

int raw_connect(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ADD_FAILURE() << "raw connect to port " << port << " failed: " << std::strerror(errno);
    if (s >= 0) ::close(s);
    return -1;
  }
  return s;
}

void raw_send(int s, const Bytes& b) {
  ASSERT_EQ(::send(s, b.data(), b.size(), MSG_NOSIGNAL), ssize_t(b.size()));
}

// True when the server closes the connection within 3 s (EOF or reset); any bytes it sends first
// are returned in `received`.
bool closed_by_server(int s, Bytes* received = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    uint8_t buf[4096];
    const ssize_t r = ::recv(s, buf, sizeof(buf), 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
    if (r > 0 && received) received->insert(received->end(), buf, buf + r);
  }
  return false;
}

void put_u32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
}

// One request frame as the protocol defines it (tcp_store_detail.h's header comment).
constexpr uint8_t kSet = 1, kGet = 2, kAdd = 3, kCheck = 4, kWait = 5;
Bytes frame(uint8_t op, const std::vector<std::string>& keys, const Bytes& value,
            uint32_t magic = 0x54534246, uint8_t version = 1, uint32_t timeout_ms = 0) {
  Bytes b;
  put_u32(b, magic);
  b.push_back(version);
  b.push_back(op);
  b.push_back(uint8_t(keys.size()));
  b.push_back(uint8_t(keys.size() >> 8));
  put_u32(b, timeout_ms);
  for (const auto& k : keys) {
    put_u32(b, uint32_t(k.size()));
    b.insert(b.end(), k.begin(), k.end());
  }
  put_u32(b, uint32_t(value.size()));
  b.insert(b.end(), value.begin(), value.end());
  return b;
}

Bytes str_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST(TCPStore, ServerAndThreeClientsSetGetAddCheckWait) {
  auto server = make_server();
  const int port = server->port();
  ASSERT_GT(port, 0);
  std::vector<std::thread> threads;
  std::vector<std::string> failures(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      try {
        auto c = make_client(port);
        c->set("key" + std::to_string(i), "value" + std::to_string(i));
        c->add("counter", i + 1);
        c->wait({"key0", "key1", "key2"});
        for (int j = 0; j < 3; ++j)
          if (c->get_string("key" + std::to_string(j)) != "value" + std::to_string(j))
            failures[i] += "wrong value for key" + std::to_string(j) + "; ";
        if (!c->check({"key0", "key1", "key2"})) failures[i] += "check false after wait; ";
        if (c->check({"key0", "absent"})) failures[i] += "check true with an absent key; ";
      } catch (const std::exception& e) {
        failures[i] += e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(failures[i], "") << "client " << i;
  EXPECT_EQ(server->get_string("counter"), "6");
  EXPECT_EQ(server->add("counter", -10), -4);
  EXPECT_TRUE(server->check({"key0", "key1", "key2", "counter"}));
  // Values are bytes, not strings: zeros and high bytes survive, and set overwrites.
  const Bytes binary{0, 255, 0, 17, 128};
  server->set("bin", binary);
  EXPECT_EQ(server->get("bin"), binary);
  server->set("bin", Bytes{});
  EXPECT_EQ(server->get("bin"), Bytes{});
}

TEST(TCPStore, GetBlocksUntilAnotherThreadSets) {
  auto server = make_server();
  auto client = make_client(server->port());
  std::atomic<bool> set_done{false};
  std::string got;
  bool set_before_get_returned = false;
  std::thread waiter([&] {
    got = client->get_string("late");
    set_before_get_returned = set_done.load();
  });
  std::this_thread::sleep_for(100ms);
  set_done.store(true);
  server->set("late", "here");
  waiter.join();
  EXPECT_EQ(got, "here");
  EXPECT_TRUE(set_before_get_returned);

  // wait() on several keys returns only when the last one appears.
  std::atomic<bool> second_set{false};
  bool wait_saw_second = false;
  std::thread w2([&] {
    client->wait({"a", "b"});
    wait_saw_second = second_set.load();
  });
  server->set("a", "1");
  std::this_thread::sleep_for(50ms);
  second_set.store(true);
  server->set("b", "2");
  w2.join();
  EXPECT_TRUE(wait_saw_second);
}

TEST(TCPStore, GetAndWaitTimeOutNamingKeyAddressAndTimeout) {
  auto server = make_server();
  auto client = make_client(server->port(), 300ms);
  const std::string addr = "127.0.0.1:" + std::to_string(server->port());
  try {
    client->get("never_set");
    FAIL() << "get of an absent key returned";
  } catch (const fabric::TimeoutError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(contains(m, "never_set")) << m;
    EXPECT_TRUE(contains(m, addr)) << m;
    EXPECT_TRUE(contains(m, "after 300 ms")) << m;
  }
  server->set("present", "x");
  try {
    client->wait({"present", "missing_one"}, 200ms);
    FAIL() << "wait on an absent key returned";
  } catch (const fabric::TimeoutError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(contains(m, "still missing: 'missing_one'")) << m;
    EXPECT_TRUE(contains(m, addr)) << m;
  }
  // A zero timeout checks once; the connection stays usable after timeouts.
  EXPECT_THROW(client->wait({"missing_one"}, 0ms), fabric::TimeoutError);
  client->set("after", "ok");
  EXPECT_EQ(server->get_string("after"), "ok");
  EXPECT_EQ(client->get_string("present"), "x");
}

TEST(TCPStore, ConnectToPortNobodyListensOnTimesOut) {
  const int port = fd::find_free_port();
  const auto start = std::chrono::steady_clock::now();
  try {
    make_client(port, 400ms);
    FAIL() << "connected to a port nobody listens on";
  } catch (const fabric::TimeoutError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(contains(m, "127.0.0.1:" + std::to_string(port))) << m;
  }
  // Not a timing assertion: a bound far above the timeout only catches a client that never gives
  // up.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
}

TEST(TCPStore, ClientRetriesUntilServerStarts) {
  const int port = fd::find_free_port();
  std::string result;
  std::thread client_thread([&] {
    try {
      auto c = make_client(port, 10s);
      result = c->get_string("hello");
    } catch (const std::exception& e) {
      result = std::string("error: ") + e.what();
    }
  });
  std::this_thread::sleep_for(300ms);
  auto server = make_server(5s, port);
  server->set("hello", "world");
  client_thread.join();
  EXPECT_EQ(result, "world");
}

TEST(TCPStore, MalformedRequestsCloseOnlyThatConnection) {
  auto server = make_server();
  const int port = server->port();
  auto good = make_client(port);  // connected before the attacks, used after them
  good->set("k", "v");

  struct Case {
    const char* name;
    Bytes bytes;
  };
  Bytes huge_value = frame(kSet, {"k"}, {});
  huge_value.resize(huge_value.size() - 4);
  put_u32(huge_value, 1u << 30);  // announces 1 GiB and sends none of it
  Bytes long_key = frame(kGet, {"k"}, {});
  long_key.resize(12);
  put_u32(long_key, 5000);  // key length over the 4 KiB limit
  std::vector<Case> cases = {
      {"garbage", str_bytes("GET /store HTTP/1.1\r\n\r\n")},
      {"bad magic", frame(kSet, {"k"}, str_bytes("v"), 0xdeadbeef)},
      {"bad version", frame(kSet, {"k"}, str_bytes("v"), 0x54534246, 9)},
      {"unknown op", frame(42, {"k"}, {})},
      {"op zero", frame(0, {"k"}, {})},
      {"no keys", frame(kCheck, {}, {})},
      {"two keys for set", frame(kSet, {"a", "b"}, str_bytes("v"))},
      {"get with a value", frame(kGet, {"k"}, str_bytes("v"))},
      {"add with a 4-byte delta", frame(kAdd, {"k"}, str_bytes("abcd"))},
      {"1 GiB value", huge_value},
      {"5000-byte key", long_key},
  };
  for (const auto& c : cases) {
    const int s = raw_connect(port);
    ASSERT_GE(s, 0);
    raw_send(s, c.bytes);
    Bytes reply;
    EXPECT_TRUE(closed_by_server(s, &reply)) << c.name << ": the server kept the connection open";
    EXPECT_TRUE(reply.empty()) << c.name << ": the server answered a malformed request";
    ::close(s);
    EXPECT_EQ(good->get_string("k"), "v") << "after " << c.name;
  }

  // A truncated frame followed by close, and a connection that dies mid-value.
  for (size_t cut : {size_t(3), size_t(11), size_t(20), size_t(33)}) {
    const int s = raw_connect(port);
    ASSERT_GE(s, 0);
    Bytes f = frame(kSet, {"truncated"}, str_bytes("0123456789"));
    f.resize(cut);
    raw_send(s, f);
    ::close(s);
  }
  EXPECT_FALSE(good->check({"truncated"}));

  // A well-formed raw client: two pipelined requests get two replies, in order.
  const int s = raw_connect(port);
  ASSERT_GE(s, 0);
  Bytes two = frame(kSet, {"raw"}, str_bytes("abc"));
  const Bytes get = frame(kGet, {"raw"}, {}, 0x54534246, 1, 1000);
  two.insert(two.end(), get.begin(), get.end());
  raw_send(s, two);
  ::shutdown(s, SHUT_WR);
  Bytes reply;
  EXPECT_TRUE(closed_by_server(s, &reply));
  ::close(s);
  const Bytes expected{0, /*get:*/ 0, 3, 0, 0, 0, 'a', 'b', 'c'};
  EXPECT_EQ(reply, expected);
  EXPECT_EQ(good->get_string("raw"), "abc");
  auto late = make_client(port);
  late->set("still", "serving");
  EXPECT_EQ(good->get_string("still"), "serving");
  (void)kWait;
}

TEST(TCPStore, ClientRejectsOversizeKeysAndValuesBeforeSending) {
  auto server = make_server();
  auto client = make_client(server->port());
  EXPECT_THROW(client->set(std::string(fd::kTCPStoreMaxKeyBytes + 1, 'k'), "v"),
               fabric::ValueError);
  EXPECT_THROW(client->set("big", Bytes(fd::kTCPStoreMaxValueBytes + 1)), fabric::ValueError);
  const Bytes large(8u << 20, 7);  // 8 MiB crosses many socket buffers both ways
  client->set("large", large);
  EXPECT_EQ(server->get("large"), large);
  client->set("text", "not a number");
  try {
    client->add("text", 1);
    FAIL() << "add on a non-integer value succeeded";
  } catch (const fabric::ValueError& e) {
    EXPECT_TRUE(contains(e.what(), "'text'")) << e.what();
  }
  EXPECT_EQ(client->add("n", 5), 5);  // the connection survived
}

TEST(TCPStore, ServerDestroyedWhileClientWaits) {
  auto server = make_server();
  auto client = make_client(server->port(), 5s);
  std::string outcome;
  std::thread waiter([&] {
    try {
      client->get("never");
      outcome = "returned";
    } catch (const fabric::DistributedError& e) {
      outcome = std::string("DistributedError: ") + e.what();
    } catch (const std::exception& e) {
      outcome = std::string("other: ") + e.what();
    }
  });
  std::this_thread::sleep_for(200ms);
  server.reset();
  waiter.join();
  EXPECT_EQ(outcome.rfind("DistributedError: ", 0), 0u) << outcome;
  // Later requests fail too instead of hanging (the reconnect gives up after the client's timeout).
  client->set_timeout(300ms);
  EXPECT_THROW(client->set("x", "y"), fabric::DistributedError);
}

TEST(TCPStore, AddIsAtomicAcrossThreads) {
  auto server = make_server();
  auto shared_client = make_client(server->port());
  std::vector<std::vector<int64_t>> seen(4);
  std::vector<int> misrouted(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      // Two threads share one client (its mutex), two have their own connection.
      std::unique_ptr<fd::TCPStore> own = t < 2 ? make_client(server->port()) : nullptr;
      fd::TCPStore& s = own ? *own : *shared_client;
      for (int i = 0; i < 100; ++i) {
        seen[t].push_back(s.add("count", 1));
        // A per-thread counter: on a shared socket, a reply read by the wrong thread shows up here.
        if (s.add("own" + std::to_string(t), 1000 * (t + 1)) != int64_t(1000) * (t + 1) * (i + 1))
          ++misrouted[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(misrouted, std::vector<int>(4, 0));
  std::vector<int64_t> all;
  for (const auto& v : seen) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(400);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(all, expected);  // every increment returned a distinct value: none was lost
  EXPECT_EQ(server->get_string("count"), "400");
}

TEST(TCPStore, WorksAcrossProcesses) {
  auto server = make_server();
  const int port = server->port();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: only this thread exists here; it opens its own connection and leaves without
    // running the parent's destructors.
    int rc = 1;
    try {
      auto c = make_client(port, 5s);
      c->set("from_child", std::to_string(::getpid()));
      rc = c->get_string("from_parent") == "hi" ? 0 : 2;
    } catch (...) {
      rc = 3;
    }
    ::_exit(rc);
  }
  server->set("from_parent", "hi");
  std::string got;
  try {
    got = server->get_string("from_child");
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_EQ(got, std::to_string(pid));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(TCPStore, ServerRefusesAPortInUse) {
  auto server = make_server();
  try {
    make_server(1s, server->port());
    FAIL() << "two servers bound the same port";
  } catch (const fabric::DistributedError& e) {
    EXPECT_TRUE(contains(e.what(), std::to_string(server->port()))) << e.what();
  }
  EXPECT_THROW(fd::TCPStore({.host = "127.0.0.1", .port = 70000, .is_server = true}),
               fabric::ValueError);
}
