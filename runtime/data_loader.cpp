// The data loader: the seeded orders (DistributedSampler's, from distributed/, a torch sampler's,
// from runtime/samplers.h, and random windows), batch making, and the prefetch thread that makes
// the same batches ahead of the consumer.
#include "runtime/data_loader.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include "distributed/distributed_sampler.h"
#include "tensor/factory.h"
#include "tensor/random.h"

namespace fabric::data {

// ---- state -------------------------------------------------------------------------------------

std::map<std::string, int64_t> DataLoaderState::to_map() const {
  return {{"epoch", epoch},
          {"batch_in_epoch", batch_in_epoch},
          {"batches_drawn", batches_drawn},
          {"generator_seed", generator_seed},
          {"generator_offset", generator_offset}};
}

DataLoaderState DataLoaderState::from_map(const std::map<std::string, int64_t>& values) {
  auto get = [&](const char* key) {
    auto it = values.find(key);
    FABRIC_CHECK(
        it != values.end(), KeyError, "DataLoaderState::from_map: missing '", key,
        "' (expected epoch, batch_in_epoch, batches_drawn, generator_seed, generator_offset)");
    return it->second;
  };
  return {.epoch = get("epoch"),
          .batch_in_epoch = get("batch_in_epoch"),
          .batches_drawn = get("batches_drawn"),
          .generator_seed = get("generator_seed"),
          .generator_offset = get("generator_offset")};
}

// ---- orders
// --------------------------------------------------------------------------------------

namespace {

void check_sampler(const char* what, int64_t rank, int64_t world_size) {
  FABRIC_CHECK(world_size >= 1, ValueError, what, ": world_size must be >= 1, got ", world_size);
  FABRIC_CHECK(rank >= 0 && rank < world_size, ValueError, what,
               ": rank must be in [0, world_size=", world_size, "), got ", rank);
}

distributed::DistributedSampler make_sampler(int64_t n, const SamplerOptions& opts) {
  return distributed::DistributedSampler(n, {.num_replicas = opts.world_size,
                                             .rank = opts.rank,
                                             .shuffle = opts.shuffle,
                                             .seed = opts.seed,
                                             .drop_last = opts.drop_last});
}

// How a sampler's indices are split over the ranks: Lightning's DistributedSamplerWrapper as
// Fabric.setup_dataloaders makes it for a sampler other than Random/Sequential (shuffle is
// isinstance(sampler, RandomSampler), so off).
SamplerOptions wrapper_split(const DataLoaderOptions& opts) {
  return {.rank = opts.rank, .world_size = opts.world_size, .drop_last = opts.sampler_drop_last};
}

}  // namespace

std::vector<int64_t> distributed_sampler_indices(int64_t n, int64_t epoch,
                                                 const SamplerOptions& opts) {
  check_sampler("distributed_sampler_indices", opts.rank, opts.world_size);
  FABRIC_CHECK(n >= 0 && epoch >= 0, ValueError,
               "distributed_sampler_indices: expects n >= 0 and epoch >= 0, got n=", n,
               ", epoch=", epoch);
  distributed::DistributedSampler sampler = make_sampler(n, opts);
  sampler.set_epoch(epoch);
  return sampler.indices();
}

// ---- the loader
// ----------------------------------------------------------------------------------

namespace {
struct Item {
  Batch batch;
  DataLoaderState after;
  std::exception_ptr error;
};
}  // namespace

struct DataLoader::Impl {
  std::shared_ptr<const Dataset> dataset;
  DataLoaderOptions opts;
  bool windows = false;
  int64_t per_epoch = 0;

  // The maker's position: owned by the worker while it runs, else by next().
  DataLoaderState made;
  std::vector<int64_t> order;  // the epoch order of `order_epoch` under `order_seed`
  int64_t order_epoch = -1;
  int64_t order_seed = 0;

  DataLoaderState given;  // after the last batch handed out
  std::exception_ptr failed;

  std::thread worker;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  bool stop = false;

  ~Impl() { halt(); }

  // The sampler's order for `epoch`, every index checked against the dataset (a sampler without
  // an index_bound() is only checked here); with several ranks this rank's share of it, as
  // Lightning's DistributedSamplerWrapper gives it (DistributedSampler without shuffling over the
  // sampler's list).
  std::vector<int64_t> sampler_order(int64_t epoch) const {
    std::vector<int64_t> out = opts.sampler->epoch_indices(epoch);
    const int64_t n = dataset->size();
    for (size_t i = 0; i < out.size(); ++i)
      FABRIC_CHECK(out[i] >= 0 && out[i] < n, ValueError, "DataLoader: the sampler's index ",
                   out[i], " (epoch ", epoch, ", position ", i, ") is out of range for ",
                   dataset->describe(), " of size ", n, "; expected indices in [0, ", n, ")");
    if (opts.world_size == 1) return out;
    std::vector<int64_t> share;
    for (int64_t position :
         distributed_sampler_indices(static_cast<int64_t>(out.size()), epoch, wrapper_split(opts)))
      share.push_back(out[static_cast<size_t>(position)]);
    return share;
  }

  // The batch at position `s`; advances `s` only when the batch was made.
  Batch make(DataLoaderState& s) {
    const int64_t B = opts.batch_size;
    DataLoaderState n = s;
    Batch batch;
    if (windows) {
      Generator gen(static_cast<uint64_t>(s.generator_seed));
      gen.set_offset(static_cast<uint64_t>(s.generator_offset));
      const Tensor starts =
          randint(0, dataset->size(), {B * opts.world_size}, {.dtype = DType::int64}, &gen);
      batch = dataset->get(
          std::span<const int64_t>(starts.data<int64_t>() + opts.rank * B, static_cast<size_t>(B)));
      n.generator_offset = static_cast<int64_t>(gen.offset());
    } else {
      if (order_epoch != s.epoch || order_seed != s.generator_seed) {
        order = opts.sampler
                    ? sampler_order(s.epoch)
                    : distributed_sampler_indices(dataset->size(), s.epoch,
                                                  {.shuffle = opts.shuffle,
                                                   .seed = static_cast<uint64_t>(s.generator_seed),
                                                   .rank = opts.rank,
                                                   .world_size = opts.world_size,
                                                   .drop_last = opts.sampler_drop_last});
        order_epoch = s.epoch;
        order_seed = s.generator_seed;
      }
      const int64_t start = s.batch_in_epoch * B;
      const int64_t len = std::min<int64_t>(B, static_cast<int64_t>(order.size()) - start);
      batch =
          dataset->get(std::span<const int64_t>(order.data() + start, static_cast<size_t>(len)));
    }
    ++n.batches_drawn;
    if (++n.batch_in_epoch == per_epoch) {
      ++n.epoch;
      n.batch_in_epoch = 0;
    }
    s = n;
    return batch;
  }

  void run() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || static_cast<int64_t>(queue.size()) < opts.prefetch; });
        if (stop) return;
      }
      Item item;
      try {
        item.batch = make(made);
        item.after = made;
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed_here = item.error != nullptr;
      {
        std::lock_guard<std::mutex> lock(mu);
        queue.push_back(std::move(item));
      }
      cv.notify_all();
      if (failed_here) return;  // nothing after a failure is in order; next() rethrows it
    }
  }

  void halt() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
    queue.clear();
    stop = false;
  }
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions opts)
    : impl_(std::make_unique<Impl>()) {
  FABRIC_CHECK(dataset != nullptr, ValueError, "DataLoader: the dataset is null");
  FABRIC_CHECK(opts.batch_size >= 1, ValueError, "DataLoader: batch_size must be >= 1, got ",
               opts.batch_size);
  FABRIC_CHECK(opts.prefetch >= 0, ValueError,
               "DataLoader: prefetch must be >= 0 (0: no thread), got ", opts.prefetch);
  check_sampler("DataLoader", opts.rank, opts.world_size);
  Impl& m = *impl_;
  m.dataset = std::move(dataset);
  m.opts = opts;
  m.windows = m.dataset->access() == Access::windows;
  const int64_t n = m.dataset->size();
  FABRIC_CHECK(n >= 1, ValueError, "DataLoader: ", m.dataset->describe(), " is empty");
  // A batch across all ranks must be countable: batch_size * world_size is the number of windows
  // drawn a step and the divisor of the epoch's batch count.
  FABRIC_CHECK(opts.batch_size <= std::numeric_limits<int64_t>::max() / opts.world_size, ValueError,
               "DataLoader: batch_size ", opts.batch_size, " times world_size ", opts.world_size,
               " overflows a 64-bit count; expected a batch_size below ",
               std::numeric_limits<int64_t>::max() / opts.world_size);
  if (opts.sampler) {
    FABRIC_CHECK(!opts.shuffle, ValueError,
                 "DataLoader: sampler option is mutually exclusive with shuffle (the sampler "
                 "gives the order; expected shuffle=false with a sampler)");
    FABRIC_CHECK(!m.windows, ValueError, "DataLoader: a sampler needs an indexed dataset, but ",
                 m.dataset->describe(), " draws random windows; expected no sampler for it");
    const std::optional<int64_t> bound = opts.sampler->index_bound();
    FABRIC_CHECK(!bound || *bound <= n, ValueError, "DataLoader: the sampler gives indices up to ",
                 bound.value_or(0) - 1, ", out of range for ", m.dataset->describe(), " of size ",
                 n, "; expected a sampler over at most ", n, " examples");
    const int64_t sampled = opts.sampler->size();
    FABRIC_CHECK(sampled >= 1, ValueError,
                 "DataLoader: the sampler gives no index per epoch (its size() is ", sampled,
                 "); expected at least one");
    const int64_t samples =
        opts.world_size == 1 ? sampled : make_sampler(sampled, wrapper_split(opts)).num_samples();
    FABRIC_CHECK(samples >= 1, ValueError, "DataLoader: the sampler's ", sampled,
                 " indices split over world_size ", opts.world_size,
                 " with sampler_drop_last leave none to rank ", opts.rank,
                 "; expected at least world_size indices or sampler_drop_last off");
    m.per_epoch =
        samples / opts.batch_size + (!opts.drop_last && samples % opts.batch_size != 0 ? 1 : 0);
    FABRIC_CHECK(m.per_epoch >= 1, ValueError, "DataLoader: the sampler gives ", samples,
                 " indices per epoch, fewer than batch_size ", opts.batch_size,
                 " with drop_last: no batch at all");
  } else if (m.windows) {
    m.per_epoch =
        std::max<int64_t>(1, m.dataset->epoch_size() / (opts.batch_size * opts.world_size));
  } else {
    const int64_t samples = make_sampler(n, {.rank = opts.rank,
                                             .world_size = opts.world_size,
                                             .drop_last = opts.sampler_drop_last})
                                .num_samples();
    // Rounded up without samples + batch_size - 1, which overflows for a huge batch_size.
    m.per_epoch =
        samples / opts.batch_size + (!opts.drop_last && samples % opts.batch_size != 0 ? 1 : 0);
    FABRIC_CHECK(samples >= 1, ValueError, "DataLoader: ", m.dataset->describe(), " gives rank ",
                 opts.rank, " no example per epoch: its ", n, " examples split over world_size ",
                 opts.world_size,
                 " with sampler_drop_last leave none to a rank; expected at least world_size "
                 "examples or sampler_drop_last off (which repeats examples to fill the ranks)");
    FABRIC_CHECK(m.per_epoch >= 1, ValueError, "DataLoader: ", m.dataset->describe(),
                 " gives rank ", opts.rank, " ", samples, " examples per epoch (world_size ",
                 opts.world_size, "), fewer than batch_size ", opts.batch_size,
                 " with drop_last: no batch at all");
  }
  m.made.generator_seed = static_cast<int64_t>(opts.seed);
  m.given = m.made;
}

DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

namespace {

Batch on_device(Batch batch, const std::optional<Device>& device) {
  if (!device) return batch;
  if (batch.inputs.defined()) batch.inputs = batch.inputs.to(*device);
  if (batch.targets.defined()) batch.targets = batch.targets.to(*device);
  return batch;
}

}  // namespace

Batch DataLoader::next() { return on_device(next_made(), impl_->opts.device); }

Batch DataLoader::next_made() {
  Impl& m = *impl_;
  if (m.failed) std::rethrow_exception(m.failed);
  if (m.opts.prefetch == 0) {
    Batch b = m.make(m.made);
    m.given = m.made;
    return b;
  }
  if (!m.worker.joinable()) m.worker = std::thread([&m] { m.run(); });
  Item item;
  {
    std::unique_lock<std::mutex> lock(m.mu);
    m.cv.wait(lock, [&] { return !m.queue.empty(); });
    item = std::move(m.queue.front());
    m.queue.pop_front();
  }
  m.cv.notify_all();
  if (item.error) {
    m.failed = item.error;
    std::rethrow_exception(item.error);
  }
  m.given = item.after;
  return std::move(item.batch);
}

int64_t DataLoader::batches_per_epoch() const { return impl_->per_epoch; }

DataLoaderState DataLoader::state() const { return impl_->given; }

void DataLoader::set_state(const DataLoaderState& s) {
  Impl& m = *impl_;
  FABRIC_CHECK(
      s.epoch >= 0 && s.batches_drawn >= 0 && s.generator_offset >= 0, ValueError,
      "DataLoader::set_state: epoch, batches_drawn and generator_offset must be >= 0, got ",
      s.epoch, ", ", s.batches_drawn, ", ", s.generator_offset);
  FABRIC_CHECK(s.batch_in_epoch >= 0 && s.batch_in_epoch < m.per_epoch, ValueError,
               "DataLoader::set_state: batch_in_epoch ", s.batch_in_epoch, " is outside [0, ",
               m.per_epoch, ") for ", m.dataset->describe(), " with batch_size ", m.opts.batch_size,
               ": was the state saved ", "with other data or options?");
  m.halt();
  m.made = m.given = s;
  m.failed = nullptr;
}

const Dataset& DataLoader::dataset() const { return *impl_->dataset; }
const std::shared_ptr<const Dataset>& DataLoader::dataset_ptr() const { return impl_->dataset; }
const DataLoaderOptions& DataLoader::options() const { return impl_->opts; }

DataLoader::Iterator DataLoader::begin() {
  Iterator it;
  it.loader_ = this;
  it.remaining_ = batches_per_epoch() - state().batch_in_epoch;
  if (it.remaining_ > 0) it.batch_ = std::make_shared<Batch>(next());
  return it;
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  if (--remaining_ > 0) batch_ = std::make_shared<Batch>(loader_->next());
  return *this;
}

}  // namespace fabric::data
