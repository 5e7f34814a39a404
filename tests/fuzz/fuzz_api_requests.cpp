// Fuzz target: the request parsers of the HTTP API (host/server/api_requests.h).
//
// The first byte picks the parser; the rest is its input: a request body
// (read as the server's body_object does: empty = {}, else
// json_input::parse<ordered_json>(..., storable=false), and it must be an
// object), a query string ("k=v&k2=v2", raw bytes, as the router hands over
// after percent-decoding), or the text of parse_iso_utc.
//
// Properties: never crashes; every error, including the body's own, is
// invalid_argument (a 400) with a non-empty message of valid UTF-8; what a
// parser accepts holds the ranges and rules api_requests.h promises.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "host/common/json_input.h"
#include "host/common/utf8.h"
#include "host/common/validation.h"
#include "host/server/api_requests.h"

namespace {

using namespace quern;
using server::Json;

enum Parser {
  kRun,
  kInlineCode,
  kDeploy,
  kNewToken,
  kSchedule,
  kAgentOwner,
  kAgentRegistration,
  kClaim,
  kLeases,
  kLogChunks,
  kCompletions,
  kJobFilter,
  kWait,
  kLogOffset,
  kIsoUtc,
  kParserCount
};

void check_error(const Status& s) {
  FUZZ_CHECK(!s.is_ok());
  FUZZ_CHECK_MSG(s.code() == StatusCode::invalid_argument,
                 std::string(to_string(s.code())) + ": " + s.message());
  FUZZ_CHECK(!s.message().empty());
  FUZZ_CHECK_MSG(text::is_valid_utf8(s.message()), s.message());
}

// Checks the error, or runs `ok` on the value.
template <typename T, typename F>
void expect(const StatusOr<T>& r, F ok) {
  if (!r) return check_error(r.status());
  ok(*r);
}

bool storable_json(const Json& v) { return json_input::check_storable(v, "v").is_ok(); }

server::Query to_query(std::string_view rest) {
  server::Query q;
  while (true) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const size_t eq = pair.find('=');
    const std::string key(pair.substr(0, eq));
    const std::string value(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    q.emplace(key, value);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return q;
}

void check_iso(std::string_view text) {
  using namespace std::chrono;
  expect(server::parse_iso_utc(std::string(text), "scheduled_for"), [&](queue::Clock::time_point t) {
    const auto secs = duration_cast<seconds>(t.time_since_epoch()).count();
    FUZZ_CHECK(secs >= 0);
    // Beyond the clock's end (April 2262): the end itself.
    if (t == queue::Clock::time_point::max()) {
      FUZZ_CHECK(text.substr(0, 4) >= "2262");
      return;
    }
    // The date and time it names exist: the instant formats back to them
    // (a leap second, :60, is the next minute's :00).
    if (text.substr(17, 2) != "60") {
      const std::time_t tt = static_cast<std::time_t>(secs);
      std::tm tm{};
      gmtime_r(&tt, &tm);
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
      FUZZ_CHECK_MSG(std::string_view(buf) == text.substr(0, 19),
                     std::string(buf) + " from " + std::string(text));
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto parser = static_cast<Parser>(data[0] % kParserCount);
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  switch (parser) {
    case kJobFilter:
      expect(server::parse_job_filter(to_query(rest)), [](const queue::JobFilter& f) {
        FUZZ_CHECK(queue::validate(f).is_ok());
        FUZZ_CHECK(f.limit >= 1 && f.limit <= 1000);
        FUZZ_CHECK(f.tag.empty() || validation::is_tag(f.tag));
        FUZZ_CHECK(text::is_storable(f.script_path) && f.script_path.size() <= 255);
        FUZZ_CHECK(f.before_id >= 0);
      });
      return 0;
    case kWait: {
      const auto max = std::chrono::milliseconds(60000);
      expect(server::parse_wait(to_query(rest), max),
             [&](std::chrono::milliseconds w) { FUZZ_CHECK(w.count() > 0 && w <= max); });
      return 0;
    }
    case kLogOffset:
      expect(server::parse_log_offset(to_query(rest)), [](int64_t n) { FUZZ_CHECK(n >= 0); });
      return 0;
    case kIsoUtc:
      check_iso(rest);
      return 0;
    default:
      break;
  }

  // A request body, as body_object reads it.
  Json body = Json::object();
  if (!rest.empty()) {
    auto parsed = json_input::parse<Json>(rest, "the request body", /*storable=*/false);
    if (!parsed) return check_error(parsed.status()), 0;
    if (!parsed->is_object()) return 0;  // "the request body must be a JSON object"
    body = std::move(parsed).value();
  }

  switch (parser) {
    case kRun:
      expect(server::parse_run_request(body), [](const server::RunRequest& r) {
        FUZZ_CHECK(r.args.is_object() && storable_json(r.args));
        FUZZ_CHECK(r.tag.empty() || validation::is_tag(r.tag));
        FUZZ_CHECK(r.priority == 0 ||
                   (r.priority >= queue::kMinPriority && r.priority <= queue::kMaxPriority));
        FUZZ_CHECK(r.timeout_s >= 0 && r.timeout_s <= server::kMaxTimeoutSeconds);
        if (r.concurrency)
          FUZZ_CHECK_MSG(queue::validate(*r.concurrency).is_ok(), queue::validate(*r.concurrency).message());
        if (r.retry) FUZZ_CHECK_MSG(queue::validate(*r.retry).is_ok(), queue::validate(*r.retry).message());
      });
      break;
    case kInlineCode:
      expect(server::parse_inline_code(body), [](const server::InlineCode& c) {
        FUZZ_CHECK(!c.language.empty() && c.language.size() <= 64);
        for (char ch : c.language)
          FUZZ_CHECK((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_');
        FUZZ_CHECK(text::is_storable(c.content) && c.content.size() <= 1024 * 1024);
      });
      break;
    case kDeploy:
      expect(server::parse_deploy(body), [](const scripts::NewScript& s) {
        FUZZ_CHECK(s.settings.priority >= 0 && s.settings.priority <= queue::kMaxPriority);
        FUZZ_CHECK(s.settings.timeout_s >= 0 && s.settings.timeout_s <= server::kMaxTimeoutSeconds);
        if (s.settings.concurrency) FUZZ_CHECK(queue::validate(*s.settings.concurrency).is_ok());
        if (s.settings.retry) FUZZ_CHECK(queue::validate(*s.settings.retry).is_ok());
      });
      break;
    case kNewToken:
      expect(server::parse_new_token(body), [](const auth::NewToken& t) {
        FUZZ_CHECK(auth::validate(t).is_ok());
        for (const std::string& tag : t.tags) FUZZ_CHECK(validation::is_tag(tag));
      });
      break;
    case kSchedule:
      expect(server::parse_schedule(body), [](const schedule::Schedule& s) {
        FUZZ_CHECK(!s.name.empty() && !s.cron.empty() && !s.script_path.empty());
        FUZZ_CHECK(schedule::validate(s).is_ok());
        FUZZ_CHECK(s.args.is_object() && storable_json(s.args));
      });
      break;
    case kAgentOwner:
      expect(server::parse_agent_owner(body, "7"), [](const std::string& owner) {
        FUZZ_CHECK(owner.rfind("agent:7:", 0) == 0);
        const std::string id = owner.substr(8);
        FUZZ_CHECK(!id.empty() && id.size() <= 64);
        for (char c : id)
          FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                     c == '_' || c == '.');
      });
      break;
    case kAgentRegistration:
      expect(server::parse_agent_registration(body), [](const server::AgentRegistration& r) {
        FUZZ_CHECK(r.slots >= 0 && r.slots <= 1024 && r.pid >= 0);
        FUZZ_CHECK(text::is_storable(r.version) && r.version.size() <= 200);
        FUZZ_CHECK(text::is_storable(r.hostname) && r.hostname.size() <= 200);
      });
      break;
    case kClaim:
      expect(server::parse_claim_request(body), [](const server::ClaimRequest& c) {
        FUZZ_CHECK(c.slots >= 1 && c.slots <= 1024);
        FUZZ_CHECK(c.wait.count() >= 0 && c.wait.count() <= 3600 * 1000);
        FUZZ_CHECK(c.capacity.free_gpus >= 0 &&
                   static_cast<size_t>(c.capacity.free_gpus) <= c.capacity.device_memory_mb.size());
        for (int mb : c.capacity.device_memory_mb) FUZZ_CHECK(mb >= 0);
      });
      break;
    case kLeases:
      expect(server::parse_leases(body), [](const std::vector<queue::Lease>& leases) {
        for (const auto& l : leases) FUZZ_CHECK(l.id >= 1 && l.attempt >= 1);
      });
      break;
    case kLogChunks:
      expect(server::parse_log_chunks(body), [](const std::vector<queue::LogChunk>& chunks) {
        for (const auto& c : chunks) {
          FUZZ_CHECK(c.job_id >= 1 && c.attempt >= 1);
          FUZZ_CHECK(text::is_storable(c.text));
        }
      });
      break;
    case kCompletions:
      expect(server::parse_completions(body), [](const std::vector<queue::Completion>& done) {
        for (const auto& c : done) {
          FUZZ_CHECK(c.id >= 1 && c.attempt >= 1);
          FUZZ_CHECK(json_input::check_storable(c.result, "result").is_ok());
          FUZZ_CHECK(text::is_storable(c.error));
        }
      });
      break;
    default:
      break;
  }
  return 0;
}
