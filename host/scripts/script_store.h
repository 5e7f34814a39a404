// The script store (quern.scripts, migration 2): named scripts with
// immutable, content-addressed versions.
//
// A version's hash is sha256_hex(language + "\n" + settings JSON + "\n" +
// content), the settings JSON being canonical (sorted keys, no spaces), so it
// identifies what runs and how, independent of the path and of who deployed
// it. Consequences: the same code deployed at two paths has one hash (two
// rows, one per path); redeploying an older version at a path (A, B, A) adds a
// new row with A's hash and makes it the latest. by_hash() returns the newest
// row with that hash.
//
// Archiving is per path: archive(path) marks all its versions archived;
// latest()/list() then hide it, by_hash() still finds them (jobs that name a
// version keep working), and the next deploy to the path makes it live again.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/common/status.h"
#include "host/queue/job_policy.h"

namespace quern::pg {
class Session;
}

namespace quern::scripts {

struct ScriptSettings {
  std::string tag;         // routing tag of its jobs; empty = the language
  int priority = 0;        // 0 = the queue's default, else 1..100
  int timeout_s = 0;       // 0 = none
  bool dedicated = false;  // run on a dedicated (warm) worker
  // Limits shared by its jobs; an empty key means "script:<path>" (a
  // per-script limit). The key may use $path, $language and $args[name].
  std::optional<queue::ConcurrencyLimit> concurrency;
  std::optional<queue::RetryPolicy> retry;
  std::optional<queue::JobLimits> limits;  // tightens the worker group's limits
  bool operator==(const ScriptSettings&) const = default;
};
// {"dedicated":..,"priority":..,"tag":..,"timeout_s":..} plus "concurrency",
// "retry" and "limits" only when set, so that hashes of versions deployed before those
// existed do not change. from_json accepts missing keys (defaults), so rows
// written before a field existed still read.
void to_json(nlohmann::json& j, const ScriptSettings& s);
void from_json(const nlohmann::json& j, ScriptSettings& s);

struct NewScript {
  std::string path;
  std::string language;
  std::string content;
  ScriptSettings settings;
  std::string summary;
  std::string deployed_by;
};

struct ScriptVersion {
  std::string path, hash, language, content, summary, deployed_by;
  ScriptSettings settings;
  std::chrono::system_clock::time_point created_at;
  bool archived = false;
};

// "f/<folder>/<name>" or "u/<user>/<name>"; more folder levels are allowed
// ("f/a/b/c"). Segments are [a-z0-9_-]+, 1..64 characters; at most 255 in
// all. The message says what is wrong.
Status validate_path(std::string_view path);

// Path as above; language non-empty [a-z0-9_]+ (at most 64); content at most
// 1 MiB; priority 0 or 1..100; timeout_s >= 0; tag empty or
// [A-Za-z0-9_.:-]+ (at most 128); summary at most 1000 bytes.
Status validate(const NewScript& script);

// The version hash described at the top of this file.
std::string script_hash(const std::string& language, const ScriptSettings& settings,
                        const std::string& content);

// Owns one database connection: NOT thread-safe (use one per thread; the
// server borrows them from a pool). A lost connection is reported by the
// failing call and re-opened by the next one. Every database error is
// returned as a Status; no exception escapes.
class ScriptStore {
 public:
  // Connects now: an unreachable database is reported here.
  static StatusOr<std::unique_ptr<ScriptStore>> connect(const std::string& database_url);
  // Over a session shared with other stores (the server's pool).
  static std::unique_ptr<ScriptStore> over(std::shared_ptr<pg::Session> session);
  ~ScriptStore();
  ScriptStore(const ScriptStore&) = delete;
  ScriptStore& operator=(const ScriptStore&) = delete;

  // Validates, then stores a new version unless the path's latest version
  // already has this hash, in which case that version is returned (summary
  // and deployed_by of the request are then ignored). Deploying to an
  // archived path un-archives it. Concurrent deploys to one path are
  // serialized (advisory lock), so they never create duplicate versions.
  StatusOr<ScriptVersion> deploy(const NewScript& script);
  // nullopt if the path has no version or is archived.
  StatusOr<std::optional<ScriptVersion>> latest(const std::string& path);
  // The newest row with this hash (archived or not); nullopt if none.
  StatusOr<std::optional<ScriptVersion>> by_hash(const std::string& hash);
  // Latest version per path, sorted by path; content left empty.
  StatusOr<std::vector<ScriptVersion>> list(bool include_archived = false);
  // All versions of a path (archived too), newest first; content left empty
  // (a listing: fetch a version's content with by_hash).
  StatusOr<std::vector<ScriptVersion>> versions(const std::string& path);
  // Archives every version of the path (idempotent). false = no such path.
  StatusOr<bool> archive(const std::string& path);

 private:
  ScriptStore();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quern::scripts
