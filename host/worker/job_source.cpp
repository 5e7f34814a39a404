#include "host/worker/job_source.h"

#include "host/common/validation.h"

namespace quern::worker {

StatusOr<std::vector<int64_t>> PgJobSource::take_cancels() {
  auto notes = q_->take_notifications();
  if (!notes) return notes.status();
  std::vector<int64_t> ids;
  for (const queue::Notification& n : *notes) {
    if (n.channel != queue::kCancelChannel) continue;
    if (auto id = validation::parse_id(n.payload, "job id"); id) ids.push_back(*id);
  }
  return ids;
}

}  // namespace quern::worker
