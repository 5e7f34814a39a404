// Routing rules on the command line: `quern route test`, and the routing of
// jobs that the CLI pushes to the database itself (`quern run` without
// --server, `quern up --examples`). The server routes the jobs of its API.
#pragma once

#include <vector>

#include "host/cli/job_follow.h"
#include "host/common/status.h"
#include "host/routing/routing.h"

namespace quern::cli {

// Sets job.tag and job.priority by the rules (docs/ROUTING.md). There is no
// token here, so rules on role or group never match. An explicit --tag wins
// unless a rule forces; so does a --priority other than the default.
Status route_local_job(const std::vector<routing::Rule>& rules, const JobRequest& req, queue::NewJob& job);

}  // namespace quern::cli
