// Cluster environment detection from torchrun, SLURM, OpenMPI and fabric's own variables, through
// the map overload (no setenv), including every error case.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "distributed/cluster_env.h"
#include "tensor/error.h"

namespace fd = fabric::distributed;
using Env = std::map<std::string, std::string>;

namespace {

// The message of the ValueError that detection throws, or "" when it does not throw one.
std::string value_error(int devices, int num_nodes, const Env& env) {
  try {
    fd::detect_cluster_environment(devices, num_nodes, env);
  } catch (const fabric::ValueError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(ClusterEnv, TorchrunVariables) {
  const Env env = {{"TORCHELASTIC_RUN_ID", "abc"},
                   {"WORLD_SIZE", "8"},
                   {"RANK", "5"},
                   {"LOCAL_RANK", "1"},
                   {"GROUP_RANK", "1"},
                   {"MASTER_ADDR", "10.1.2.3"},
                   {"MASTER_PORT", "29500"},
                   {"NODE_RANK", "7"}};  // GROUP_RANK wins over NODE_RANK
  const auto c = fd::detect_cluster_environment(4, 2, env);
  EXPECT_EQ(c.name, "torchelastic");
  EXPECT_TRUE(c.creates_processes_externally);
  EXPECT_EQ(c.world_size, 8);
  EXPECT_EQ(c.global_rank, 5);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.node_rank, 1);
  EXPECT_EQ(c.main_address, "10.1.2.3");
  EXPECT_EQ(c.main_port, 29500);
}

TEST(ClusterEnv, TorchrunStyleWithoutRunIdAndDefaults) {
  // WORLD_SIZE, RANK and LOCAL_RANK together mean torchrun-style even without TORCHELASTIC_RUN_ID.
  const auto c = fd::detect_cluster_environment(
      2, 1, {{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_RANK", "1"}});
  EXPECT_EQ(c.name, "torchelastic");
  EXPECT_EQ(c.main_address, "127.0.0.1");
  EXPECT_EQ(c.main_port, 12910);
  EXPECT_EQ(c.node_rank, 0);
  const auto n = fd::detect_cluster_environment(
      1, 2, {{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_RANK", "0"}, {"NODE_RANK", "1"}});
  EXPECT_EQ(n.node_rank, 1);
}

TEST(ClusterEnv, TorchrunErrors) {
  std::string m = value_error(2, 1, {{"WORLD_SIZE", "4"}, {"RANK", "0"}, {"LOCAL_RANK", "0"}});
  EXPECT_TRUE(contains(m, "WORLD_SIZE=4") && contains(m, "devices (2)") &&
              contains(m, "num_nodes (1)"))
      << m;
  m = value_error(2, 1, {{"TORCHELASTIC_RUN_ID", "x"}, {"RANK", "0"}, {"LOCAL_RANK", "0"}});
  EXPECT_TRUE(contains(m, "WORLD_SIZE is not set")) << m;
  m = value_error(2, 1, {{"WORLD_SIZE", "2"}, {"RANK", "two"}, {"LOCAL_RANK", "0"}});
  EXPECT_TRUE(contains(m, "RANK='two'")) << m;
  m = value_error(2, 1, {{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"LOCAL_RANK", "0"}});
  EXPECT_TRUE(contains(m, "RANK=2")) << m;
  m = value_error(2, 1, {{"WORLD_SIZE", "2"}, {"RANK", "-1"}, {"LOCAL_RANK", "0"}});
  EXPECT_TRUE(contains(m, "RANK=-1") && contains(m, "out of range")) << m;
  m = value_error(
      2, 1, {{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", "0"}, {"MASTER_PORT", "99999"}});
  EXPECT_TRUE(contains(m, "MASTER_PORT=99999")) << m;
  m = value_error(
      2, 1, {{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", "0"}, {"MASTER_PORT", "12a"}});
  EXPECT_TRUE(contains(m, "MASTER_PORT='12a'")) << m;
  m = value_error(2, 1, {{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", ""}});
  EXPECT_TRUE(contains(m, "LOCAL_RANK=''")) << m;
}

TEST(ClusterEnv, Slurm) {
  const Env env = {{"SLURM_NTASKS", "8"},
                   {"SLURM_PROCID", "6"},
                   {"SLURM_LOCALID", "2"},
                   {"SLURM_NODEID", "1"},
                   {"SLURM_NODELIST", "gpu[07-08,11]"},
                   {"SLURM_JOB_ID", "1234567"},
                   {"SLURM_NTASKS_PER_NODE", "4"},
                   {"SLURM_NNODES", "2"},
                   {"SLURM_JOB_NAME", "train"}};
  const auto c = fd::detect_cluster_environment(4, 2, env);
  EXPECT_EQ(c.name, "slurm");
  EXPECT_TRUE(c.creates_processes_externally);
  EXPECT_EQ(c.world_size, 8);
  EXPECT_EQ(c.global_rank, 6);
  EXPECT_EQ(c.local_rank, 2);
  EXPECT_EQ(c.node_rank, 1);
  EXPECT_EQ(c.main_address, "gpu07");
  EXPECT_EQ(c.main_port, 4567 + 15000);

  Env e = env;
  e["MASTER_PORT"] = "30000";
  e["SLURM_NODELIST"] = "alpha,beta";
  auto d = fd::detect_cluster_environment(4, 2, e);
  EXPECT_EQ(d.main_port, 30000);
  EXPECT_EQ(d.main_address, "alpha");
  e.erase("MASTER_PORT");
  e.erase("SLURM_JOB_ID");
  e["SLURM_NODELIST"] = "rack[2-3]-n[05,09]";
  d = fd::detect_cluster_environment(4, 2, e);
  EXPECT_EQ(d.main_port, 12910);
  EXPECT_EQ(d.main_address, "rack2-n05");
  e["SLURM_JOB_ID"] = "42";
  e["SLURM_NODELIST"] = "single";
  e["MASTER_ADDR"] = "10.0.0.9";  // an explicit MASTER_ADDR wins, as in the reference
  d = fd::detect_cluster_environment(4, 2, e);
  EXPECT_EQ(d.main_port, 15042);
  EXPECT_EQ(d.main_address, "10.0.0.9");
}

TEST(ClusterEnv, SlurmInteractiveJobsAreNotSlurm) {
  for (const char* name : {"bash", "interactive"}) {
    const auto c =
        fd::detect_cluster_environment(1, 1, {{"SLURM_NTASKS", "4"}, {"SLURM_JOB_NAME", name}});
    EXPECT_EQ(c.name, "lightning") << name;
    EXPECT_FALSE(c.creates_processes_externally);
  }
}

TEST(ClusterEnv, SlurmMismatchesSayWhatToChange) {
  const Env base = {{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"},    {"SLURM_LOCALID", "0"},
                    {"SLURM_NODEID", "0"}, {"SLURM_NODELIST", "n1"}, {"SLURM_NTASKS_PER_NODE", "4"},
                    {"SLURM_NNODES", "2"}};
  std::string m = value_error(2, 2, base);
  EXPECT_TRUE(contains(m, "devices=2") && contains(m, "SLURM_NTASKS_PER_NODE=4") &&
              contains(m, "Set devices=4"))
      << m;
  m = value_error(4, 1, base);
  EXPECT_TRUE(contains(m, "num_nodes=1") && contains(m, "SLURM_NNODES=2") &&
              contains(m, "Set num_nodes=2"))
      << m;
  Env e = base;
  e.erase("SLURM_NTASKS_PER_NODE");
  e["SLURM_NTASKS"] = "6";
  m = value_error(4, 2, e);
  EXPECT_TRUE(contains(m, "SLURM_NTASKS=6") && contains(m, "--ntasks-per-node=4")) << m;
  e = base;
  e["SLURM_PROCID"] = "x1";
  m = value_error(4, 2, e);
  EXPECT_TRUE(contains(m, "SLURM_PROCID='x1'")) << m;
  e = base;
  e["SLURM_JOB_ID"] = "12ab";
  m = value_error(4, 2, e);
  EXPECT_TRUE(contains(m, "SLURM_JOB_ID='12ab'")) << m;
  e = base;
  e["SLURM_NODELIST"] = "node[01-04";
  m = value_error(4, 2, e);
  EXPECT_TRUE(contains(m, "SLURM_NODELIST='node[01-04'")) << m;
}

TEST(ClusterEnv, OpenMpi) {
  const Env env = {{"OMPI_COMM_WORLD_SIZE", "4"},
                   {"OMPI_COMM_WORLD_RANK", "3"},
                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                   {"PMIX_NAMESPACE", "prterun-host-12345@1"},
                   {"MASTER_ADDR", "node0"}};
  const auto c = fd::detect_cluster_environment(2, 2, env);
  EXPECT_EQ(c.name, "mpi");
  EXPECT_TRUE(c.creates_processes_externally);
  EXPECT_EQ(c.world_size, 4);
  EXPECT_EQ(c.global_rank, 3);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.node_rank, 1);
  EXPECT_EQ(c.main_address, "node0");
  EXPECT_GE(c.main_port, 20000);
  EXPECT_LE(c.main_port, 60000);
  // Every rank of the job derives the same port; another job gets (almost surely) another one.
  Env other_rank = env;
  other_rank["OMPI_COMM_WORLD_RANK"] = "0";
  other_rank["OMPI_COMM_WORLD_LOCAL_RANK"] = "0";
  EXPECT_EQ(fd::detect_cluster_environment(2, 2, other_rank).main_port, c.main_port);
  Env other_job = env;
  other_job["PMIX_NAMESPACE"] = "prterun-host-12346@1";
  EXPECT_NE(fd::detect_cluster_environment(2, 2, other_job).main_port, c.main_port);
  Env jobid = env;
  jobid.erase("PMIX_NAMESPACE");
  jobid["OMPI_MCA_ess_base_jobid"] = "3735552001";
  const int p = fd::detect_cluster_environment(2, 2, jobid).main_port;
  EXPECT_TRUE(p >= 20000 && p <= 60000) << p;
  jobid["MASTER_PORT"] = "23456";
  EXPECT_EQ(fd::detect_cluster_environment(2, 2, jobid).main_port, 23456);
  // One node, nothing else known: loopback and the default port.
  const auto one = fd::detect_cluster_environment(2, 1,
                                                  {{"OMPI_COMM_WORLD_SIZE", "2"},
                                                   {"OMPI_COMM_WORLD_RANK", "1"},
                                                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(one.main_address, "127.0.0.1");
  EXPECT_EQ(one.main_port, 12910);
  EXPECT_EQ(one.node_rank, 0);
}

TEST(ClusterEnv, OpenMpiTakesPrecedenceOverSlurmVariables) {
  // mpirun inside an sbatch allocation: the batch step's SLURM_* are inherited but describe
  // mpirun's daemon.
  const auto c = fd::detect_cluster_environment(2, 1,
                                                {{"SLURM_NTASKS", "1"},
                                                 {"SLURM_PROCID", "0"},
                                                 {"OMPI_COMM_WORLD_SIZE", "2"},
                                                 {"OMPI_COMM_WORLD_RANK", "1"},
                                                 {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_EQ(c.name, "mpi");
  EXPECT_EQ(c.global_rank, 1);
}

TEST(ClusterEnv, OpenMpiErrors) {
  const Env base = {{"OMPI_COMM_WORLD_SIZE", "4"},
                    {"OMPI_COMM_WORLD_RANK", "0"},
                    {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                    {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                    {"MASTER_ADDR", "n0"}};
  std::string m = value_error(2, 1, base);
  EXPECT_TRUE(contains(m, "OMPI_COMM_WORLD_SIZE=4") && contains(m, "mpirun -np 2")) << m;
  m = value_error(4, 1, base);
  EXPECT_TRUE(contains(m, "OMPI_COMM_WORLD_LOCAL_SIZE=2") && contains(m, "ppr:4:node")) << m;
  Env e = base;
  e.erase("MASTER_ADDR");
  m = value_error(2, 2, e);
  EXPECT_TRUE(contains(m, "MASTER_ADDR")) << m;
  e = base;
  e.erase("OMPI_COMM_WORLD_RANK");
  m = value_error(2, 2, e);
  EXPECT_TRUE(contains(m, "OMPI_COMM_WORLD_RANK is not")) << m;
  e = base;
  e["OMPI_COMM_WORLD_SIZE"] = "4.0";
  m = value_error(2, 2, e);
  EXPECT_TRUE(contains(m, "OMPI_COMM_WORLD_SIZE='4.0'")) << m;
}

TEST(ClusterEnv, DefaultLauncherParentAndChildren) {
  // The process a user started: no LOCAL_RANK, a free port is chosen for the children.
  const auto parent = fd::detect_cluster_environment(4, 1, {});
  EXPECT_EQ(parent.name, "lightning");
  EXPECT_FALSE(parent.creates_processes_externally);
  EXPECT_EQ(parent.world_size, 4);
  EXPECT_EQ(parent.global_rank, 0);
  EXPECT_EQ(parent.main_address, "127.0.0.1");
  EXPECT_GT(parent.main_port, 0);
  EXPECT_LE(parent.main_port, 65535);
  // A child re-executed by the launcher.
  const auto child = fd::detect_cluster_environment(
      4, 2,
      {{"LOCAL_RANK", "3"},
       {"NODE_RANK", "1"},
       {"MASTER_ADDR", "10.0.0.1"},
       {"MASTER_PORT", "40000"},
       {"WORLD_SIZE", "8"}});  // WORLD_SIZE alone (no RANK) is not torchrun
  EXPECT_EQ(child.name, "lightning");
  EXPECT_TRUE(child.creates_processes_externally);
  EXPECT_EQ(child.world_size, 8);
  EXPECT_EQ(child.local_rank, 3);
  EXPECT_EQ(child.node_rank, 1);
  EXPECT_EQ(child.global_rank, 7);
  EXPECT_EQ(child.main_address, "10.0.0.1");
  EXPECT_EQ(child.main_port, 40000);
  const auto group = fd::detect_cluster_environment(
      2, 2, {{"GROUP_RANK", "1"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "40000"}});
  EXPECT_EQ(group.node_rank, 1);
  EXPECT_EQ(group.global_rank, 2);
  EXPECT_EQ(fd::detect_cluster_environment(2, 1, {{"STANDALONE_PORT", "31337"}}).main_port, 31337);
}

TEST(ClusterEnv, DefaultErrors) {
  std::string m = value_error(2, 1, {{"LOCAL_RANK", "2"}, {"MASTER_PORT", "40000"}});
  EXPECT_TRUE(contains(m, "LOCAL_RANK=2") && contains(m, "devices=2")) << m;
  m = value_error(2, 1, {{"LOCAL_RANK", "1"}});
  EXPECT_TRUE(contains(m, "MASTER_PORT is not")) << m;
  // Several nodes without the rendezvous variables: detected (the reference constructs Fabric),
  // the problem reported by launch().
  EXPECT_EQ(value_error(2, 2, {}), "");
  m = fd::detect_cluster_environment(2, 2, {}).rendezvous_problem;
  EXPECT_TRUE(contains(m, "MASTER_ADDR") && contains(m, "MASTER_PORT")) << m;
  EXPECT_EQ(fd::detect_cluster_environment(2, 2, {{"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}).rendezvous_problem, "");
  m = value_error(2, 2, {{"NODE_RANK", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1234"}});
  EXPECT_TRUE(contains(m, "NODE_RANK/GROUP_RANK=2")) << m;
  m = value_error(2, 1, {{"NODE_RANK", "zero"}});
  EXPECT_TRUE(contains(m, "NODE_RANK='zero'")) << m;
  m = value_error(2, 1, {{"LOCAL_RANK", "1"}, {"MASTER_PORT", "0"}});
  EXPECT_TRUE(contains(m, "MASTER_PORT=0")) << m;
  m = value_error(0, 1, {});
  EXPECT_TRUE(contains(m, "devices=0")) << m;
  m = value_error(1, -1, {});
  EXPECT_TRUE(contains(m, "num_nodes=-1")) << m;
}

TEST(ClusterEnv, ProcessEnvironmentOverloadReadsGetenv) {
  // Only variables this test owns: NODE_RANK is read by the default environment and unlikely to be
  // set in a test run; restore whatever was there.
  const char* old = ::getenv("NODE_RANK");
  const std::string saved = old ? old : "";
  if (::getenv("TORCHELASTIC_RUN_ID") || ::getenv("SLURM_NTASKS") ||
      ::getenv("OMPI_COMM_WORLD_SIZE") || ::getenv("LOCAL_RANK") || ::getenv("MASTER_PORT"))
    GTEST_SKIP() << "the test runs inside a launcher's environment";
  ::setenv("NODE_RANK", "not-a-number", 1);
  std::string m;
  try {
    fd::detect_cluster_environment(1, 1);
  } catch (const fabric::ValueError& e) {
    m = e.what();
  }
  if (old) {
    ::setenv("NODE_RANK", saved.c_str(), 1);
  } else {
    ::unsetenv("NODE_RANK");
  }
  EXPECT_TRUE(contains(m, "NODE_RANK='not-a-number'")) << m;
}

TEST(ClusterEnv, FindFreePortIsBindable) {
  const int port = fd::find_free_port();
  ASSERT_GT(port, 0);
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
  ::close(s);
  EXPECT_THROW(fd::find_free_port("256.300.1.1"), fabric::DistributedError);
}
