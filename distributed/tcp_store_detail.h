// Internal to the TCPStore implementation (tcp_store.cpp, tcp_store_server.cpp): the wire format
// and the server class. Not a public header: it includes socket headers.
//
// Wire format (little endian). Request: magic u32 "FBST", version u8, op u8, nkeys u16, timeout_ms
// u32, then nkeys x (len u32, key bytes), then (len u32, value bytes); ADD's value is its i64
// delta. Reply: status u8 (ok, timed out, failed), then GET: (len u32, value); ADD: i64; CHECK: u8;
// timed out: nmissing u16 + keys; failed: (len u32, message). One request in flight per connection.
#pragma once
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "distributed/store.h"
#include "distributed/tcp_store.h"

namespace fabric::distributed::tcp_store_detail {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline constexpr uint32_t kMagic = 0x54534246;  // "FBST" on the wire
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 12;
// Keys of one request together (a wait over many ranks' keys) may not exceed this either.
inline constexpr size_t kMaxKeysBytes = size_t{16} << 20;

enum Op : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kCheck = 4, kWait = 5 };
enum Status : uint8_t { kOk = 0, kTimedOut = 1, kFailed = 2 };

inline void put_u16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v));
  b.push_back(uint8_t(v >> 8));
}
inline void put_u32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
inline void put_u64(Bytes& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
inline void put_blob(Bytes& b, const uint8_t* p, size_t n) {
  put_u32(b, uint32_t(n));
  b.insert(b.end(), p, p + n);
}
inline void put_str(Bytes& b, const std::string& s) {
  put_blob(b, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
inline uint16_t get_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

inline std::string errno_str(int e) { return std::string(std::strerror(e)); }

inline std::string quote_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "'" : ", '") + k + "'";
  return s;
}

inline void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list) ::freeaddrinfo(list);
  }
};

// 0 when resolved, else the getaddrinfo error code.
inline int resolve(const std::string& host, int port, AddrInfo& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  return ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &out.list);
}

// A parsed request.
struct Request {
  uint8_t op = 0;
  uint32_t timeout_ms = 0;
  std::vector<std::string> keys;
  Bytes value;
};

enum class Parse { kNeedMore, kMalformed, kFrame };

// Parses one frame from [p, p+n): kFrame fills req and consumed. See tcp_store_server.cpp.
Parse parse_request(const uint8_t* p, size_t n, Request& req, size_t& consumed, size_t& need);

}  // namespace fabric::distributed::tcp_store_detail

namespace fabric::distributed {

// The store's server: one poll() thread over the listening socket and every connection.
class TCPStoreServer {
  using Clock = tcp_store_detail::Clock;
  using Request = tcp_store_detail::Request;

 public:
  TCPStoreServer(const std::string& host, int port);
  ~TCPStoreServer();
  int port() const { return port_; }

 private:
  struct Parked {
    uint8_t op;
    std::vector<std::string> keys;
    Clock::time_point deadline;
  };
  struct Conn {
    int fd = -1;
    Bytes in;
    size_t in_off = 0;
    size_t need = 1;  // bytes buffered before parsing is worth retrying
    Bytes out;
    size_t out_off = 0;
    std::optional<Parked> parked;
    bool dead = false;
  };

  void run();
  void accept_all();
  void read_conn(Conn& c);
  void pump(Conn& c);
  void handle(Conn& c, Request& req);
  void reply(Conn& c, const Bytes& msg);
  void flush(Conn& c);
  void close_conn(Conn& c) { c.dead = true; }
  void key_changed();
  bool all_present(const std::vector<std::string>& keys) const;
  Bytes answer_parked(uint8_t op, const std::vector<std::string>& keys) const;
  Bytes timed_out_reply(const std::vector<std::string>& keys) const;

  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<int, Conn> conns_;
  std::map<std::string, Bytes> data_;
  std::deque<int> to_pump_;  // connections unparked by another one's SET, to serve next
  Clock::time_point accept_paused_until_{};
};

}  // namespace fabric::distributed
