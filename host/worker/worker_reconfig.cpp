// Worker reconfiguration while running: set_tags, set_slots (worker.h).
// The claimer and writer threads pick the changes up from the shared state
// (worker_state.h): the claimer re-LISTENs and claims with the new tags, the
// writer rewrites the registry row.
#include <algorithm>

#include "host/worker/worker.h"
#include "host/worker/worker_state.h"

namespace quern::worker {

// A dedicated worker also serves its scripts' own tags; the server routes
// runs of such a script there while a live worker serves that tag.
void add_dedicated_tags(std::vector<std::string>& tags, const std::vector<std::string>& scripts) {
  for (const auto& path : scripts) {
    const std::string tag = dedicated_tag(path);
    if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.push_back(tag);
  }
}

Status Worker::set_tags(std::vector<std::string> tags) {
  add_dedicated_tags(tags, options_.dedicated_scripts);
  if (tags.empty()) return Status::error("worker " + options_.worker_id + ": no tags to serve");
  std::lock_guard lock(state_->mu);
  if (state_->stopping) return Status::error("worker " + options_.worker_id + " is stopping");
  if (tags == state_->tags) return Status::ok();
  state_->tags = tags;
  state_->tags_version++;
  state_->registry_info.tags = std::move(tags);
  state_->registry_update = state_->registry_info;
  state_->claimer_cv.notify_all();
  state_->writer_cv.notify_all();
  if (state_->claim_source) state_->claim_source->interrupt();  // re-LISTENs now, not after its wait
  return Status::ok();
}

Status Worker::set_slots(int slots) {
  if (slots < 1 || slots > 1024)
    return Status::error("worker " + options_.worker_id + ": slots must be 1..1024, got " +
                         std::to_string(slots));
  int to_start = 0;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopping) return Status::error("worker " + options_.worker_id + " is stopping");
    if (slots == state_->slot_limit) return Status::ok();
    to_start = std::max(0, slots - state_->slot_threads);
    state_->slot_threads += to_start;
    state_->slots_alive += to_start;  // counted now, so a stop meanwhile waits for them
    state_->slot_limit = slots;
    state_->slots_changed(options_.metrics);
    state_->registry_info.slots = slots;
    state_->registry_update = state_->registry_info;
    state_->claimer_cv.notify_all();
    state_->writer_cv.notify_all();
    if (state_->claim_source) state_->claim_source->interrupt();  // claims for the new slots now
  }
  for (int i = 0; i < to_start; ++i) state_->start_slot();
  return Status::ok();
}

std::vector<std::string> Worker::tags() const {
  std::lock_guard lock(state_->mu);
  return state_->tags;
}

}  // namespace quern::worker
