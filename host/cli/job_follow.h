// Submitting a job and following it to its end: shared by `quern run` and
// `quern up --examples`.
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

#include "host/common/status.h"
#include "host/config/config.h"
#include "host/jobs/job_builder.h"
#include "host/queue/queue.h"

namespace quern::cli {

// What to run, before it becomes a queue::NewJob.
struct JobRequest {
  std::string code;
  std::string language;  // empty = from the file extension
  std::string args_json = "{}";
  std::string tag;  // empty = the language
  int priority = queue::kDefaultPriority;
  int timeout_s = 0;
  std::string script_path;
};

// Reads a script file into req.code, infers the language from the extension
// (.sh/.bash → bash) when req.language is empty, and takes default args from
// a "# quern:args {...}" line in the file when req.args_json is "{}".
Status load_script_file(const std::filesystem::path& file, JobRequest& req);

// Validates (args is a JSON object, priority 1..100, a language) and makes
// the submission the CLI pushes: no token (role and group rules never
// match); a --priority other than the default counts as set.
StatusOr<jobs::Submission> make_submission(const JobRequest& req);

// The config's rules for jobs the CLI pushes itself: routing, <limits>,
// <queue max-timeout> — the same the server applies to its API's jobs.
jobs::Rules job_rules(const config::Config& cfg);

// make_submission, then the one job builder (host/jobs) with job_rules(cfg).
StatusOr<queue::NewJob> make_job(const JobRequest& req, const config::Config& cfg);

// Exit status for a finished job: 0 success, 1 failure, 124 timeout, 130 canceled.
int exit_code_for(const std::string& state);

// Polls the job until it is finished, copying its log text to `logs` as it
// arrives (nullptr = don't). When `cancel_requested` becomes true the job is
// canceled once. Returns the final record.
StatusOr<queue::JobRecord> follow_job(queue::Queue& q, int64_t id, std::ostream* logs,
                                      const std::function<bool()>& cancel_requested = {});

}  // namespace quern::cli
