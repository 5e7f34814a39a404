// Time points as text, the one form the API, the CLI and the logs share.
#pragma once

#include <chrono>
#include <string>

namespace quern {

// RFC 3339 in UTC with microseconds: "2026-12-07T10:00:00.123456Z".
std::string iso_time(std::chrono::system_clock::time_point t);

}  // namespace quern
