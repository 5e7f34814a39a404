// The test harness's real PostgreSQL: one embedded cluster (host/pg, the same
// code as `quern up`) shared by all test processes of a build, under
// <build>/test-pgdata, started on first use (start is serialized between
// processes with a file lock) and stopped by the ctest fixture
// `postgres_cluster_stop` at the end of the run. Settings favour speed
// (fsync=off); they do not change the queue's semantics.
#pragma once

#include <string>

namespace quern::testing {

// Creates a new, empty, uniquely named database (prefix = a readable hint
// such as the test name), migrates the queue schema into it, and returns its
// libpq URL. Fails the current test (ADD_FAILURE + throws) if PostgreSQL
// cannot be started.
std::string fresh_database_url(const std::string& hint);

// URL of the shared cluster's "postgres" database.
std::string admin_database_url();

// Paths of things the build produced.
std::string quern_binary();      // <build>/bin/quern
std::string plugin_dir();        // <build>/plugins
std::string source_dir();

}  // namespace quern::testing
