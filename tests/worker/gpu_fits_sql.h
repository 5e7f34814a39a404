// The claim's GPU rule (quern.gpu_fits in host/queue/migrations.cpp) asked
// of a test database, for tests that check the host's and the plugin's view
// of GPU requests against what the claim really does.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "host/jobs/job_builder.h"
#include "host/queue/queue.h"
#include "host/worker/gpu_capacity.h"
#include "tests/support/test_postgres.h"

namespace quern::testing {

// Whether a claimer with this capacity, all of it free, may claim the request.
inline bool claim_would_fit(const worker::GpuCapacity& c, const jobs::GpuRequest& r) {
  static std::unique_ptr<queue::Queue> q = [] {
    auto opened = queue::Queue::connect(fresh_database_url("gpu_fits_sql"));
    EXPECT_TRUE(opened.is_ok()) << opened.message();
    return opened.is_ok() ? std::move(opened).value() : nullptr;
  }();
  if (!q) return false;
  std::string devices = "{";
  for (size_t i = 0; i < c.memory_mb.size(); ++i) devices += (i ? "," : "") + std::to_string(c.memory_mb[i]);
  auto fits =
      q->exec_scalar("SELECT quern.gpu_fits(" + std::to_string(r.gpus) + ", " + std::to_string(r.memory_mb) +
                     ", " + std::to_string(c.memory_mb.size()) + ", '" + devices + "}')");
  EXPECT_TRUE(fits.is_ok()) << fits.message();
  return fits.is_ok() && *fits == "t";
}

}  // namespace quern::testing
