#include "host/worker/job_source.h"

#include "host/common/validation.h"

namespace quern::worker {

StatusOr<std::vector<int64_t>> PgJobSource::wait_for_cancels(std::chrono::milliseconds timeout) {
  auto notes = q_->wait_for_notifications(timeout);
  if (!notes) return notes.status();
  std::vector<int64_t> ids;
  for (const queue::Notification& n : *notes) {
    if (n.channel != queue::kCancelChannel) continue;
    if (auto id = validation::parse_id(n.payload, "job id"); id) ids.push_back(*id);
  }
  return ids;
}

}  // namespace quern::worker
