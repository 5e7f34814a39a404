// Validation of script paths and deploy requests, settings JSON and the
// version hash: everything of the script store that needs no database.
#include <algorithm>

#include "host/common/crypto.h"
#include "host/common/utf8.h"
#include "host/common/validation.h"
#include "host/scripts/script_store.h"

namespace quern::scripts {
namespace {

constexpr size_t kMaxPath = 255;
constexpr size_t kMaxSegment = 64;
constexpr size_t kMaxContent = 1024 * 1024;
constexpr size_t kMaxLanguage = 64;
constexpr size_t kMaxSummary = 1000;

bool is_segment_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

}  // namespace

void to_json(nlohmann::json& j, const ScriptSettings& s) {
  // nlohmann::json (not ordered_json) keeps object keys sorted, so dump()
  // of this is canonical: the version hash depends on it.
  j = nlohmann::json{
      {"tag", s.tag}, {"priority", s.priority}, {"timeout_s", s.timeout_s}, {"dedicated", s.dedicated}};
  if (s.concurrency) j["concurrency"] = queue::to_json(*s.concurrency);
  if (s.retry) j["retry"] = queue::to_json(*s.retry);
  if (s.limits) j["limits"] = queue::to_json(*s.limits);
}

void from_json(const nlohmann::json& j, ScriptSettings& s) {
  s = ScriptSettings{};
  s.tag = j.value("tag", std::string());
  s.priority = j.value("priority", 0);
  s.timeout_s = j.value("timeout_s", 0);
  s.dedicated = j.value("dedicated", false);
  // Stored settings were validated at deploy; a row that no longer parses
  // (a field removed later) loses only that policy.
  if (j.contains("concurrency")) {
    if (auto c = queue::concurrency_from_json(j["concurrency"], "concurrency"); c.is_ok()) s.concurrency = *c;
  }
  if (j.contains("retry")) {
    if (auto r = queue::retry_from_json(j["retry"], "retry"); r.is_ok()) s.retry = *r;
  }
  if (j.contains("limits")) {
    if (auto l = queue::limits_from_json(j["limits"], "limits"); l.is_ok()) s.limits = *l;
  }
}

std::string script_hash(const std::string& language, const ScriptSettings& settings,
                        const std::string& content) {
  const std::string settings_json = nlohmann::json(settings).dump();
  std::string text;
  text.reserve(language.size() + settings_json.size() + content.size() + 2);
  text.append(language).append("\n").append(settings_json).append("\n").append(content);
  return crypto::sha256_hex(text);
}

Status validate_path(std::string_view path) {
  const std::string quoted = "script path \"" + text::to_storable(path.substr(0, 300)) + "\"";
  if (path.empty())
    return Status::invalid("script path is empty (expected f/<folder>/<name> or u/<user>/<name>)");
  if (path.size() > kMaxPath) return Status::invalid(quoted + " is longer than 255 characters");
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    segments.push_back(
        path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (segments[0] != "f" && segments[0] != "u")
    return Status::invalid(quoted + " must start with f/ (folder) or u/ (user), as in f/<folder>/<name>");
  if (segments.size() < 3)
    return Status::invalid(quoted + " needs a " + (segments[0] == "f" ? "folder" : "user") +
                           " and a name, as in " + std::string(segments[0]) + "/<" +
                           (segments[0] == "f" ? "folder" : "user") + ">/<name>");
  for (size_t i = 1; i < segments.size(); ++i) {
    const std::string_view seg = segments[i];
    if (seg.empty())
      return Status::invalid(quoted + " has an empty segment (a leading, trailing or double slash)");
    if (seg.size() > kMaxSegment)
      return Status::invalid(quoted + ": segment \"" + text::to_storable(seg.substr(0, 80)) +
                             "\" is longer than 64 characters");
    auto bad = std::find_if_not(seg.begin(), seg.end(), is_segment_char);
    if (bad != seg.end())
      return Status::invalid(quoted + ": segment \"" + std::string(seg) +
                             "\" may only hold a-z, 0-9, _ and -");
  }
  return Status::ok();
}

Status validate(const NewScript& s) {
  if (Status st = validate_path(s.path); !st) return st;
  if (s.language.empty()) return Status::invalid("language is required (e.g. \"bash\")");
  if (s.language.size() > kMaxLanguage || !std::all_of(s.language.begin(), s.language.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      }))
    return Status::invalid("language \"" + text::to_storable(s.language.substr(0, 80)) +
                           "\" may only hold a-z, 0-9 and _");
  if (s.content.size() > kMaxContent)
    return Status::invalid("content is " + std::to_string(s.content.size()) +
                           " bytes, more than the limit of 1 MiB");
  if (!text::is_storable(s.content)) return Status::invalid("content must be UTF-8 text without NUL bytes");
  if (s.settings.priority != 0 && (s.settings.priority < 1 || s.settings.priority > 100))
    return Status::invalid("priority must be between 1 and 100 (or 0 for the default), got " +
                           std::to_string(s.settings.priority));
  if (s.settings.timeout_s < 0)
    return Status::invalid("timeout_s must not be negative, got " + std::to_string(s.settings.timeout_s));
  if (!s.settings.tag.empty()) {
    if (Status st = validation::check_tag(s.settings.tag, "tag"); !st) return st;
  }
  if (s.summary.size() > kMaxSummary) return Status::invalid("summary is longer than 1000 bytes");
  if (!text::is_storable(s.summary) || !text::is_storable(s.deployed_by))
    return Status::invalid("summary and deployed_by must be UTF-8 text without NUL bytes");
  return Status::ok();
}

}  // namespace quern::scripts
