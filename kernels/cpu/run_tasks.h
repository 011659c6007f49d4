// run_tasks: a loop over independent tasks, on the OpenMP pool only when asked. Not the same as
// `#pragma omp parallel for if (parallel)`: with the condition false, GCC still enters a parallel
// region of one thread, ~340 ns on the development machine, which small ops (an index_select of a
// few rows) would pay on every call.
#pragma once
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

}  // namespace fabric::cpu
