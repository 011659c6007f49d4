// TCPStore's client side: connecting with retries, one request/reply at a time per socket, and
// the errors a person can act on (which key, which server, how long).
#include "distributed/tcp_store.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <thread>

#include "distributed/tcp_store_detail.h"
#include "tensor/error.h"

namespace fabric::distributed {

using namespace tcp_store_detail;
using std::chrono::milliseconds;

struct TCPStore::Reply {
  uint8_t status = kOk;
  Bytes value;                       // GET
  int64_t number = 0;                // ADD, CHECK
  std::vector<std::string> missing;  // kTimedOut
  std::string message;               // kFailed
};

namespace {

// Client-side errors carry the op and the server address.
[[noreturn]] void lost(const std::string& op, const std::string& addr, const std::string& why) {
  throw DistributedError("TCPStore." + op + ": lost the connection to the store server at " + addr +
                         " (" + why +
                         "); the process hosting the store (rank 0) has probably exited");
}

// The first byte of a reply is not a status the store sends: whatever answered is not a store
// server (a web server or another service on MASTER_PORT, a proxy in the way), not a store that
// went away.
[[noreturn]] void not_a_store(const std::string& op, const std::string& addr, uint8_t first_byte) {
  const bool printable = first_byte >= 0x20 && first_byte < 0x7f;
  throw DistributedError(
      "TCPStore." + op + ": the server at " + addr +
      " is not a fabric store server: its reply began with byte " + std::to_string(first_byte) +
      (printable ? std::string(" ('") + char(first_byte) + "')" : std::string()) +
      ", which the store never sends; is another program listening on that address and port "
      "(MASTER_ADDR, MASTER_PORT)?");
}

// Waits for fd to be ready for `events` until deadline. False on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, int(std::min<int64_t>(left, 60'000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the following send/recv report the error
  }
}

}  // namespace

TCPStore::TCPStore(const TCPStoreOptions& options) : host_(options.host), port_(options.port) {
  timeout_ = options.timeout;
  if (options.is_server) {
    server_ = std::make_unique<TCPStoreServer>(options.host, options.port);
    port_ = server_->port();
  } else {
    FABRIC_CHECK(port_ > 0 && port_ <= 65535, ValueError, "TCPStore client: port ", port_,
                 " is out of range (expected 1..65535, the server's port)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  connect_locked(timeout_);
}

TCPStore::~TCPStore() {
  disconnect_locked();
  server_.reset();
}

std::string TCPStore::address() const {
  return host_.find(':') != std::string::npos ? "[" + host_ + "]:" + std::to_string(port_)
                                              : host_ + ":" + std::to_string(port_);
}

void TCPStore::disconnect_locked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TCPStore::connect_locked(milliseconds timeout) {
  // A server bound to the wildcard address is reached through loopback.
  std::string target = host_;
  if (target == "0.0.0.0" || target.empty()) target = "127.0.0.1";
  if (target == "::") target = "::1";
  const auto deadline = Clock::now() + timeout;
  auto backoff = milliseconds(10);
  std::string last_error = "no attempt";
  while (true) {
    AddrInfo ai;
    const int rc = resolve(target, port_, ai);
    if (rc != 0) last_error = std::string("cannot resolve host: ") + gai_strerror(rc);
    for (addrinfo* a = rc == 0 ? ai.list : nullptr; a != nullptr; a = a->ai_next) {
      const int fd =
          ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) {
        last_error = errno_str(errno);
        continue;
      }
      int err = 0;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
          if (!wait_fd(fd, POLLOUT, deadline)) {
            err = ETIMEDOUT;
          } else {
            socklen_t len = sizeof(err);
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          }
        }
      }
      if (err == 0) {
        set_nodelay(fd);
        fd_ = fd;
        return;
      }
      last_error = errno_str(err);
      ::close(fd);
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, milliseconds(500));
  }
  throw TimeoutError("TCPStore: could not connect to the store server at " + address() +
                     " within " + std::to_string(timeout.count()) +
                     " ms (last error: " + last_error +
                     "); check that rank 0 is running and MASTER_ADDR/MASTER_PORT point at it");
}

TCPStore::Reply TCPStore::round_trip(const std::string& op, uint8_t code,
                                     const std::vector<std::string>& keys, const Bytes& value,
                                     milliseconds server_timeout, milliseconds reply_timeout) {
  FABRIC_CHECK(!keys.empty() && keys.size() <= std::numeric_limits<uint16_t>::max(), ValueError,
               "TCPStore.", op, ": ", keys.size(), " keys in one request (expected 1..65535)");
  size_t key_bytes = 0;
  for (const auto& k : keys) {
    FABRIC_CHECK(k.size() <= kTCPStoreMaxKeyBytes, ValueError, "TCPStore.", op, ": key of ",
                 k.size(), " bytes is longer than the limit of ", kTCPStoreMaxKeyBytes, " bytes");
    key_bytes += k.size();
  }
  FABRIC_CHECK(key_bytes <= kMaxKeysBytes, ValueError, "TCPStore.", op, ": ", key_bytes,
               " bytes of keys in one request exceed the limit of ", kMaxKeysBytes);
  FABRIC_CHECK(value.size() <= kTCPStoreMaxValueBytes, ValueError, "TCPStore.", op, ": value of ",
               value.size(), " bytes for key '", keys[0], "' is larger than the limit of ",
               kTCPStoreMaxValueBytes, " bytes");

  Bytes msg;
  msg.reserve(kHeaderBytes + key_bytes + 4 * keys.size() + 4 + value.size());
  put_u32(msg, kMagic);
  msg.push_back(kVersion);
  msg.push_back(code);
  put_u16(msg, uint16_t(keys.size()));
  put_u32(msg, uint32_t(std::clamp<int64_t>(server_timeout.count(), 0,
                                            std::numeric_limits<uint32_t>::max())));
  for (const auto& k : keys) put_str(msg, k);
  put_blob(msg, value.data(), value.size());

  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0)
    connect_locked(timeout_);  // an earlier request gave up on its reply and dropped the socket
  const auto deadline = Clock::now() + reply_timeout;
  const auto give_up = [&]() -> Reply {
    // The reply may still come later; a fresh connection keeps it from answering the next request.
    disconnect_locked();
    throw TimeoutError("TCPStore." + op + ": no reply from the store server at " + address() +
                       " within " + std::to_string(reply_timeout.count()) + " ms (key(s) " +
                       quote_keys(keys) + ")");
  };
  for (size_t off = 0; off < msg.size();) {
    const ssize_t w = ::send(fd_, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += size_t(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(fd_, POLLOUT, deadline)) return give_up();
    } else {
      const int e = errno;
      disconnect_locked();
      lost(op, address(), "send: " + errno_str(e));
    }
  }
  Bytes buf;
  const auto read_exact = [&](size_t n) -> const uint8_t* {
    buf.resize(n);
    for (size_t off = 0; off < n;) {
      const ssize_t r = ::recv(fd_, buf.data() + off, n - off, 0);
      if (r > 0) {
        off += size_t(r);
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_fd(fd_, POLLIN, deadline)) give_up();
      } else {
        const std::string why =
            r == 0 ? "the server closed the connection" : "recv: " + errno_str(errno);
        disconnect_locked();
        lost(op, address(), why);
      }
    }
    return buf.data();
  };
  const auto read_blob = [&]() -> Bytes {
    const uint32_t len = get_u32(read_exact(4));
    if (len > kTCPStoreMaxValueBytes) {
      disconnect_locked();
      lost(op, address(), "malformed reply announcing " + std::to_string(len) + " bytes");
    }
    const uint8_t* p = read_exact(len);
    return Bytes(p, p + len);
  };

  Reply rep;
  rep.status = read_exact(1)[0];
  if (rep.status == kTimedOut) {
    const uint16_t n = get_u16(read_exact(2));
    for (uint16_t i = 0; i < n; ++i) {
      const Bytes k = read_blob();
      rep.missing.emplace_back(k.begin(), k.end());
    }
  } else if (rep.status == kFailed) {
    const Bytes m = read_blob();
    rep.message.assign(m.begin(), m.end());
  } else if (rep.status != kOk) {
    disconnect_locked();
    not_a_store(op, address(), rep.status);
  } else if (code == kGet) {
    rep.value = read_blob();
  } else if (code == kAdd) {
    rep.number = int64_t(get_u64(read_exact(8)));
  } else if (code == kCheck) {
    rep.number = read_exact(1)[0];
  }
  return rep;
}

namespace {
// The server answers a timed-out get/wait itself; the client waits a little longer before it stops
// trusting the server.
milliseconds reply_budget(milliseconds t) { return t + milliseconds(2000); }
}  // namespace

void TCPStore::set(const std::string& key, const Bytes& value) {
  round_trip("set", kSet, {key}, value, milliseconds(0), timeout_);
}

Bytes TCPStore::get(const std::string& key) {
  const milliseconds t = timeout_;
  Reply r = round_trip("get", kGet, {key}, {}, t, reply_budget(t));
  if (r.status == kTimedOut)
    throw TimeoutError("TCPStore.get: timed out after " + std::to_string(t.count()) +
                       " ms waiting for key '" + key + "' (store server " + address() + ")");
  return std::move(r.value);
}

int64_t TCPStore::add(const std::string& key, int64_t delta) {
  Bytes v;
  put_u64(v, uint64_t(delta));
  const Reply r = round_trip("add", kAdd, {key}, v, milliseconds(0), timeout_);
  if (r.status == kFailed)
    throw ValueError("TCPStore.add: " + r.message + " (store server " + address() + ")");
  return r.number;
}

void TCPStore::wait(const std::vector<std::string>& keys, milliseconds timeout) {
  if (keys.empty()) return;
  const Reply r = round_trip("wait", kWait, keys, {}, timeout, reply_budget(timeout));
  if (r.status == kTimedOut)
    throw TimeoutError("TCPStore.wait: timed out after " + std::to_string(timeout.count()) +
                       " ms waiting for key(s) " + quote_keys(keys) + "; still missing: " +
                       quote_keys(r.missing) + " (store server " + address() + ")");
}

bool TCPStore::check(const std::vector<std::string>& keys) {
  if (keys.empty()) return true;
  return round_trip("check", kCheck, keys, {}, milliseconds(0), timeout_).number != 0;
}

}  // namespace fabric::distributed
