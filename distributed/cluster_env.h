// Cluster environments: who started this process and where rank 0's store lives, read from the
// variables torchrun, SLURM, OpenMPI's mpirun or fabric's own launcher export.
#pragma once
#include <map>
#include <string>

namespace fabric::distributed {

struct ClusterEnvironment {
  std::string name;                           // "torchelastic" | "slurm" | "mpi" | "lightning"
  bool creates_processes_externally = false;  // true when the ranks were started by someone else
  std::string main_address;                   // MASTER_ADDR
  int main_port = 0;                          // MASTER_PORT
  int world_size = 1, global_rank = 0, local_rank = 0, node_rank = 0;
  // Why the ranks could not meet (several nodes without MASTER_ADDR/MASTER_PORT): empty when they
  // can. Reported when launching rather than at detection, as the reference constructs Fabric then.
  std::string rendezvous_problem;
};

// devices = processes per node requested, num_nodes = nodes requested. Detection order:
// torchrun-style variables, OpenMPI mpirun (OMPI_COMM_WORLD_*), SLURM, then fabric's default
// ("lightning"). ValueError when a variable is not a valid integer or the environment disagrees
// with devices/num_nodes.
ClusterEnvironment detect_cluster_environment(int devices, int num_nodes);
// The same, reading `env` instead of the process environment.
ClusterEnvironment detect_cluster_environment(int devices, int num_nodes,
                                              const std::map<std::string, std::string>& env);

// A TCP port that is free on `host` right now (bind port 0, read it, close). Another process may
// take it before it is used: fine for one launcher handing it to its children. DistributedError
// when `host` cannot be bound.
int find_free_port(const std::string& host = "127.0.0.1");

}  // namespace fabric::distributed
