// TCPStore: the rendezvous key-value store of multi-process runs. Rank 0 hosts the server on
// MASTER_ADDR:MASTER_PORT (one poll() thread for every connection); every rank, rank 0 included,
// talks to it as a client over a small length-prefixed binary protocol.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/store.h"

namespace fabric::distributed {

struct TCPStoreOptions {
  std::string host = "127.0.0.1";  // the server binds this address; clients connect to it
  int port = 0;                    // 0 on the server: an ephemeral port, see TCPStore::port()
  bool is_server = false;
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};  // connect, get and wait
};

// Wire-format limits: the server closes a connection whose request exceeds them.
inline constexpr size_t kTCPStoreMaxKeyBytes = 4096;
inline constexpr size_t kTCPStoreMaxValueBytes = size_t{64} << 20;

class TCPStoreServer;  // tcp_store_detail.h

class TCPStore : public Store {
 public:
  // The server starts listening before the constructor returns; clients retry the connection until
  // options.timeout (the server may start later), then throw TimeoutError naming host:port.
  explicit TCPStore(const TCPStoreOptions& options);
  ~TCPStore() override;
  TCPStore(const TCPStore&) = delete;
  TCPStore& operator=(const TCPStore&) = delete;

  void set(const std::string& key, const Bytes& value) override;
  Bytes get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;
  using Store::wait;
  bool check(const std::vector<std::string>& keys) override;
  using Store::set;

  int port() const { return port_; }
  const std::string& host() const { return host_; }
  bool is_server() const { return server_ != nullptr; }

 private:
  struct Reply;
  // Sends one request and reads its reply; reply_timeout bounds the wait for the answer.
  Reply round_trip(const std::string& op, uint8_t code, const std::vector<std::string>& keys,
                   const Bytes& value, std::chrono::milliseconds server_timeout,
                   std::chrono::milliseconds reply_timeout);
  void connect_locked(std::chrono::milliseconds timeout);
  void disconnect_locked();
  std::string address() const;

  std::string host_;
  int port_ = 0;
  std::unique_ptr<TCPStoreServer> server_;
  std::mutex mu_;  // one request in flight per client socket
  int fd_ = -1;
};

}  // namespace fabric::distributed
