// Runs Prometheus's own checker on a scrape: `promtool check metrics` (from
// Debian's `prometheus` package, installed by .ci/install-deps) reads the
// exposition on stdin and reports format errors and lint problems.
#pragma once

#include <cstdio>
#include <fstream>
#include <string>

namespace quern::testing {

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

inline PromtoolResult promtool(const std::string& args, const std::string& input_file) {
  PromtoolResult r;
  const std::string cmd = "promtool " + args + " < '" + input_file + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `promtool check metrics` on this exposition text.
inline PromtoolResult check_metrics(const std::string& text, const std::string& scratch_file) {
  std::ofstream(scratch_file) << text;
  return promtool("check metrics", scratch_file);
}

}  // namespace quern::testing
