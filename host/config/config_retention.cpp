// <retention completed-jobs="30d" logs="14d"/>: how long finished jobs and
// their logs are kept (docs/CONFIG.md). What pruning does with these numbers
// is host/retention's.
#include <string>

#include "host/config/config_sections.h"

namespace quern::config {

Status parse_retention(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {"completed-jobs", "logs"}); !s) return s;
  if (Status s = r.check_children(node, {}); !s) return s;
  using Period = std::optional<std::chrono::milliseconds>;
  for (const auto& [name, out] :
       {std::pair<const char*, Period*>{"completed-jobs", &config.retention_completed_jobs},
        std::pair<const char*, Period*>{"logs", &config.retention_logs}}) {
    pugi::xml_attribute attr = node.attribute(name);
    if (!attr) continue;
    // Only the exact word turns pruning off: an empty or mistyped value must
    // not silently keep (or delete) everything.
    if (trim(attr.value()) == "off") {
      out->reset();
      continue;
    }
    StatusOr<std::chrono::milliseconds> value = parse_duration(attr.value());
    if (!value)
      return r.attr_error(node, attr,
                          R"(expected "off" or a duration like "30d", "12h" or "90m" (at most 10 years))");
    if (value->count() < 1000)
      return r.attr_error(node, attr, R"(must be at least 1s (write "off" to keep them forever))");
    *out = *value;
  }
  return Status::ok();
}

}  // namespace quern::config
