// TCPStore's server: one poll() thread over every connection. Requests waiting for keys are parked
// here until a SET arrives or their deadline passes; malformed requests close their connection
// only.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "distributed/tcp_store_detail.h"
#include "tensor/error.h"

namespace fabric::distributed {

namespace tcp_store_detail {

// Parses one frame from [p, p+n). Validates each length as soon as its bytes are there, so a frame
// announcing a huge size is rejected before its body is read. `need` gets the size the frame needs
// once known, so the caller does not re-parse until that many bytes arrived.
Parse parse_request(const uint8_t* p, size_t n, Request& req, size_t& consumed, size_t& need) {
  // Until the header is complete, every new byte is checked: garbage is rejected at its first byte.
  for (size_t i = 0; i < std::min<size_t>(n, 4); ++i)
    if (p[i] != uint8_t(kMagic >> (8 * i))) return Parse::kMalformed;
  if (n >= 5 && p[4] != kVersion) return Parse::kMalformed;
  if (n >= 6 && (p[5] < kSet || p[5] > kWait)) return Parse::kMalformed;
  if (n < kHeaderBytes) {
    need = n + 1;
    return Parse::kNeedMore;
  }
  const uint8_t op = p[5];
  const uint16_t nkeys = get_u16(p + 6);
  if (nkeys == 0 || (nkeys != 1 && op != kCheck && op != kWait)) return Parse::kMalformed;
  size_t off = kHeaderBytes, key_bytes = 0;
  for (uint16_t i = 0; i < nkeys; ++i) {
    need = off + 4;
    if (n < off + 4) return Parse::kNeedMore;
    const uint32_t len = get_u32(p + off);
    key_bytes += len;
    if (len > kTCPStoreMaxKeyBytes || key_bytes > kMaxKeysBytes) return Parse::kMalformed;
    off += 4 + len;
  }
  need = off + 4;
  if (n < off + 4) return Parse::kNeedMore;
  const uint32_t vlen = get_u32(p + off);
  if (vlen > kTCPStoreMaxValueBytes) return Parse::kMalformed;
  if ((op == kAdd && vlen != 8) || ((op == kGet || op == kCheck || op == kWait) && vlen != 0))
    return Parse::kMalformed;
  need = off + 4 + vlen;
  if (n < need) return Parse::kNeedMore;
  req.op = op;
  req.timeout_ms = get_u32(p + 8);
  req.keys.clear();
  off = kHeaderBytes;
  for (uint16_t i = 0; i < nkeys; ++i) {
    const uint32_t len = get_u32(p + off);
    req.keys.emplace_back(reinterpret_cast<const char*>(p + off + 4), len);
    off += 4 + len;
  }
  req.value.assign(p + off + 4, p + off + 4 + vlen);
  consumed = need;
  return Parse::kFrame;
}

}  // namespace tcp_store_detail

using namespace tcp_store_detail;
using std::chrono::milliseconds;

TCPStoreServer::TCPStoreServer(const std::string& host, int port) {
  FABRIC_CHECK(port >= 0 && port <= 65535, ValueError, "TCPStore server: port ", port,
               " is out of range (expected 0..65535; 0 picks a free port)");
  AddrInfo ai;
  const int rc = resolve(host, port, ai);
  FABRIC_CHECK(rc == 0, DistributedError, "TCPStore server: cannot resolve host '", host,
               "': ", gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* a = ai.list; a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = errno_str(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      listen_fd_ = fd;
      break;
    }
    last_error = errno_str(errno);
    ::close(fd);
  }
  FABRIC_CHECK(
      listen_fd_ >= 0, DistributedError, "TCPStore server: cannot listen on ", host, ":", port,
      ": ", last_error,
      " (is MASTER_PORT already used by another job, or MASTER_ADDR not an address of this host?)");
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    const int e = errno;
    ::close(listen_fd_);
    throw DistributedError("TCPStore server: eventfd failed: " + errno_str(e));
  }
  thread_ = std::thread([this] { run(); });
}

TCPStoreServer::~TCPStoreServer() {
  stop_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  for (auto& [fd, c] : conns_) ::close(fd);
  ::close(listen_fd_);
  ::close(wake_fd_);
}

bool TCPStoreServer::all_present(const std::vector<std::string>& keys) const {
  return std::all_of(keys.begin(), keys.end(),
                     [&](const std::string& k) { return data_.count(k) > 0; });
}

Bytes TCPStoreServer::answer_parked(uint8_t op, const std::vector<std::string>& keys) const {
  Bytes r{kOk};
  if (op == kGet) {
    const Bytes& v = data_.at(keys[0]);
    put_blob(r, v.data(), v.size());
  }
  return r;
}

Bytes TCPStoreServer::timed_out_reply(const std::vector<std::string>& keys) const {
  std::vector<const std::string*> missing;
  for (const auto& k : keys)
    if (!data_.count(k)) missing.push_back(&k);
  Bytes r{kTimedOut};
  put_u16(r, uint16_t(missing.size()));
  for (const auto* k : missing) put_str(r, *k);
  return r;
}

void TCPStoreServer::reply(Conn& c, const Bytes& msg) {
  c.out.insert(c.out.end(), msg.begin(), msg.end());
  flush(c);
}

void TCPStoreServer::flush(Conn& c) {
  while (!c.dead && c.out_off < c.out.size()) {
    const ssize_t w =
        ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (w > 0) {
      c.out_off += size_t(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;  // poll for POLLOUT
    } else {
      close_conn(c);  // the client went away
    }
  }
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
}

void TCPStoreServer::key_changed() {
  for (auto& [fd, c] : conns_) {
    if (c.dead || !c.parked || !all_present(c.parked->keys)) continue;
    const Parked p = std::move(*c.parked);
    c.parked.reset();
    reply(c, answer_parked(p.op, p.keys));
    to_pump_.push_back(fd);
  }
}

void TCPStoreServer::handle(Conn& c, Request& req) {
  switch (req.op) {
    case kSet:
      data_[req.keys[0]] = std::move(req.value);
      reply(c, Bytes{kOk});
      key_changed();
      return;
    case kAdd: {
      const int64_t delta = int64_t(get_u64(req.value.data()));
      int64_t current = 0;
      auto it = data_.find(req.keys[0]);
      if (it != data_.end()) {
        const char* b = reinterpret_cast<const char*>(it->second.data());
        const char* e = b + it->second.size();
        auto [ptr, ec] = std::from_chars(b, e, current);
        if (ec != std::errc() || ptr != e || b == e) {
          Bytes r{kFailed};
          put_str(r, "key '" + req.keys[0] + "' holds " + std::to_string(it->second.size()) +
                         " bytes that are not a decimal integer, so add() cannot increment it");
          reply(c, r);
          return;
        }
      }
      int64_t result = 0;
      if (__builtin_add_overflow(current, delta, &result)) {
        Bytes r{kFailed};
        put_str(r, "key '" + req.keys[0] + "': " + std::to_string(current) + " + " +
                       std::to_string(delta) + " overflows int64");
        reply(c, r);
        return;
      }
      const std::string s = std::to_string(result);
      data_[req.keys[0]] = Bytes(s.begin(), s.end());
      Bytes r{kOk};
      put_u64(r, uint64_t(result));
      reply(c, r);
      key_changed();
      return;
    }
    case kCheck:
      reply(c, Bytes{kOk, uint8_t(all_present(req.keys) ? 1 : 0)});
      return;
    case kGet:
    case kWait:
      if (all_present(req.keys)) {
        reply(c, answer_parked(req.op, req.keys));
      } else if (req.timeout_ms == 0) {
        reply(c, timed_out_reply(req.keys));
      } else {
        c.parked = Parked{req.op, std::move(req.keys), Clock::now() + milliseconds(req.timeout_ms)};
      }
      return;
  }
}

// Serves buffered requests in order until one parks, a reply is stuck in the socket buffer, or the
// buffer holds no complete frame.
void TCPStoreServer::pump(Conn& c) {
  Request req;
  while (!c.dead && !c.parked && c.out.empty() && c.in.size() - c.in_off >= c.need) {
    size_t consumed = 0;
    const Parse r =
        parse_request(c.in.data() + c.in_off, c.in.size() - c.in_off, req, consumed, c.need);
    if (r == Parse::kMalformed) {
      close_conn(c);
      return;
    }
    if (r == Parse::kNeedMore) break;
    c.in_off += consumed;
    c.need = 1;
    handle(c, req);
  }
  if (c.in_off == c.in.size()) {
    c.in.clear();
    c.in_off = 0;
  } else if (c.in_off > (size_t{1} << 20)) {
    c.in.erase(c.in.begin(), c.in.begin() + std::ptrdiff_t(c.in_off));
    c.in_off = 0;
  }
}

void TCPStoreServer::read_conn(Conn& c) {
  constexpr size_t kChunk = 256 << 10;
  for (int round = 0; round < 8 && !c.dead; ++round) {
    const size_t old = c.in.size();
    c.in.resize(old + kChunk);
    const ssize_t r = ::recv(c.fd, c.in.data() + old, kChunk, 0);
    c.in.resize(old + size_t(std::max<ssize_t>(r, 0)));
    if (r > 0) {
      pump(c);
      if (c.parked || !c.out.empty()) return;  // stop reading until this request is answered
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // EOF or error: requests already complete were served above; a partial frame is dropped.
    close_conn(c);
  }
}

void TCPStoreServer::accept_all() {
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      set_nodelay(fd);
      conns_[fd].fd = fd;
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
      accept_paused_until_ =
          Clock::now() + milliseconds(100);  // else poll would spin on the listener
    return;
  }
}

void TCPStoreServer::run() {
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    const auto now = Clock::now();
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    const bool accepting = now >= accept_paused_until_;
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
    std::optional<Clock::time_point> next_deadline;
    if (!accepting) next_deadline = accept_paused_until_;
    for (auto& [fd, c] : conns_) {
      short ev = POLLIN;
      if (!c.out.empty()) {
        ev = POLLOUT;
      } else if (c.parked) {
        ev = POLLRDHUP;  // only notice a client that gives up
        if (!next_deadline || c.parked->deadline < *next_deadline)
          next_deadline = c.parked->deadline;
      }
      fds.push_back({fd, ev, 0});
    }
    int timeout_ms = -1;
    if (next_deadline) {
      const auto left = std::chrono::ceil<milliseconds>(*next_deadline - now).count();
      timeout_ms = int(std::clamp<int64_t>(left, 0, 60'000));
    }
    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) break;
    if (stop_.load()) break;
    if (n > 0) {
      if (fds[0].revents) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &v, sizeof(v));
      }
      if (fds[1].revents & POLLIN) accept_all();
      for (size_t i = 2; i < fds.size(); ++i) {
        const short re = fds[i].revents;
        if (!re) continue;
        auto it = conns_.find(fds[i].fd);
        if (it == conns_.end()) continue;
        Conn& c = it->second;
        if (c.dead) continue;
        if (re & POLLOUT) {
          flush(c);
          if (c.out.empty()) pump(c);
        }
        if ((re & POLLIN) && !c.dead) read_conn(c);
        if (!c.dead && (re & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP)) && !(re & POLLIN))
          close_conn(c);
      }
    }
    const auto after = Clock::now();
    for (auto& [fd, c] : conns_) {
      if (c.dead || !c.parked || c.parked->deadline > after) continue;
      const Parked p = std::move(*c.parked);
      c.parked.reset();
      reply(c, timed_out_reply(p.keys));
      to_pump_.push_back(fd);
    }
    while (!to_pump_.empty()) {
      const int fd = to_pump_.front();
      to_pump_.pop_front();
      auto it = conns_.find(fd);
      if (it != conns_.end() && !it->second.dead) pump(it->second);
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (it->second.dead) {
        ::close(it->first);
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace fabric::distributed
