// The local subprocess launcher (the reference's subprocess script launcher): the process the user
// started becomes local rank 0 and re-runs its own command line N-1 times with LOCAL_RANK set.
//
// Call launch() EARLY, from the main thread, before any OpenMP/oneDNN use and before other threads
// read the environment: it setenv()s MASTER_ADDR, MASTER_PORT, NODE_RANK, WORLD_SIZE, LOCAL_RANK=0
// and (when unset) OMP_NUM_THREADS in this process, and setenv is not thread-safe. The OpenMP
// runtime read OMP_NUM_THREADS when the process started, so when launch() chooses the count it
// also lowers this process's to it with omp_set_num_threads, which holds for the calling thread
// (and the parallel regions it starts); join()/kill_all() put the previous count back. The children
// are tied to the thread that called launch() (PR_SET_PDEATHSIG fires when that thread ends), so it
// must live as long as the run — the main thread does.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fabric::distributed {

struct LaunchOptions {
  int nprocs = 1;  // processes on this node
  int num_nodes = 1;
  int node_rank = 0;
  std::string main_address = "127.0.0.1";
  int main_port = 0;  // 0: pick a free port (single node only: other nodes could not know it)
  // Command line to re-run; empty: this process's own (/proc/self/exe with /proc/self/cmdline's
  // args). A bare argv[0] is looked up in PATH.
  std::vector<std::string> argv;
  // Added to the children's environment (not this process's); the launcher's own variables
  // (LOCAL_RANK, WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT) and RANK may not be set here.
  // RANK is not exported (ranks derive it from NODE_RANK * nprocs + LOCAL_RANK, as in the
  // reference) and an inherited one is removed: with WORLD_SIZE and LOCAL_RANK it would read as a
  // torchrun environment in which every rank has the same global rank.
  std::map<std::string, std::string> extra_env;
};

// Spawns local ranks 1..nprocs-1 and watches them. If a child exits non-zero or is killed while
// rank 0 is still working, the watchdog SIGKILLs the other children, says on stderr which local
// rank failed and how, and ends this process with _exit(status) (the child's exit code, or
// 128+signal): rank 0 may be blocked inside a collective with the dead rank and could never return
// on its own. A child killed by a signal ends the run at once; one that exited with an error
// status does so after a second (kill_all()'s grace) unless rank 0 calls kill_all() or join() in
// the meantime: rank 0 may be failing at the same moment with the error that caused the child's
// (peers of a rank whose collective timed out fail "peer closed" right away), and that error must
// not be hidden. When rank 0 fails (kill_all()), a child killed by a signal still decides; a child
// that exited with an error status is said, and rank 0's error is reported after it.
class SubprocessLauncher {
 public:
  explicit SubprocessLauncher(LaunchOptions options);
  ~SubprocessLauncher();  // kills and reaps children that join()/kill_all() did not collect
  SubprocessLauncher(const SubprocessLauncher&) = delete;
  SubprocessLauncher& operator=(const SubprocessLauncher&) = delete;

  // Exports the environment to this process, spawns local ranks 1..nprocs-1 (fork + execve) and
  // starts the watchdog. Throws ValueError on bad options and DistributedError when a child cannot
  // be started (the ones already started are killed first), or when LOCAL_RANK is already set by
  // someone else (this process is itself a launched rank: launching again would multiply
  // processes).
  void launch();
  // Rank 0 finished normally: stops the watchdog (so it cannot _exit), waits for every child, and
  // returns the first failure's status in the order they were seen (0 when all succeeded). On a
  // failure the children still running are killed. By default it waits as long as they run (as
  // the reference's rank 0 leaves its children to finish: a rank may work alone for long, writing
  // or evaluating, with no collective to time out); with a timeout, TimeoutError (after killing
  // them) when children are still running then. Calling it again returns the same status (or
  // throws the same error). join() and kill_all() (and a launch() that throws) put back the
  // variables launch() changed: the run is over, and a Fabric created later in this process must
  // not take itself for a launched rank (LOCAL_RANK set) and wait for peers that never come.
  int join(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());
  // Rank 0 failed: stops the watchdog, SIGKILLs every child and reaps them. Rank 0's failure may
  // be a child's consequence (a collective with a rank that died breaks at once, before the
  // watchdog sees the death), or its cause (the child's collective with rank 0 fails in turn), and
  // nothing here tells which. A child killed by a signal (now or within a second) is the cause: it
  // ends this process as the watchdog would (its status, the others killed), so the run's status
  // does not depend on which of the two noticed first. A child that exited with an error status
  // (now or within a second) is said on stderr ("local rank 0 failed, and local rank 1 (pid P)
  // exited with status 1 while it did ... local rank 0's error follows") and this returns, so that
  // rank 0's own error is reported too: the root cause, whichever rank's it is, is never hidden.
  void kill_all();
  // The pids of local ranks 1..nprocs-1, in rank order (empty before launch()).
  std::vector<pid_t> child_pids() const;
  // The port the run uses (the picked one when main_port was 0); 0 before launch().
  int main_port() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// torchrun style, for tools and tests: runs all nprocs local ranks (LOCAL_RANK 0..nprocs-1) as
// children of this process, which only watches and whose own environment is left alone. Returns the
// first failure's status (exit code, or 128+signal) after killing the others, or 0 when all
// succeeded; TimeoutError (after killing them all) when they run past the timeout.
int run_all_and_wait(const LaunchOptions& options, std::chrono::milliseconds timeout);

}  // namespace fabric::distributed
