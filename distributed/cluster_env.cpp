// Cluster environment detection (torchrun, OpenMPI mpirun, SLURM, fabric's default) and
// find_free_port. The variable names, defaults and checks follow Lightning's cluster environments.
#include "distributed/cluster_env.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>

#include "tensor/error.h"

extern char** environ;

namespace fabric::distributed {

namespace {

using Env = std::map<std::string, std::string>;

constexpr const char* kDefaultAddress = "127.0.0.1";
constexpr int kDefaultPort = 12910;

const std::string* lookup(const Env& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

bool has(const Env& env, const std::string& name) { return lookup(env, name) != nullptr; }

// The integer in variable `name`, or nullopt when unset. ValueError names the variable and its
// value when it is not an integer in [lo, hi].
std::optional<int> int_var(const Env& env, const std::string& name, int lo, int hi) {
  const std::string* v = lookup(env, name);
  if (!v) return std::nullopt;
  // Shells and schedulers sometimes pad values; surrounding blanks are harmless, anything else is
  // not.
  const size_t b = v->find_first_not_of(" \t\n"), e = v->find_last_not_of(" \t\n");
  const std::string s = b == std::string::npos ? std::string() : v->substr(b, e - b + 1);
  int64_t x = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  FABRIC_CHECK(!s.empty() && ec == std::errc() && ptr == s.data() + s.size(), ValueError,
               "environment variable ", name, "='", *v, "' is not an integer");
  FABRIC_CHECK(x >= lo && x <= hi, ValueError, "environment variable ", name, "=", x,
               " is out of range (expected ", lo, "..", hi, ")");
  return int(x);
}

int int_var_or(const Env& env, const std::string& name, int lo, int hi, int fallback) {
  return int_var(env, name, lo, hi).value_or(fallback);
}

std::optional<int> port_var(const Env& env, const std::string& name) {
  return int_var(env, name, 1, 65535);
}

std::string str_or(const Env& env, const std::string& name, const std::string& fallback) {
  const std::string* v = lookup(env, name);
  return v && !v->empty() ? *v : fallback;
}

constexpr int kMaxInt = 1 << 30;

// The first host of a SLURM node list: "node[01-04,07],gpu5" -> "node01", "a,b" -> "a",
// "rack[1-2]-n[3,5]" -> "rack1-n3".
std::string first_slurm_host(const std::string& nodelist) {
  std::string item;
  int depth = 0;
  for (char ch : nodelist) {
    if (depth == 0 && (ch == ',' || ch == ' ')) {
      if (item.empty()) continue;
      break;
    }
    if (ch == '[') ++depth;
    if (ch == ']') --depth;
    item += ch;
  }
  std::string host;
  for (size_t i = 0; i < item.size();) {
    if (item[i] != '[') {
      host += item[i++];
      continue;
    }
    const size_t close = item.find(']', i);
    FABRIC_CHECK(close != std::string::npos, ValueError, "SLURM_NODELIST='", nodelist,
                 "' has an unterminated '[' (expected a form like node[01-04,07])");
    const std::string range = item.substr(i + 1, close - i - 1);
    const std::string first = range.substr(0, range.find_first_of(",-"));
    FABRIC_CHECK(!first.empty(), ValueError, "SLURM_NODELIST='", nodelist,
                 "' has an empty bracket range (expected a form like node[01-04,07])");
    host += first;
    i = close + 1;
  }
  return host;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

void check_sizes(int devices, int num_nodes) {
  FABRIC_CHECK(devices >= 1, ValueError, "detect_cluster_environment: devices=", devices,
               " (expected >= 1)");
  FABRIC_CHECK(num_nodes >= 1, ValueError, "detect_cluster_environment: num_nodes=", num_nodes,
               " (expected >= 1)");
  FABRIC_CHECK(int64_t(devices) * num_nodes <= kMaxInt, ValueError,
               "detect_cluster_environment: devices (", devices, ") x num_nodes (", num_nodes,
               ") is larger than ", kMaxInt, " processes");
}

void check_ranks(const ClusterEnvironment& c, const char* rank_var, const char* local_var,
                 int devices) {
  FABRIC_CHECK(c.local_rank < devices, ValueError, c.name, " environment: ", local_var, "=",
               c.local_rank, " is not below devices=", devices, " (processes per node)");
  FABRIC_CHECK(c.global_rank < c.world_size, ValueError, c.name, " environment: ", rank_var, "=",
               c.global_rank, " is not below the world size ", c.world_size);
}

ClusterEnvironment torchelastic(int devices, int num_nodes, const Env& env) {
  ClusterEnvironment c;
  c.name = "torchelastic";
  c.creates_processes_externally = true;
  for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK"})
    FABRIC_CHECK(has(env, v), ValueError,
                 "torchrun-style environment (TORCHELASTIC_RUN_ID is set): ", v,
                 " is not set; launch with torchrun or export WORLD_SIZE, RANK and LOCAL_RANK");
  c.world_size = *int_var(env, "WORLD_SIZE", 1, kMaxInt);
  c.global_rank = *int_var(env, "RANK", 0, kMaxInt);
  c.local_rank = *int_var(env, "LOCAL_RANK", 0, kMaxInt);
  const auto group = int_var(env, "GROUP_RANK", 0, kMaxInt);
  c.node_rank = group ? *group : int_var_or(env, "NODE_RANK", 0, kMaxInt, 0);
  c.main_address = str_or(env, "MASTER_ADDR", kDefaultAddress);
  c.main_port = port_var(env, "MASTER_PORT").value_or(kDefaultPort);
  FABRIC_CHECK(devices * num_nodes == c.world_size, ValueError,
               "torchrun-style environment: WORLD_SIZE=", c.world_size, " but devices (", devices,
               ") x num_nodes (", num_nodes, ") = ", devices * num_nodes,
               "; set devices to the launcher's processes per node (torchrun --nproc-per-node) and "
               "num_nodes to "
               "its node count (--nnodes)");
  check_ranks(c, "RANK", "LOCAL_RANK", devices);
  return c;
}

ClusterEnvironment mpi(int devices, int num_nodes, const Env& env) {
  ClusterEnvironment c;
  c.name = "mpi";
  c.creates_processes_externally = true;
  c.world_size = *int_var(env, "OMPI_COMM_WORLD_SIZE", 1, kMaxInt);
  FABRIC_CHECK(has(env, "OMPI_COMM_WORLD_RANK"), ValueError,
               "mpirun environment: OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_RANK is not");
  c.global_rank = *int_var(env, "OMPI_COMM_WORLD_RANK", 0, kMaxInt);
  c.local_rank = int_var_or(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0, kMaxInt, 0);
  const int local_size = int_var_or(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1, kMaxInt, devices);
  c.node_rank = c.global_rank / local_size;
  c.main_address = str_or(env, "MASTER_ADDR", kDefaultAddress);
  if (const auto port = port_var(env, "MASTER_PORT")) {
    c.main_port = *port;
  } else {
    // Every rank derives the same port from the job's identity, so no rank has to tell the others.
    const std::string job =
        str_or(env, "PMIX_NAMESPACE", str_or(env, "OMPI_MCA_ess_base_jobid", ""));
    c.main_port = job.empty() ? kDefaultPort : int(20000 + fnv1a(job) % 40001);
  }
  FABRIC_CHECK(c.world_size == devices * num_nodes, ValueError,
               "mpirun environment: OMPI_COMM_WORLD_SIZE=", c.world_size, " but devices (", devices,
               ") x num_nodes (", num_nodes, ") = ", devices * num_nodes,
               "; start devices x num_nodes ranks (mpirun -np ", devices * num_nodes,
               ") or set devices and num_nodes to match -np");
  FABRIC_CHECK(local_size == devices, ValueError,
               "mpirun environment: OMPI_COMM_WORLD_LOCAL_SIZE=", local_size,
               " ranks on this node but devices=", devices,
               "; place devices ranks per node (mpirun --map-by ppr:", devices,
               ":node) or set devices=", local_size);
  FABRIC_CHECK(num_nodes == 1 || has(env, "MASTER_ADDR"), ValueError,
               "mpirun environment with num_nodes=", num_nodes,
               ": MASTER_ADDR is not set; export the address of rank 0's host to every rank "
               "(mpirun -x MASTER_ADDR=<host>)");
  check_ranks(c, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", devices);
  return c;
}

ClusterEnvironment slurm(int devices, int num_nodes, const Env& env) {
  ClusterEnvironment c;
  c.name = "slurm";
  c.creates_processes_externally = true;
  c.world_size = *int_var(env, "SLURM_NTASKS", 1, kMaxInt);
  c.global_rank = int_var_or(env, "SLURM_PROCID", 0, kMaxInt, 0);
  c.local_rank = int_var_or(env, "SLURM_LOCALID", 0, kMaxInt, 0);
  c.node_rank = int_var_or(env, "SLURM_NODEID", 0, kMaxInt, 0);
  if (const std::string* addr = lookup(env, "MASTER_ADDR"); addr && !addr->empty()) {
    c.main_address = *addr;  // as in the reference, an explicit MASTER_ADDR wins over the node list
  } else {
    const std::string* nodes = lookup(env, "SLURM_NODELIST");
    if (!nodes) nodes = lookup(env, "SLURM_JOB_NODELIST");
    c.main_address = nodes ? first_slurm_host(*nodes) : std::string();
    if (c.main_address.empty()) c.main_address = kDefaultAddress;
  }
  if (const auto port = port_var(env, "MASTER_PORT")) {
    c.main_port = *port;
  } else if (const std::string* job = lookup(env, "SLURM_JOB_ID")) {
    // The reference: the job id's last four digits + 15000, so jobs sharing a node rarely collide.
    const std::string tail = job->size() > 4 ? job->substr(job->size() - 4) : *job;
    int digits = 0;
    auto [ptr, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), digits);
    FABRIC_CHECK(
        !tail.empty() && ec == std::errc() && ptr == tail.data() + tail.size() && tail[0] != '-',
        ValueError, "environment variable SLURM_JOB_ID='", *job, "' is not an integer");
    c.main_port = 15000 + digits;
  } else {
    c.main_port = kDefaultPort;
  }
  if (const auto per_node = int_var(env, "SLURM_NTASKS_PER_NODE", 1, kMaxInt)) {
    FABRIC_CHECK(*per_node == devices, ValueError, "SLURM environment: devices=", devices,
                 " but the job has SLURM_NTASKS_PER_NODE=", *per_node,
                 " (sbatch/srun --ntasks-per-node). Set devices=", *per_node,
                 " or submit with --ntasks-per-node=", devices);
  }
  std::optional<int> nnodes = int_var(env, "SLURM_NNODES", 1, kMaxInt);
  if (!nnodes) nnodes = int_var(env, "SLURM_JOB_NUM_NODES", 1, kMaxInt);
  if (nnodes) {
    FABRIC_CHECK(*nnodes == num_nodes, ValueError, "SLURM environment: num_nodes=", num_nodes,
                 " but the job has SLURM_NNODES=", *nnodes,
                 " (sbatch/srun --nodes). Set num_nodes=", *nnodes,
                 " or submit with --nodes=", num_nodes);
  }
  FABRIC_CHECK(c.world_size == devices * num_nodes, ValueError,
               "SLURM environment: SLURM_NTASKS=", c.world_size, " but devices (", devices,
               ") x num_nodes (", num_nodes, ") = ", devices * num_nodes,
               "; submit with --nodes=", num_nodes, " --ntasks-per-node=", devices,
               " or set devices/num_nodes to match the job");
  check_ranks(c, "SLURM_PROCID", "SLURM_LOCALID", devices);
  return c;
}

ClusterEnvironment lightning(int devices, int num_nodes, const Env& env) {
  ClusterEnvironment c;
  c.name = "lightning";
  c.creates_processes_externally = has(env, "LOCAL_RANK");
  c.local_rank = int_var_or(env, "LOCAL_RANK", 0, kMaxInt, 0);
  const auto group = int_var(env, "GROUP_RANK", 0, kMaxInt);
  c.node_rank = int_var_or(env, "NODE_RANK", 0, kMaxInt, group.value_or(0));
  c.world_size = devices * num_nodes;
  c.global_rank = c.node_rank * devices + c.local_rank;
  c.main_address = str_or(env, "MASTER_ADDR", kDefaultAddress);
  const auto port = port_var(env, "MASTER_PORT");
  // Without MASTER_PORT, ranks would each pick a different free port and never meet.
  if (num_nodes > 1 && !(port && has(env, "MASTER_ADDR")))
    c.rendezvous_problem = "num_nodes=" + std::to_string(num_nodes) +
                           ": set MASTER_ADDR (the address of node 0) and MASTER_PORT to the same values on every "
                           "node (fabric-train --main-address/--main-port)";
  FABRIC_CHECK(port || !c.creates_processes_externally || c.world_size == 1, ValueError,
               "LOCAL_RANK=", c.local_rank,
               " is set (this process was started by a launcher) but MASTER_PORT is not; the "
               "launcher must export "
               "MASTER_PORT to every process");
  if (port) {
    c.main_port = *port;
  } else if (const auto standalone = port_var(env, "STANDALONE_PORT")) {
    c.main_port = *standalone;
  } else {
    c.main_port = find_free_port("0.0.0.0");  // free on every interface, so free on MASTER_ADDR too
  }
  FABRIC_CHECK(c.node_rank < num_nodes, ValueError, "NODE_RANK/GROUP_RANK=", c.node_rank,
               " is not below num_nodes=", num_nodes);
  check_ranks(c, "global rank", "LOCAL_RANK", devices);
  return c;
}

}  // namespace

ClusterEnvironment detect_cluster_environment(int devices, int num_nodes, const Env& env) {
  check_sizes(devices, num_nodes);
  const std::string job_name = str_or(env, "SLURM_JOB_NAME", "");
  if (has(env, "TORCHELASTIC_RUN_ID") ||
      (has(env, "WORLD_SIZE") && has(env, "RANK") && has(env, "LOCAL_RANK")))
    return torchelastic(devices, num_nodes, env);
  // mpirun before SLURM: under an sbatch allocation mpirun's ranks inherit SLURM_* from the batch
  // step (SLURM_PROCID belongs to mpirun's daemon there), while OMPI_COMM_WORLD_* only exist when
  // mpirun started the process.
  if (has(env, "OMPI_COMM_WORLD_SIZE")) return mpi(devices, num_nodes, env);
  if (has(env, "SLURM_NTASKS") && job_name != "bash" && job_name != "interactive")
    return slurm(devices, num_nodes, env);
  return lightning(devices, num_nodes, env);
}

ClusterEnvironment detect_cluster_environment(int devices, int num_nodes) {
  Env env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env.emplace(std::string(*e, size_t(eq - *e)), std::string(eq + 1));
  }
  return detect_cluster_environment(devices, num_nodes, env);
}

int find_free_port(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), "0", &hints, &list);
  FABRIC_CHECK(rc == 0, DistributedError, "find_free_port: cannot resolve host '", host,
               "': ", gai_strerror(rc));
  std::string last_error = "no address";
  int port = 0;
  for (addrinfo* a = list; a != nullptr && port == 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
      port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    } else {
      last_error = std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(list);
  FABRIC_CHECK(port != 0, DistributedError, "find_free_port: cannot bind a port on '", host,
               "': ", last_error);
  return port;
}

}  // namespace fabric::distributed
