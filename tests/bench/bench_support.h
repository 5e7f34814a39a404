// What the benchmark programs share: the peers' PostgreSQL (docs/BENCHMARKS.md,
// "How to reproduce"), a fresh database per run, polling with a deadline, and
// percentiles. Header-only: each benchmark is one program.
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

namespace quern::bench {

// libpq URL of database `db` on the server at host (a socket folder) and port.
inline std::string database_url(const std::string& host, int port, const std::string& db) {
  return "postgresql:///" + db + "?host=" + host + "&port=" + std::to_string(port) + "&user=postgres";
}

// Drops `db` (disconnecting its sessions) and creates it empty.
inline void recreate_database(const std::string& host, int port, const std::string& db) {
  pqxx::connection c(database_url(host, port, "postgres"));
  pqxx::nontransaction tx(c);
  tx.exec("drop database if exists " + tx.quote_name(db) + " with (force)");
  tx.exec("create database " + tx.quote_name(db));
}

// The first column of the first row as an integer (0 when none or NULL).
inline int64_t scalar(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  auto r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? 0 : r[0][0].as<int64_t>();
}

// Polls cond() every 2 ms until it holds (true) or timeout passes (false).
template <typename F>
bool wait_for(F cond, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// The p-quantile (0..1) of v, nearest rank; 0 for no samples.
inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace quern::bench
