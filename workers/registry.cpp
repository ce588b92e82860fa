// The worker classes, by name (STYLE 5): adding an IO model is one file and
// one row here.
#include <algorithm>

#include "workers/worker.hpp"

namespace qilin::workers {

std::unique_ptr<Worker> make_sync_worker(const WorkerSetup&);
std::unique_ptr<Worker> make_threaded_worker(const WorkerSetup&);
std::unique_ptr<Worker> make_epoll_worker(const WorkerSetup&);
std::unique_ptr<Worker> make_io_uring_worker(const WorkerSetup&);

namespace {

constexpr WorkerClass kClasses[] = {
    {"sync", "blocking IO, one connection at a time (UNP 6.1)", make_sync_worker},
    {"threaded", "a thread pool doing blocking IO, idle connections in epoll (UNP 30)",
     make_threaded_worker},
    {"epoll", "one non-blocking event loop per process (UNP 6.3)", make_epoll_worker},
    {"io_uring", "completion-based asynchronous IO on one ring per process (UNP 6.5)",
     make_io_uring_worker},
};

}  // namespace

std::span<const WorkerClass> worker_classes() noexcept { return kClasses; }

const WorkerClass* find_worker_class(std::string_view name) noexcept {
  auto found = std::find_if(std::begin(kClasses), std::end(kClasses),
                            [&](const auto& c) { return c.name == name; });
  return found == std::end(kClasses) ? nullptr : found;
}

std::vector<std::string_view> worker_class_names() {
  std::vector<std::string_view> names;
  for (const auto& c : kClasses) names.push_back(c.name);
  return names;
}

}  // namespace qilin::workers
