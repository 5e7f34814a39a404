// Implementation of xml_reader.h: positions, messages, structure checks and
// typed attribute readers.
#include "host/config/xml_reader.h"

#include <algorithm>
#include <map>
#include <set>

#include "host/config/config.h"

namespace quern::config {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string integer_hint(long long lo, long long hi) {
  const char* kind = lo == 1 ? "a positive integer" : lo == 0 ? "a non-negative integer" : "an integer";
  return std::string("expected ") + kind + " (" + std::to_string(lo) + ".." + std::to_string(hi) + ")";
}

std::string join(std::initializer_list<std::string_view> items, std::string_view before,
                 std::string_view after) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out.append(before).append(item).append(after);
  }
  return out;
}

}  // namespace

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_name(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
           c == ':' || c == '-';
  });
}

std::optional<long long> parse_integer(std::string_view text, long long lo, long long hi) {
  text = trim(text);
  if (text.empty() || text.size() > 18) return std::nullopt;
  long long value = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < lo || value > hi) return std::nullopt;
  return value;
}

XmlReader::XmlReader(std::string source, const std::string& text) : source_(std::move(source)), text_(text) {
  for (size_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') newlines_.push_back(i);
  }
}

Status XmlReader::load(std::string_view expected_root) {
  buffer_.assign(text_.begin(), text_.end());
  buffer_.push_back('\0');
  const pugi::xml_parse_result result =
      doc_.load_buffer_inplace(buffer_.data(), text_.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!result)
    return Status::error(where(line_at(result.offset)) + "XML syntax error: " + result.description());
  for (pugi::xml_node child : doc_.children()) {
    if (child.type() != pugi::node_element) continue;
    if (root_)
      return node_error(child,
                        "a second root element (only one <" + std::string(expected_root) + "> is allowed)");
    root_ = child;
  }
  if (!root_)
    return Status::error(where(1) + "no root element (expected <" + std::string(expected_root) + ">)");
  if (std::string_view(root_.name()) != expected_root) {
    return Status::error(where(line_of(root_)) + "expected root element <" + std::string(expected_root) +
                         ">, found <" + root_.name() + ">");
  }
  return Status::ok();
}

int XmlReader::line_at(std::ptrdiff_t offset) const {
  if (offset < 0) return 0;
  const auto it = std::lower_bound(newlines_.begin(), newlines_.end(), static_cast<size_t>(offset));
  return static_cast<int>(it - newlines_.begin()) + 1;
}

// Offset of a pointer into the parse buffer, or -1 if pugixml allocated the string elsewhere.
std::ptrdiff_t XmlReader::offset_of(const char* p) const {
  if (p < buffer_.data() || p >= buffer_.data() + buffer_.size()) return -1;
  return p - buffer_.data();
}

int XmlReader::line_of(pugi::xml_node node) const {
  const std::ptrdiff_t offset = node.offset_debug();
  return offset >= 0 ? line_at(offset) : line_at(offset_of(node.name()));
}

// pugixml keeps no offset for attributes; their names point into our buffer though.
int XmlReader::line_of(pugi::xml_node owner, pugi::xml_attribute attr) const {
  const std::ptrdiff_t offset = offset_of(attr.name());
  return offset >= 0 ? line_at(offset) : line_of(owner);
}

std::string XmlReader::where(int line) const {
  return line > 0 ? source_ + ":" + std::to_string(line) + ": " : source_ + ": ";
}

std::string XmlReader::location(pugi::xml_node node) const {
  return source_ + ":" + std::to_string(line_of(node));
}

Status XmlReader::node_error(pugi::xml_node node, const std::string& message) const {
  return Status::error(where(line_of(node)) + "<" + node.name() + ">: " + message);
}

Status XmlReader::attr_error(pugi::xml_node node, pugi::xml_attribute attr,
                             const std::string& message) const {
  std::string value = attr.value();
  if (value.size() > 80) value = value.substr(0, 77) + "...";
  return Status::error(where(line_of(node, attr)) + "<" + node.name() + " " + attr.name() + "=\"" + value +
                       "\">: " + message);
}

Status XmlReader::check_attributes(pugi::xml_node node,
                                   std::initializer_list<std::string_view> allowed) const {
  std::set<std::string_view> seen;
  for (pugi::xml_attribute attr : node.attributes()) {
    const std::string_view name = attr.name();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return attr_error(
          node, attr,
          allowed.size() == 0
              ? std::string("unknown attribute (this element takes no attributes)")
              : "unknown attribute \"" + std::string(name) + "\" (allowed: " + join(allowed, "", "") + ")");
    }
    // pugixml accepts duplicates; which one would win is not obvious to a reader.
    if (!seen.insert(name).second) return attr_error(node, attr, "duplicate attribute");
  }
  return Status::ok();
}

Status XmlReader::check_children(pugi::xml_node node, std::initializer_list<std::string_view> allowed) const {
  for (pugi::xml_node child : node.children()) {
    switch (child.type()) {
      case pugi::node_element:
        if (std::find(allowed.begin(), allowed.end(), std::string_view(child.name())) == allowed.end()) {
          const std::string inside =
              std::string("unknown element <") + child.name() + "> inside <" + node.name() + ">";
          return Status::error(where(line_of(child)) + inside +
                               (allowed.size() == 0 ? std::string(" (it takes no child elements)")
                                                    : " (allowed: " + join(allowed, "<", ">") + ")"));
        }
        break;
      case pugi::node_pcdata:
      case pugi::node_cdata: {
        std::string text(trim(child.value()));
        if (text.empty()) break;
        if (text.size() > 40) text = text.substr(0, 37) + "...";
        // The node starts right after '>'; point at the first visible character instead.
        std::ptrdiff_t offset = child.offset_debug();
        while (offset >= 0 && static_cast<size_t>(offset) < text_.size() &&
               trim(std::string_view(&text_[offset], 1)).empty()) {
          ++offset;
        }
        return Status::error(where(offset >= 0 ? line_at(offset) : line_of(node)) + "<" + node.name() +
                             ">: unexpected text \"" + text + "\" (settings go in attributes)");
      }
      default:
        break;  // comments, processing instructions: ignored
    }
  }
  return Status::ok();
}

Status XmlReader::check_unique_children(pugi::xml_node node) const {
  std::map<std::string_view, pugi::xml_node> first;
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    auto [it, inserted] = first.emplace(child.name(), child);
    if (!inserted) {
      return node_error(child,
                        "duplicate element (first at line " + std::to_string(line_of(it->second)) + ")");
    }
  }
  return Status::ok();
}

Status XmlReader::read_int(pugi::xml_node node, const char* name, long long lo, long long hi,
                           int& out) const {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  const std::optional<long long> value = parse_integer(attr.value(), lo, hi);
  if (!value) return attr_error(node, attr, integer_hint(lo, hi));
  out = static_cast<int>(*value);
  return Status::ok();
}

Status XmlReader::read_duration(pugi::xml_node node, const char* name, std::chrono::milliseconds& out) const {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  StatusOr<std::chrono::milliseconds> value = parse_duration(attr.value());
  if (!value) return attr_error(node, attr, value.message());
  out = *value;
  return Status::ok();
}

Status XmlReader::read_path(pugi::xml_node node, const char* name, std::filesystem::path& out) const {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  if (trim(attr.value()).empty()) return attr_error(node, attr, "expected a non-empty path");
  out = attr.value();
  return Status::ok();
}

Status XmlReader::read_bool(pugi::xml_node node, const char* name, bool& out) const {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  const std::string_view value = trim(attr.value());
  if (value == "true") {
    out = true;
  } else if (value == "false") {
    out = false;
  } else {
    return attr_error(node, attr, "expected true or false");
  }
  return Status::ok();
}

Status XmlReader::read_list(pugi::xml_node node, const char* name, const char* noun,
                            const std::function<bool(std::string_view)>& valid, const char* hint,
                            std::vector<std::string>& out) const {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  std::vector<std::string> items;
  std::string_view rest = attr.value();
  if (trim(rest).empty())
    return attr_error(node, attr, std::string("expected at least one ") + noun + " (comma-separated)");
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    if (item.empty())
      return attr_error(node, attr, std::string("empty ") + noun + " in the comma-separated list");
    if (!valid(item)) {
      return attr_error(
          node, attr, std::string("bad ") + noun + " \"" + std::string(item) + "\" (expected " + hint + ")");
    }
    if (std::find(items.begin(), items.end(), item) != items.end()) {
      return attr_error(node, attr, std::string("duplicate ") + noun + " \"" + std::string(item) + "\"");
    }
    items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  out = std::move(items);
  return Status::ok();
}

Status XmlReader::require(pugi::xml_node node, const char* name) const {
  if (node.attribute(name)) return Status::ok();
  return node_error(node, std::string("missing required attribute \"") + name + "\"");
}

}  // namespace quern::config
