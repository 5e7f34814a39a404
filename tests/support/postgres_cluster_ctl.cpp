// postgres_cluster_ctl start|stop: the ctest fixture around the test
// harness's shared PostgreSQL cluster (tests `postgres_cluster_start` and
// `postgres_cluster_stop`, see tests/CMakeLists.txt).
#include <cstdio>
#include <cstring>

#include "tests/support/test_postgres.h"

int main(int argc, char** argv) {
  if (argc != 2 || (std::strcmp(argv[1], "start") != 0 && std::strcmp(argv[1], "stop") != 0)) {
    std::fprintf(stderr, "usage: %s start|stop\n", argv[0]);
    return 2;
  }
  const bool start = std::strcmp(argv[1], "start") == 0;
  quern::Status s = start ? quern::testing::start_shared_cluster() : quern::testing::stop_shared_cluster();
  if (!s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::printf("shared test PostgreSQL %s\n", start ? "running" : "stopped");
  return 0;
}
