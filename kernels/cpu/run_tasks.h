// run_tasks: a loop over independent tasks, on the OpenMP pool only when asked. Not the same as
// `#pragma omp parallel for if (parallel)`: with the condition false, GCC still enters a parallel
// region of one thread, ~340 ns on the development machine, which small ops (an index_select of a
// few rows) would pay on every call.
#pragma once
#include <omp.h>

#include <cstdint>

namespace fabric::cpu {

// Runs task(t) for t in [0, tasks): statically split over the OpenMP threads when `parallel` and
// there is more than one task, else serially on the calling thread.
template <typename Fn>
void run_tasks(int64_t tasks, bool parallel, const Fn& task) {
  if (parallel && tasks > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) task(t);
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  }
}

// run_tasks for tasks that need a scratch buffer: each thread makes one with make_scratch() and
// hands it to every task it runs, as task(t, scratch). The split over the threads is run_tasks'
// (the same static schedule as `#pragma omp parallel` + `#pragma omp for schedule(static)`).
template <typename MakeScratch, typename Fn>
void run_tasks_with_scratch(int64_t tasks, bool parallel, const MakeScratch& make_scratch,
                            const Fn& task) {
  if (parallel && tasks > 1) {
#pragma omp parallel
    {
      auto scratch = make_scratch();
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tasks; ++t) task(t, scratch);
    }
  } else {
    auto scratch = make_scratch();
    for (int64_t t = 0; t < tasks; ++t) task(t, scratch);
  }
}

// Runs body(thread, threads) on every thread of an OpenMP team when `parallel`, else once on the
// calling thread as body(0, 1): for work that splits itself by the thread's number.
template <typename Fn>
void run_parallel_region(bool parallel, const Fn& body) {
  if (parallel) {
#pragma omp parallel
    body(int64_t{omp_get_thread_num()}, int64_t{omp_get_num_threads()});
  } else {
    body(int64_t{0}, int64_t{1});
  }
}

}  // namespace fabric::cpu
