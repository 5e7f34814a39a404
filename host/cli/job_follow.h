// Submitting a job and following it to its end: shared by `quern run` and
// `quern up --examples`.
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

#include "host/common/status.h"
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

// Validates (args is a JSON object, priority 1..100, language known) and
// builds the queue job.
StatusOr<queue::NewJob> make_job(const JobRequest& req);

// Exit status for a finished job: 0 success, 1 failure, 124 timeout, 130 canceled.
int exit_code_for(const std::string& state);

// Polls the job until it is finished, copying its log text to `logs` as it
// arrives (nullptr = don't). When `cancel_requested` becomes true the job is
// canceled once. Returns the final record.
StatusOr<queue::JobRecord> follow_job(queue::Queue& q, int64_t id, std::ostream* logs,
                                      const std::function<bool()>& cancel_requested = {});

}  // namespace quern::cli
