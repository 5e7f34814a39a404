// The test harness's real PostgreSQL: one embedded cluster (host/pg, the same
// code as `quern up`) shared by all test processes of a build, under
// <build>/test-pgdata, started on first use (start is serialized between
// processes with a file lock) and stopped by the ctest fixture
// `postgres_cluster_stop` at the end of the run. Settings favour speed
// (fsync=off); they do not change the queue's semantics.
#pragma once

#include <string>

#include "host/common/status.h"

namespace quern::testing {

// Creates a new, empty, uniquely named database (prefix = a readable hint
// such as the test name), migrates the queue schema into it, and returns its
// libpq URL. Fails the current test (ADD_FAILURE + throws) if PostgreSQL
// cannot be started.
std::string fresh_database_url(const std::string& hint);

// Like fresh_database_url but without the queue schema (migration tests).
std::string empty_database_url(const std::string& hint);

// URL of the shared cluster's "postgres" database as the superuser (roles, databases).
std::string admin_database_url();

// The ctest fixture's halves (tests/support/postgres_cluster_ctl.cpp).
// start: starts (or adopts) the shared cluster and drops the databases left by
// earlier runs when it had to start it. stop: drops the test databases and
// stops the cluster; OK when it is not running.
quern::Status start_shared_cluster();
quern::Status stop_shared_cluster();

// Paths of things the build produced.
std::string quern_binary();  // <build>/bin/quern
std::string plugin_dir();    // <build>/plugins
std::string source_dir();

}  // namespace quern::testing
