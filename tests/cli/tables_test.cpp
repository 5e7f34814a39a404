// host/cli/tables.h: the listing commands' tables, each fed a document of the
// shape the server's handlers build (host/server/api_*.cpp) and compared
// whole against a fixed "now"; odd documents (missing fields, nulls, other
// types) print "-" and never throw; server text with control characters
// stays on one line.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include "host/cli/tables.h"

namespace quern::cli {
namespace {

using Json = nlohmann::ordered_json;

const TablesClock::time_point kNow = *parse_api_time("2026-12-07T10:00:00.000000Z");

template <typename Print>
std::string printed(Print print, const Json& doc) {
  std::ostringstream out;
  print(doc, out, kNow);
  return out.str();
}
std::string printed_queue(const Json& doc) {
  std::ostringstream out;
  print_queue(doc, out);
  return out.str();
}
std::string printed_limits(const Json& doc) {
  std::ostringstream out;
  print_queue_limits(doc, out);
  return out.str();
}
const auto kJobs = [](const Json& d, std::ostream& o, auto now) { print_jobs(d, o, now); };
const auto kJob = [](const Json& d, std::ostream& o, auto now) { print_job(d, o, now); };
const auto kScripts = [](const Json& d, std::ostream& o, auto now) { print_scripts(d, o, now); };
const auto kVersions = [](const Json& d, std::ostream& o, auto now) { print_script_versions(d, o, now); };
const auto kSchedules = [](const Json& d, std::ostream& o, auto now) { print_schedules(d, o, now); };
const auto kTokens = [](const Json& d, std::ostream& o, auto now) { print_tokens(d, o, now); };

// Documents that are no answer of the API: each table says its list is empty.
const Json kOddDocuments[] = {Json(), Json::array(), Json("text"), Json{{"jobs", "x"}, {"tags", 3}}};

TEST(OneLine, ControlCharactersBecomeSpacesAndNewlinesAMark) {
  EXPECT_EQ(one_line("exit 1:\nboom"), "exit 1:⏎boom");
  EXPECT_EQ(one_line("a\r\nb\rc"), "a⏎b c");
  EXPECT_EQ(one_line("\x1b[31mred\x07\x7f|\t|"), " [31mred  | |");
  EXPECT_EQ(one_line("c1:\xC2\x9B"
                     "2J"),
            "c1: 2J");                                                     // U+009B, a terminal's CSI
  EXPECT_EQ(one_line("  trailing\n\n"), "trailing");                       // ends trimmed, no lone ⏎
  EXPECT_EQ(one_line("café 日本 \xF0\x9F\x99\x82"), "café 日本 🙂");  // UTF-8 kept whole
  EXPECT_EQ(one_line("bad \xFF byte"), "bad \xEF\xBF\xBD byte");
}

TEST(OneLine, CutsByCharacters) {
  EXPECT_EQ(one_line(std::string(80, 'x')), std::string(80, 'x'));
  EXPECT_EQ(one_line(std::string(81, 'x')), std::string(79, 'x') + "…");
  std::string wide;
  for (int i = 0; i < 12; ++i) wide += "日";
  EXPECT_EQ(one_line(wide, 10), "日日日日日日日日日…");
  EXPECT_EQ(one_line("abc\ndef", 5), "abc⏎…");
}

TEST(Times, ParsesTheApiFormsAndRefusesOthers) {
  const auto base = parse_api_time("2026-12-07T10:00:00Z");
  ASSERT_TRUE(base);
  EXPECT_EQ(*base, kNow);
  EXPECT_EQ(parse_api_time("2026-12-07T12:30:00.000000+02:30"), base);
  EXPECT_EQ(*parse_api_time("2026-12-07T10:00:00.5Z") - kNow, std::chrono::milliseconds(500));
  for (const char* bad :
       {"", "2026-12-07", "9999-12-07T10:00:00Z", "2026-13-07T10:00:00Z", "2026-02-30T10:00:00Z",
        "2026-12-07T10:00:00", "2026-12-07T10:00:00Zjunk", "2026-12-07T10:00:00.Z"})
    EXPECT_FALSE(parse_api_time(bad)) << bad;
}

TEST(Times, RelativeToNow) {
  EXPECT_EQ(relative_time("2026-12-07T09:59:48.000000Z", kNow), "12s ago");
  EXPECT_EQ(relative_time("2026-12-07T09:56:30.000000Z", kNow), "3m ago");
  EXPECT_EQ(relative_time("2026-12-07T07:30:00.000000Z", kNow), "2h ago");
  EXPECT_EQ(relative_time("2026-12-03T09:00:00.000000Z", kNow), "4d ago");
  EXPECT_EQ(relative_time("2026-12-07T10:00:00.400000Z", kNow), "0s ago");  // clock skew
  EXPECT_EQ(relative_time("2026-12-07T10:05:00.000000Z", kNow), "in 5m");
  EXPECT_EQ(relative_time(nullptr, kNow), "-");
  EXPECT_EQ(relative_time("soon\n", kNow), "soon");
  EXPECT_EQ(relative_time(12, kNow), "12");
}

TEST(Durations, Formats) {
  EXPECT_EQ(format_duration(0.34), "340ms");
  EXPECT_EQ(format_duration(4.25), "4.2s");
  EXPECT_EQ(format_duration(12.9), "12s");
  EXPECT_EQ(format_duration(184), "3m04s");
  EXPECT_EQ(format_duration(7500), "2h05m");
  EXPECT_EQ(format_duration(4 * 86400 + 3 * 3600 + 5), "4d03h");
  EXPECT_EQ(format_duration(-1), "-");
  EXPECT_EQ(format_duration(std::nan("")), "-");
}

TEST(Queue, TagsThenPrioritiesOfTagsWithMoreThanOne) {
  const Json doc = Json::parse(R"j({"tags": [
    {"tag": "bash", "waiting": 3, "scheduled": 1, "running": 2, "oldest_wait_s": 12.5, "served": true,
     "by_priority": [{"priority": 10, "waiting": 1, "oldest_wait_s": 2.0},
                     {"priority": 5, "waiting": 2, "oldest_wait_s": 12.5}]},
    {"tag": "python3", "waiting": 1, "scheduled": 0, "running": 0, "oldest_wait_s": 95.0, "served": false,
     "by_priority": [{"priority": 5, "waiting": 1, "oldest_wait_s": 95.0}]},
    {"tag": "gpu", "waiting": 4, "scheduled": 0, "running": 0, "oldest_wait_s": 3725, "served": false,
     "by_priority": [{"priority": 5, "waiting": 4, "oldest_wait_s": 3725}],
     "autoscale": "scaling group burst up from 0 (requested at 2026-12-07T09:59:58.000000Z)"},
    {"tag": "noop", "waiting": 0, "scheduled": 2, "running": 0, "oldest_wait_s": 0, "served": true,
     "by_priority": []}]
})j");
  EXPECT_EQ(printed_queue(doc),
            "TAG      WAITING  SCHEDULED  RUNNING  OLDEST-WAIT  SERVED\n"
            "bash     3        1          2        12s          yes\n"
            "python3  1        0          0        1m35s        no\n"
            "gpu      4        0          0        1h02m        scaling group burst up from 0 (requested at "
            "2026-12-07T09:59:58.000000Z)\n"
            "noop     0        2          0        -            yes\n"
            "\n"
            "TAG   PRIORITY  WAITING  OLDEST-WAIT\n"
            "bash  10        1        2.0s\n"
            "bash  5         2        12s\n");
}

TEST(Queue, EmptyAndOdd) {
  EXPECT_EQ(printed_queue(Json{{"tags", Json::array()}}), "no jobs waiting, scheduled or running\n");
  for (const Json& odd : kOddDocuments)
    EXPECT_EQ(printed_queue(odd), "no jobs waiting, scheduled or running\n");
  const Json doc = Json::parse(R"j({"tags": [{"tag": "x", "waiting": "many", "served": null,
    "by_priority": {"priority": 1}, "autoscale": 7}, 42]})j");
  EXPECT_EQ(printed_queue(doc),
            "TAG  WAITING  SCHEDULED  RUNNING  OLDEST-WAIT  SERVED\n"
            "x    many     -          -        -            -\n");
}

TEST(QueueLimits, KeysWithTheirLimits) {
  const Json doc = Json::parse(R"j({"keys": [
    {"key": "script:f/team/etl", "max_running": 1, "rate_max": 0, "rate_window_s": 0.0, "running": 1,
     "waiting": 3, "started_in_window": 0},
    {"key": "api:stripe", "max_running": 0, "rate_max": 10, "rate_window_s": 60.0, "running": 0,
     "waiting": 0, "started_in_window": 7}]})j");
  EXPECT_EQ(printed_limits(doc),
            "KEY                MAX-RUNNING  RATE    RUNNING  WAITING  STARTED\n"
            "script:f/team/etl  1            -       1        3        -\n"
            "api:stripe         -            10/60s  0        0        7\n");
  EXPECT_EQ(printed_limits(Json{{"keys", Json::array()}}), "no concurrency keys\n");
  EXPECT_EQ(printed_limits(Json::parse(R"j({"keys": [{"key": "k", "rate_max": 2, "rate_window_s": 0.5}]})j")),
            "KEY  MAX-RUNNING  RATE     RUNNING  WAITING  STARTED\n"
            "k    -            2/500ms  -        -        -\n");
}

// Three jobs as job_json writes them: finished, running (inline code), queued.
const char* kJobList = R"j({"jobs": [
  {"id": 42, "state": "success", "tag": "bash", "language": "bash", "script_path": "f/team/etl",
   "script_hash": "3f2a9c1d5e7b00112233445566778899aabbccddeeff00112233445566778899", "priority": 5,
   "attempt": 1, "worker_id": "host1-w1", "args": {"n": 1}, "result": {"ok": true}, "error": "",
   "created_at": "2026-12-07T09:57:00.000000Z", "started_at": "2026-12-07T09:57:01.000000Z",
   "completed_at": "2026-12-07T09:57:13.500000Z", "duration_ms": 12500.0, "cancel_requested": false},
  {"id": 43, "state": "running", "tag": "bash", "language": "bash", "script_path": "", "priority": 5,
   "attempt": 1, "worker_id": "host1-w2", "args": {}, "result": null, "error": "",
   "created_at": "2026-12-07T07:30:00.000000Z", "started_at": "2026-12-07T09:59:00.000000Z",
   "completed_at": null, "cancel_requested": false},
  {"id": 44, "state": "queued", "tag": "python3", "language": "python3", "script_path": "f/team/report",
   "priority": 5, "attempt": 0, "worker_id": "", "args": {}, "result": null, "error": "",
   "created_at": "2026-12-03T09:00:00.000000Z", "started_at": null, "completed_at": null,
   "cancel_requested": false}]})j";

TEST(Jobs, OneRowPerJob) {
  EXPECT_EQ(printed(kJobs, Json::parse(kJobList)),
            "ID  STATE    TAG      SCRIPT         CREATED  DURATION  WORKER\n"
            "42  success  bash     f/team/etl     3m ago   12s       host1-w1\n"
            "43  running  bash     (inline)       2h ago   1m00s     host1-w2\n"
            "44  queued   python3  f/team/report  4d ago   -         -\n");
}

TEST(Jobs, EmptyAndOdd) {
  EXPECT_EQ(printed(kJobs, Json{{"jobs", Json::array()}}), "no jobs\n");
  for (const Json& odd : kOddDocuments) EXPECT_EQ(printed(kJobs, odd), "no jobs\n");
  const Json doc = Json::parse(R"j({"jobs": [{"id": 7}, 5,
    {"id": "x", "state": null, "created_at": "yesterday", "worker_id": 17, "started_at": 12,
     "duration_ms": "long", "tag": "a\tb"}]})j");
  EXPECT_EQ(printed(kJobs, doc),
            "ID  STATE  TAG  SCRIPT  CREATED    DURATION  WORKER\n"
            "7   -      -    -       -          -         -\n"
            "x   -      a b  -       yesterday  -         17\n");
}

TEST(Job, TheWholeRecord) {
  const Json doc = Json::parse(R"j({"id": 42, "state": "success", "tag": "bash", "language": "bash",
    "script_path": "f/team/etl", "script_hash": "3f2a9c1d", "priority": 5, "attempt": 2,
    "worker_id": "host1-w1", "args": {"n": 1, "name": "x"}, "result": {"rows": 10}, "error": "",
    "created_at": "2026-12-07T09:57:00.000000Z", "started_at": "2026-12-07T09:58:00.000000Z",
    "completed_at": "2026-12-07T09:58:30.250000Z", "duration_ms": 30250.0, "cancel_requested": false,
    "concurrency_key": "script:f/team/etl", "resources": {"peak_memory_bytes": 12582912, "cpu_ms": 340},
    "attempts": [{"attempt": 1, "status": "failure", "error": "exit 1:\nboom", "worker_id": "host1-w2",
      "started_at": "2026-12-07T09:57:01.000000Z", "ended_at": "2026-12-07T09:57:05.000000Z",
      "retry_at": "2026-12-07T09:57:35.000000Z"}]})j");
  EXPECT_EQ(printed(kJob, doc),
            "id:               42\n"
            "state:            success\n"
            "tag:              bash\n"
            "language:         bash\n"
            "script:           f/team/etl @ 3f2a9c1d\n"
            "priority:         5\n"
            "attempt:          2\n"
            "worker:           host1-w1\n"
            "concurrency key:  script:f/team/etl\n"
            "created:          2026-12-07 09:57:00 UTC (3m ago)\n"
            "started:          2026-12-07 09:58:00 UTC (2m ago)\n"
            "completed:        2026-12-07 09:58:30 UTC (1m ago)\n"
            "duration:         30s\n"
            "args:             {\"n\":1,\"name\":\"x\"}\n"
            "result:           {\"rows\":10}\n"
            "error:            -\n"
            "resources:        peak memory 12 MiB, cpu 340ms\n"
            "earlier attempts:\n"
            "  ATTEMPT  STATUS   WORKER    STARTED  ENDED   RETRY   ERROR\n"
            "  1        failure  host1-w2  2m ago   2m ago  2m ago  exit 1:⏎boom\n");
}

TEST(Job, RunningInlineCanceledWithLongArgs) {
  Json doc = Json::parse(R"j({"id": 43, "state": "running", "tag": "bash", "language": "bash",
    "script_path": "", "priority": 5, "attempt": 1, "worker_id": "host1-w2", "code": "echo hi",
    "result": null, "error": "line one\nline two\u001b[0m", "created_at": "2026-12-07T09:59:00.000000Z",
    "started_at": "2026-12-07T09:59:30.000000Z", "completed_at": null, "cancel_requested": true})j");
  doc["args"] = Json{{"text", std::string(300, 'y')}};
  const std::string args = "{\"text\":\"" + std::string(200 - 10, 'y') + "…";  // 199 characters and …
  EXPECT_EQ(printed(kJob, doc),
            "id:         43\n"
            "state:      running (cancel requested)\n"
            "tag:        bash\n"
            "language:   bash\n"
            "script:     (inline)\n"
            "priority:   5\n"
            "attempt:    1\n"
            "worker:     host1-w2\n"
            "created:    2026-12-07 09:59:00 UTC (1m ago)\n"
            "started:    2026-12-07 09:59:30 UTC (30s ago)\n"
            "completed:  -\n"
            "duration:   30s\n"
            "args:       " +
                args +
                "\n"
                "result:     -\n"
                "error:      line one⏎line two [0m\n");
}

TEST(Job, OddDocumentsPrintDashes) {
  for (const Json& odd : {Json(), Json::object(), Json("text"), Json::array()}) {
    const std::string out = printed(kJob, odd);
    EXPECT_NE(out.find("id:         -\n"), std::string::npos) << out;
    EXPECT_NE(out.find("created:    -\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("attempts"), std::string::npos) << out;
  }
  const Json doc = Json::parse(R"j({"id": 1, "created_at": "not a time", "started_at": 5, "attempts": 3,
    "resources": {"gpus": [{"index": 0}], "cpu_ms": "x", "peak_memory_bytes": -1}, "script_hash": null})j");
  const std::string out = printed(kJob, doc);
  EXPECT_NE(out.find("created:    not a time\n"), std::string::npos) << out;
  EXPECT_NE(out.find("started:    5\n"), std::string::npos) << out;
  EXPECT_NE(out.find("script:     -\n"), std::string::npos) << out;
  EXPECT_NE(out.find("resources:  gpus [{\"index\":0}], cpu_ms x, peak memory -\n"), std::string::npos)
      << out;
}

// script_json's shape: settings.tag "" is the language's default tag.
Json script(const std::string& path, const std::string& hash, const std::string& language,
            const std::string& tag, const std::string& summary, const std::string& by, const std::string& at,
            bool archived = false) {
  return Json{{"path", path},
              {"hash", hash},
              {"language", language},
              {"summary", summary},
              {"settings", {{"tag", tag}, {"priority", 0}, {"timeout_s", 0}, {"dedicated", false}}},
              {"deployed_by", by},
              {"created_at", at},
              {"archived", archived}};
}

TEST(Scripts, LatestVersionOfEachPath) {
  const Json doc{{"scripts",
                  {script("f/team/etl", "3f2a9c1d5e7b0011223344", "bash", "", "Nightly ETL", "alice",
                          "2026-12-06T10:00:00.000000Z"),
                   script("f/team/report", "9b8a7c6d5e4f3a2b1c0d", "python3", "reports", "", "ci",
                          "2026-12-07T09:00:00.000000Z")}}};
  EXPECT_EQ(printed(kScripts, doc),
            "PATH           LANGUAGE  TAG      HASH          DEPLOYED-BY  CREATED  SUMMARY\n"
            "f/team/etl     bash      -        3f2a9c1d5e7b  alice        1d ago   Nightly ETL\n"
            "f/team/report  python3   reports  9b8a7c6d5e4f  ci           1h ago   -\n");
  const Json archived{
      {"scripts",
       {script("f/old/x", "aa", "bash", "", "gone\nfor good", "bob", "2026-11-27T10:00:00.000000Z", true)}}};
  EXPECT_EQ(printed(kScripts, archived),
            "PATH     LANGUAGE  TAG  HASH  DEPLOYED-BY  CREATED  ARCHIVED  SUMMARY\n"
            "f/old/x  bash      -    aa    bob          10d ago  yes       gone⏎for good\n");
  EXPECT_EQ(printed(kScripts, Json{{"scripts", Json::array()}}), "no scripts\n");
  for (const Json& odd : kOddDocuments) EXPECT_EQ(printed(kScripts, odd), "no scripts\n");
  EXPECT_EQ(printed(kScripts, Json{{"scripts", {{{"path", "f/a/b"}, {"settings", "odd"}}}}}),
            "PATH   LANGUAGE  TAG  HASH  DEPLOYED-BY  CREATED  SUMMARY\n"
            "f/a/b  -         -    -     -            -        -\n");
}

TEST(ScriptVersions, NewestFirstAsTheServerSends) {
  const Json doc{{"versions",
                  {script("f/team/etl", "77aa88bb99cc00dd", "bash", "etl", "retry on 5xx", "bob",
                          "2026-12-07T09:40:00.000000Z"),
                   script("f/team/etl", "3f2a9c1d5e7b0011", "bash", "", "Nightly ETL", "alice",
                          "2026-12-06T10:00:00.000000Z")}}};
  EXPECT_EQ(printed(kVersions, doc),
            "HASH          CREATED  LANGUAGE  TAG  DEPLOYED-BY  SUMMARY\n"
            "77aa88bb99cc  20m ago  bash      etl  bob          retry on 5xx\n"
            "3f2a9c1d5e7b  1d ago   bash      -    alice        Nightly ETL\n");
  EXPECT_EQ(printed(kVersions, Json{{"versions", Json::array()}}), "no versions\n");
  for (const Json& odd : kOddDocuments) EXPECT_EQ(printed(kVersions, odd), "no versions\n");
}

TEST(Schedules, NextTickAndLastOutcome) {
  const Json doc = Json::parse(R"j({"schedules": [
    {"name": "f/team/nightly", "cron": "0 2 * * *", "timezone": "Europe/Paris", "script_path": "f/team/etl",
     "args": {}, "tag": null, "priority": null, "paused": false, "catch_up": "skip",
     "next_fire_at": "2026-12-08T01:00:00.000000Z", "last_fired_at": "2026-12-07T01:00:00.000000Z",
     "last_job_id": 41, "last_error": null, "created_at": "2026-12-01T10:00:00.000000Z",
     "updated_at": "2026-12-01T10:00:00.000000Z"},
    {"name": "f/team/every5", "cron": "*/5 * * * *", "timezone": "UTC", "script_path": "f/team/gone",
     "args": {"a": 1}, "tag": "bash", "priority": 7, "paused": true, "catch_up": "all",
     "next_fire_at": "2026-12-07T10:05:00.000000Z", "last_fired_at": null, "last_job_id": null,
     "last_error": "no script at path 'f/team/gone'\n(or it is archived)",
     "created_at": "2026-12-01T10:00:00.000000Z", "updated_at": "2026-12-01T10:00:00.000000Z"}]
})j");
  EXPECT_EQ(
      printed(kSchedules, doc),
      "NAME            CRON         TZ            SCRIPT       NEXT    PAUSED  LAST-FIRED  LAST-JOB  "
      "LAST-ERROR\n"
      "f/team/nightly  0 2 * * *    Europe/Paris  f/team/etl   in 15h  no      9h ago      41        -\n"
      "f/team/every5   */5 * * * *  UTC           f/team/gone  in 5m   yes     -           -         "
      "no script at path 'f/team/gone'⏎(or it is archived)\n");
}

TEST(Schedules, EmptyOddAndALongErrorWithEscapes) {
  EXPECT_EQ(printed(kSchedules, Json{{"schedules", Json::array()}}), "no schedules\n");
  for (const Json& odd : kOddDocuments) EXPECT_EQ(printed(kSchedules, odd), "no schedules\n");
  Json doc = Json::parse(R"j({"schedules": [{"name": "f/a/b", "paused": "?", "last_job_id": 3.5}]})j");
  doc["schedules"][0]["last_error"] = "\x1b[2J\x1b[Hbad\r\n" + std::string(100, 'e');
  EXPECT_EQ(printed(kSchedules, doc),
            "NAME   CRON  TZ  SCRIPT  NEXT  PAUSED  LAST-FIRED  LAST-JOB  LAST-ERROR\n"
            "f/a/b  -     -   -       -     ?       -           3.5        [2J [Hbad⏎" +
                std::string(79 - 11, 'e') + "…\n");  // 11 characters before the e's
}

TEST(Tokens, EveryTokenWithoutSecrets) {
  const Json doc = Json::parse(R"j({"tokens": [
    {"id": "tok_1a2b", "role": "admin", "group": "", "tags": [], "label": "bootstrap",
     "created_at": "2026-11-07T10:00:00.000000Z", "expires_at": null, "revoked_at": null,
     "last_used_at": "2026-12-07T09:59:48.000000Z"},
    {"id": "tok_3c4d", "role": "agent", "group": "edge", "tags": ["gpu", "bash"], "label": "edge agents",
     "created_at": "2026-12-06T10:00:00.000000Z", "expires_at": "2026-12-14T10:00:00.000000Z",
     "revoked_at": "2026-12-07T08:00:00.000000Z", "last_used_at": null}]})j");
  EXPECT_EQ(printed(kTokens, doc),
            "ID        ROLE   GROUP  TAGS      LABEL        CREATED  EXPIRES  REVOKED  LAST-USED\n"
            "tok_1a2b  admin  -      -         bootstrap    30d ago  -        -        12s ago\n"
            "tok_3c4d  agent  edge   gpu,bash  edge agents  1d ago   in 7d    2h ago   -\n");
  EXPECT_EQ(printed(kTokens, Json{{"tokens", Json::array()}}), "no tokens\n");
  for (const Json& odd : kOddDocuments) EXPECT_EQ(printed(kTokens, odd), "no tokens\n");
  EXPECT_EQ(printed(kTokens, Json::parse(R"j({"tokens": [{"id": "t", "tags": "gpu", "label": "a\tb"}]})j")),
            "ID  ROLE  GROUP  TAGS  LABEL  CREATED  EXPIRES  REVOKED  LAST-USED\n"
            "t   -     -      gpu   a b    -        -        -        -\n");
}

// print_table (common.h) pads by bytes, so a multi-byte character before the
// last column (a label "café", a cut cell's "…") shifts the columns after it.
// Enable once print_table measures cells in characters.
TEST(Tokens, NonAsciiLabelAlignsByCharacters) {
  const Json doc = Json::parse(R"j({"tokens": [{"id": "t1", "role": "operator", "label": "café"},
    {"id": "t2", "role": "operator", "label": "cafe"}]})j");
  EXPECT_EQ(printed(kTokens, doc),
            "ID  ROLE      GROUP  TAGS  LABEL  CREATED  EXPIRES  REVOKED  LAST-USED\n"
            "t1  operator  -      -     café   -        -        -        -\n"
            "t2  operator  -      -     cafe   -        -        -        -\n");
}

}  // namespace
}  // namespace quern::cli
