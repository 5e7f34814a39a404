// The modes of quern_workers_bench other than `load` (see the usage in
// workers_bench.cpp and the contract in workers_bench_modes.h). Every figure
// is a difference of the database's own timestamps: created_at (the INSERT,
// clock_timestamp()), scheduled_for, started_at (now() of the claim's
// transaction), completed_at and, for retried attempts, job_attempts'
// started_at / ended_at / retry_at. Durations are in ms; a distribution is
// {n, p50, p90, p99, max} (nearest rank).
//
// started_at is the claim transaction's start, taken before the claim's inner
// statements look for jobs: a claim that began just before a job's INSERT
// committed may still take it, so submit -> start can be slightly negative,
// and a keyed job may seem to start a fraction of a millisecond before the
// job it replaced ended (hence the overlap tolerance of the keyed mode).
#include "tests/bench/workers_bench_modes.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/bench/bench_support.h"

namespace quern::bench::workers {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using Json = nlohmann::json;

// {n, p50, p90, p99, max} of v.
Json summary(const std::vector<double>& v) {
  if (v.empty()) return {{"n", 0}};
  return {{"n", v.size()},
          {"p50", percentile(v, 0.50)},
          {"p90", percentile(v, 0.90)},
          {"p99", percentile(v, 0.99)},
          {"max", *std::max_element(v.begin(), v.end())}};
}

// The rows of `sql`, one vector of doubles per column (NULL: NaN).
std::vector<std::vector<double>> columns(Context& ctx, const std::string& sql) {
  const pqxx::result r = ctx.exec(sql);
  std::vector<std::vector<double>> cols(r.columns());
  for (const auto& row : r)
    for (size_t i = 0; i < cols.size(); ++i)
      cols[i].push_back(row[static_cast<int>(i)].is_null() ? std::nan("")
                                                           : row[static_cast<int>(i)].as<double>());
  return cols;
}

// The jobs one INSERT queued: ids from lo to hi (no other INSERT runs meanwhile).
struct Ids {
  int64_t lo = 0, hi = -1, n = 0;
  std::string where(const std::string& col = "id") const {
    return col + " BETWEEN " + std::to_string(lo) + " AND " + std::to_string(hi);
  }
};

// Queues the rows of `rows` (a SELECT of tag, language, payload, scheduled_for,
// concurrency_key, retry) in one statement, after the CTEs `ctes` (each
// followed by ", "), so that e.g. a key's limits row and its jobs commit together.
Ids insert_jobs(Context& ctx, const std::string& rows, const std::string& ctes = "") {
  const pqxx::row r = ctx.exec("WITH " + ctes +
                               "ins AS (INSERT INTO quern.queue (tag, language, payload, scheduled_for, "
                               "concurrency_key, retry) " +
                               rows + " RETURNING id) SELECT min(id), max(id), count(*) FROM ins")[0];
  return Ids{r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<int64_t>()};
}

// Waits until every job of `ids` is in completed_jobs, polling every `every`.
void wait_done(Context& ctx, const Ids& ids, Clock::duration timeout, Clock::duration every,
               const std::string& what) {
  const auto deadline = Clock::now() + timeout;
  const std::string sql = "SELECT count(*) FROM quern.completed_jobs WHERE " + ids.where();
  while (ctx.exec(sql)[0][0].as<int64_t>() < ids.n) {
    ctx.check_workers(what);
    if (Clock::now() > deadline) throw std::runtime_error("the " + what + " jobs did not complete in time");
    std::this_thread::sleep_for(every);
  }
}

std::string noop_payload(Context& ctx, const Json& args) {
  return ctx.db.quote(Json{{"args", args}}.dump()) + "::json";
}

int64_t not_success(Context& ctx, const Ids& ids, const std::string& expected = "success") {
  return ctx
      .exec("SELECT count(*) FROM quern.completed_jobs WHERE " + ids.where() + " AND status <> " +
            ctx.db.quote(expected))[0][0]
      .as<int64_t>();
}

// Sub-measurement of `due`: R jobs that always fail, retried by the queue.
// The retry column holds the database's form of a policy (retry_to_db_json
// in host/queue/job_policy.cpp): 3 attempts, 1 s then 2 s of backoff
// (backoff_ms x multiplier^retries), no jitter (quern.retry_delay would be
// NULL without it), retried on failure.
Json run_retries(Context& ctx) {
  const Args& a = ctx.args;
  const Json policy = {{"max_attempts", 3}, {"backoff_ms", 1000}, {"backoff_max_ms", 300000},
                       {"multiplier", 2},   {"jitter", 0},        {"on", Json::array({"failure"})}};
  const Ids ids =
      insert_jobs(ctx, "SELECT 'noop', 'noop', " + noop_payload(ctx, {{"fail", "x"}}) +
                           ", now(), NULL::text, " + ctx.db.quote(policy.dump()) +
                           "::jsonb FROM generate_series(1, " + std::to_string(a.retry_jobs) + ")");
  wait_done(ctx, ids, 120s, 20ms, "retry");
  // Per retried attempt: when the next attempt started (a later job_attempts
  // row when it failed again and was retried, else the completed_jobs row).
  const auto c =
      columns(ctx,
              "SELECT a.attempt, "
              "extract(epoch FROM coalesce(n.started_at, d.started_at) - a.retry_at) * 1000, "
              "extract(epoch FROM a.retry_at - a.ended_at) * 1000, "
              "extract(epoch FROM coalesce(n.started_at, d.started_at) - a.ended_at) * 1000 "
              "FROM quern.job_attempts a "
              "LEFT JOIN quern.job_attempts n ON n.job_id = a.job_id AND n.attempt = a.attempt + 1 "
              "LEFT JOIN quern.completed_jobs d ON d.id = a.job_id AND d.attempt = a.attempt + 1 "
              "WHERE a.retry_at IS NOT NULL AND " +
                  ids.where("a.job_id") + " ORDER BY a.job_id, a.attempt");
  std::vector<double> late, by_retry_late[2], by_retry_backoff[2], by_retry_gap[2];
  for (size_t i = 0; i < c[0].size(); ++i) {
    if (std::isnan(c[1][i])) continue;  // the next attempt's start is missing
    late.push_back(c[1][i]);
    const size_t k = c[0][i] <= 1 ? 0 : 1;  // attempt 1 -> retry 1 (1 s), attempt 2 -> retry 2 (2 s)
    by_retry_late[k].push_back(c[1][i]);
    by_retry_backoff[k].push_back(c[2][i]);
    by_retry_gap[k].push_back(c[3][i]);
  }
  const int64_t final_attempt_3 =
      ctx.exec("SELECT count(*) FROM quern.completed_jobs WHERE " + ids.where() + " AND attempt = 3")[0][0]
          .as<int64_t>();
  Json per_retry = Json::array();
  for (int k = 0; k < 2; ++k)
    per_retry.push_back({{"retry", k + 1},
                         {"lateness_ms", summary(by_retry_late[k])},
                         {"backoff_ms", summary(by_retry_backoff[k])},
                         {"gap_ms", summary(by_retry_gap[k])}});
  return {{"jobs", a.retry_jobs},
          {"policy", policy},
          {"retries", c[0].size()},
          {"retries_expected", 2 * a.retry_jobs},
          {"jobs_not_failure", not_success(ctx, ids, "failure")},
          {"jobs_ending_at_attempt_3", final_attempt_3},
          {"lateness_ms", summary(late)},
          {"per_retry", per_retry}};
}

// Ceil of n / d for positive integers.
int64_t ceil_div(int64_t n, int64_t d) { return (n + d - 1) / d; }

}  // namespace

// latency: --samples jobs, one at a time: queue one (sleep_ms 0), poll
// completed_jobs every ms until it is there, then the next. The idle workers
// are woken by the queue's NOTIFY (or their poll), so submit -> start is the
// wake-up and claim path of an idle fleet.
Json run_latency(Context& ctx) {
  const Args& a = ctx.args;
  const std::string rows =
      "SELECT 'noop', 'noop', " + noop_payload(ctx, {{"sleep_ms", 0}}) + ", now(), NULL::text, NULL::jsonb";
  // Backends flush their counts to pg_stat_database up to a second late:
  // let the start-up's reach it before the window opens, as after it.
  std::this_thread::sleep_for(1500ms);
  const int64_t x0 = ctx.xacts();
  const auto t0 = Clock::now();
  Ids all;
  for (int i = 0; i < a.samples; ++i) {
    const Ids one = insert_jobs(ctx, rows);
    wait_done(ctx, one, 30s, 1ms, "latency sample");
    if (i == 0) all.lo = one.lo;
    all.hi = one.hi;
    all.n += one.n;
  }
  const double window_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(1500ms);  // let the window's transactions reach pg_stat_database
  const int64_t x1 = ctx.xacts();
  const auto c = columns(ctx,
                         "SELECT extract(epoch FROM started_at - created_at) * 1000, "
                         "extract(epoch FROM completed_at - created_at) * 1000 "
                         "FROM quern.completed_jobs WHERE " +
                             all.where());
  return {{"samples", a.samples},
          {"not_success", not_success(ctx, all)},
          {"submit_to_start_ms", summary(c[0])},
          {"end_to_end_ms", summary(c[1])},
          {"window_s", window_s},
          // Every transaction of the workers in the window (claims, completions,
          // heartbeats, registry touches), per job.
          {"xacts", x1 - x0},
          {"xacts_per_job", static_cast<double>(x1 - x0) / std::max(1, a.samples)}};
}

// due: --samples jobs (sleep_ms 0) queued in one statement, job i (from 0)
// due at now() + delay + i x 137 ms: 137 ms is prime to common poll
// intervals, so the due times fall at different phases of a worker's poll.
// lateness = started_at - scheduled_for. Then the retry sub-measurement.
Json run_due(Context& ctx) {
  const Args& a = ctx.args;
  const Ids ids =
      insert_jobs(ctx, "SELECT 'noop', 'noop', " + noop_payload(ctx, {{"sleep_ms", 0}}) + ", now() + (" +
                           std::to_string(a.delay_ms) +
                           " + (i - 1) * 137) * interval '1 millisecond', NULL::text, NULL::jsonb "
                           "FROM generate_series(1, " +
                           std::to_string(a.samples) + ") i");
  const auto span = std::chrono::milliseconds(a.delay_ms + 137LL * a.samples);
  wait_done(ctx, ids, span + 60s, 10ms, "due");
  const auto c = columns(ctx,
                         "SELECT extract(epoch FROM started_at - scheduled_for) * 1000, "
                         "extract(epoch FROM completed_at - scheduled_for) * 1000 "
                         "FROM quern.completed_jobs WHERE " +
                             ids.where());
  Json out = {{"samples", a.samples},
              {"delay_ms", a.delay_ms},
              {"spacing_ms", 137},
              {"not_success", not_success(ctx, ids)},
              {"lateness_ms", summary(c[0])},
              {"due_to_end_ms", summary(c[1])}};
  if (a.retry_jobs > 0) out["retry"] = run_retries(ctx);
  return out;
}

// keyed: --jobs jobs of --job-ms under key "bench:x", its limits row and the
// jobs in one statement (as QUERN_UPSERT_LIMITS + kPushBatch do,
// host/queue/queue_sql.h). From the jobs' [started_at, completed_at):
//   wall = max(completed_at) - min(started_at);
//   capacity wall = the largest of the lower bounds that apply, with
//     N jobs of D ms: slots ceil(N / (W x S)) x D; max_running K:
//     ceil(N / K) x D (N x D / K when K divides N); rate R per M ms:
//     (ceil(N / R) - 1) x M + D (the last batch of R may start M after the
//     previous one, and runs D);
//   efficiency = capacity wall / wall;
//   max running at once, by a sweep over the intervals, an interval's end
//   counted 5 ms early (the claim's started_at can precede the end of the
//   job it replaced, see the top of this file; a real excess would last a
//   whole job) — and without that tolerance;
//   rate: the most starts in any window [s, s + M) (the claim counts starts
//   in (now - M, now]);
//   handoff: how long after a start became allowed it happened: for the
//   i-th start (from 0, i >= C, C = min(K, W x S)), start_i - the
//   (i - C)-th end; with a rate, start_i - (start_(i-R) + M).
Json run_keyed(Context& ctx) {
  const Args& a = ctx.args;
  if (a.max_running <= 0 && a.rate_max <= 0)
    throw std::runtime_error("keyed: set --max-running or --rate-max");
  if (a.rate_max > 0 && a.rate_window_ms <= 0)
    throw std::runtime_error("keyed: --rate-max needs --rate-window-ms");
  const int64_t N = a.jobs, D = a.job_ms, slots = static_cast<int64_t>(a.workers) * a.slots;
  const std::string key = ctx.db.quote("bench:x");
  const Ids ids = insert_jobs(
      ctx,
      "SELECT 'noop', 'noop', " + noop_payload(ctx, {{"sleep_ms", a.job_ms}}) + ", now(), " + key +
          ", NULL::jsonb FROM generate_series(1, " + std::to_string(a.jobs) + ")",
      "lim AS (INSERT INTO quern.concurrency_limits (key, max_running, rate_max, rate_window_ms) VALUES (" +
          key + ", " + std::to_string(a.max_running) + ", " + std::to_string(a.rate_max) + ", " +
          std::to_string(a.rate_max > 0 ? a.rate_window_ms : 0) +
          ") ON CONFLICT (key) DO UPDATE SET max_running = excluded.max_running, rate_max = "
          "excluded.rate_max, rate_window_ms = excluded.rate_window_ms, updated_at = now()), ");
  Json bounds = {{"slots_s", ceil_div(N, slots) * D / 1000.0}};
  if (a.max_running > 0) bounds["max_running_s"] = ceil_div(N, a.max_running) * D / 1000.0;
  if (a.rate_max > 0) bounds["rate_s"] = ((ceil_div(N, a.rate_max) - 1) * a.rate_window_ms + D) / 1000.0;
  double capacity_s = 0;
  for (const auto& [name, v] : bounds.items()) capacity_s = std::max(capacity_s, v.get<double>());
  wait_done(ctx, ids,
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(10 * capacity_s + 60)),
            20ms, "keyed");
  // Starts and ends in ms from the first start.
  const auto c = columns(ctx,
                         "SELECT extract(epoch FROM started_at - t0) * 1000, "
                         "extract(epoch FROM completed_at - t0) * 1000 FROM "
                         "(SELECT *, min(started_at) OVER () AS t0 FROM quern.completed_jobs WHERE " +
                             ids.where() + ") j");
  std::vector<double> starts = c[0], ends = c[1];
  std::sort(starts.begin(), starts.end());
  std::sort(ends.begin(), ends.end());
  const double wall_ms = ends.empty() ? 0 : ends.back() - starts.front();
  // Sweep: ends (moved `tolerance` earlier) before starts at equal times.
  auto max_at_once = [&](double tolerance) {
    std::vector<std::pair<double, int>> ev;
    for (double s : starts) ev.push_back({s, +1});
    for (double e : ends) ev.push_back({e - tolerance, -1});
    std::sort(ev.begin(), ev.end());
    int now = 0, most = 0;
    for (const auto& [t, d] : ev) most = std::max(most, now += d);
    return most;
  };
  double mean_ms = 0;
  for (size_t i = 0; i < c[0].size(); ++i) mean_ms += (c[1][i] - c[0][i]) / static_cast<double>(c[0].size());
  Json out = {{"jobs", a.jobs},
              {"job_ms", a.job_ms},
              {"key", "bench:x"},
              {"max_running", a.max_running},
              {"not_success", not_success(ctx, ids)},
              {"wall_s", wall_ms / 1000.0},
              {"capacity_wall_s", capacity_s},
              {"capacity_bounds_s", bounds},
              {"efficiency_pct", wall_ms > 0 ? 100.0 * capacity_s * 1000.0 / wall_ms : 0.0},
              {"mean_job_ms", mean_ms},
              {"max_running_at_once", max_at_once(5.0)},
              {"max_running_at_once_raw", max_at_once(0.0)}};
  const int64_t cap = a.max_running > 0 ? std::min<int64_t>(a.max_running, slots) : slots;
  std::vector<double> handoff;
  for (size_t i = cap; i < starts.size(); ++i) handoff.push_back(starts[i] - ends[i - cap]);
  out["handoff_after_end_ms"] = summary(handoff);
  if (a.rate_max > 0) {
    const double M = a.rate_window_ms;
    size_t most = 0;
    for (size_t i = 0, j = 0; i < starts.size(); ++i) {
      while (j < starts.size() && starts[j] < starts[i] + M) ++j;
      most = std::max(most, j - i);
    }
    std::vector<double> after_window;
    for (size_t i = a.rate_max; i < starts.size(); ++i)
      after_window.push_back(starts[i] - (starts[i - a.rate_max] + M));
    out["rate"] = {{"max", a.rate_max},
                   {"window_ms", a.rate_window_ms},
                   {"max_starts_in_a_window", most},
                   {"handoff_after_window_ms", summary(after_window)}};
  }
  return out;
}

}  // namespace quern::bench::workers
