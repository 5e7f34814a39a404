// Internal to host/config: strict reading of one XML document with pugixml,
// and the "file:line: <element attr="value">: what was expected" messages
// that every section parser (config.cpp, config_workers.cpp,
// config_routing.cpp) produces through it.
//
// Positions: pugixml parses our own buffer in place, so element, attribute
// and text pointers point into it and their distance from its start is the
// offset in the original text (parse_eol and escapes only shrink strings in
// place, they never move their starts).
//
// Thread-safety: none; one reader per parse.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pugixml.hpp>

#include "host/common/status.h"

namespace quern::config {

std::string_view trim(std::string_view s);
// Tags and group names end up in SQL arrays, log lines and command lines: keep them plain.
bool is_name(std::string_view s);
// Whole, unsigned, decimal; surrounding whitespace allowed. nullopt when not a number or out of range.
std::optional<long long> parse_integer(std::string_view text, long long lo, long long hi);

class XmlReader {
 public:
  // `text` must outlive the reader.
  XmlReader(std::string source, const std::string& text);
  XmlReader(const XmlReader&) = delete;
  XmlReader& operator=(const XmlReader&) = delete;

  // Parses the text; on success root() is the single root element, which is
  // checked to be <expected_root>.
  Status load(std::string_view expected_root);
  pugi::xml_node root() const { return root_; }

  int line_of(pugi::xml_node node) const;
  int line_of(pugi::xml_node owner, pugi::xml_attribute attr) const;  // the attribute's own line
  std::string where(int line) const;                // "file:line: " (or "file: " when the line is unknown)
  std::string location(pugi::xml_node node) const;  // "file:line" of an element

  Status node_error(pugi::xml_node node, const std::string& message) const;
  Status attr_error(pugi::xml_node node, pugi::xml_attribute attr, const std::string& message) const;

  // Only these attributes, each at most once.
  Status check_attributes(pugi::xml_node node, std::initializer_list<std::string_view> allowed) const;
  // Only these child elements, and no text: settings live in attributes.
  Status check_children(pugi::xml_node node, std::initializer_list<std::string_view> allowed) const;
  // For elements that configure one thing (<database>, <queue>...): a second copy is a mistake.
  Status check_unique_children(pugi::xml_node node) const;

  // Typed attribute readers: an absent attribute keeps `out` as it is.
  Status read_int(pugi::xml_node node, const char* name, long long lo, long long hi, int& out) const;
  Status read_duration(pugi::xml_node node, const char* name, std::chrono::milliseconds& out) const;
  Status read_path(pugi::xml_node node, const char* name, std::filesystem::path& out) const;
  Status read_bool(pugi::xml_node node, const char* name, bool& out) const;  // "true" / "false"
  // A comma-separated list of `noun`s, each trimmed, non-empty, accepted by
  // `valid` (else "bad NOUN "x" (expected HINT)") and not repeated.
  Status read_list(pugi::xml_node node, const char* name, const char* noun,
                   const std::function<bool(std::string_view)>& valid, const char* hint,
                   std::vector<std::string>& out) const;
  Status require(pugi::xml_node node, const char* name) const;

 private:
  int line_at(std::ptrdiff_t offset) const;
  std::ptrdiff_t offset_of(const char* p) const;

  std::string source_;
  const std::string& text_;
  std::vector<size_t> newlines_;  // offsets of '\n' in text_, ascending
  std::vector<char> buffer_;      // parsed in place by pugixml; must outlive doc_
  pugi::xml_document doc_;
  pugi::xml_node root_;
};

}  // namespace quern::config
