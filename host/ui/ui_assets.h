// The web UI's files (host/ui/assets/), embedded in the binary: served by
// `quern server` at /ui/ (host/server/api_ui.cpp, docs/UI.md).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace quern::ui {

struct Asset {
  std::string_view path;  // relative to assets/, e.g. "index.html", "pages/jobs.js"
  std::string_view content;
  std::string_view content_type;  // by extension; application/octet-stream when unknown
};

// The asset at `path` (no leading slash), or nullptr.
const Asset* find_asset(std::string_view path);
// Every asset, by path.
const std::vector<Asset>& assets();

}  // namespace quern::ui
