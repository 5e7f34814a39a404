// Delivering the writer's batches (log chunks, completions) so that one bad
// row never blocks the others.
//
// A batch goes in one call. When the source refuses it for good
// (StatusCode::invalid_argument: the database refused the data, the server
// answered 400), the batch is split and each row sent alone: the rows that
// go through are delivered, the one that is refused is isolated —
//   a log chunk is dropped and its job recorded as poisoned (the caller
//   fails the job when it completes, saying why);
//   a completion is replaced by a failure that says why it could not be
//   stored; if even that is refused, it is dropped (the lease expires and
//   max-restarts ends the job).
// Any other error (unavailable, internal) stops the delivery: what remains
// in the batch is for the caller to retry, whole, later.
//
// Thread-safety: none; the worker's writer thread calls these.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "host/worker/job_source.h"

namespace quern::worker {

// What happened to an isolated row.
enum class Isolated {
  log_chunk,            // dropped; the job should fail saying `reason`
  completion_replaced,  // stored as a failure saying `reason`
  completion_dropped,   // not stored at all (`reason` says why)
};
// Told about each isolated row: its job, what happened, and why.
using OnIsolated = std::function<void(int64_t job_id, Isolated what, const std::string& reason)>;

// Removes from `batch` every chunk written or isolated (each isolated
// chunk is reported through on_isolated). Returns OK, or the error that
// stopped delivery with the remaining chunks still in `batch`.
Status deliver_logs(JobSource& source, const std::string& worker_id, std::vector<queue::LogChunk>& batch,
                    const OnIsolated& on_isolated);

// Removes from `batch` every completion accepted, refused as stale, or
// isolated; appends the ids the source accepted to `accepted` (and those
// of them that a retry policy re-queued to `retried`). Returns OK, or the
// error that stopped delivery with the rest still in `batch`.
Status deliver_completions(JobSource& source, const std::string& worker_id,
                           std::vector<queue::Completion>& batch, std::vector<int64_t>& accepted,
                           std::vector<int64_t>& retried, const OnIsolated& on_isolated);

// The writer's whole delivery: `logs` (chunks of running and finished jobs)
// and then `completions`, never a job's outcome before its output. When the
// source completes_with_logs() and there are both, they go in one call (one
// round trip, stored all or nothing); when that call is refused for good,
// or the source cannot take them together, apart: deliver_logs, then — once
// every chunk is delivered — deliver_completions. A completion whose job lost
// a chunk for good (in `poisoned`, which on_isolated fills for log chunks)
// is sent as a failure saying why, and leaves `poisoned`. Returns as the
// two above: OK, or the error that stopped delivery with the rest still in
// `logs` and `completions`.
Status deliver_outputs(JobSource& source, const std::string& worker_id, std::vector<queue::LogChunk>& logs,
                       std::vector<queue::Completion>& completions, std::map<int64_t, std::string>& poisoned,
                       std::vector<int64_t>& accepted, std::vector<int64_t>& retried,
                       const OnIsolated& on_isolated);

}  // namespace quern::worker
