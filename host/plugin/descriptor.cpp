// Implementation of descriptor.h: the descriptor and resources checks of the
// plugin loader.
#include "host/plugin/descriptor.h"

#include <algorithm>
#include <cstring>

#include "host/common/json_input.h"

namespace quern::plugin {
namespace {

// Splits "a, b,,c" into {"a", "b", "c"}.
std::vector<std::string> split_list(const char* text) {
  std::vector<std::string> out;
  if (text == nullptr) return out;
  std::string_view rest(text);
  while (true) {
    std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    const char* ws = " \t\r\n";
    std::size_t b = item.find_first_not_of(ws);
    if (b != std::string_view::npos) {
      std::size_t e = item.find_last_not_of(ws);
      out.emplace_back(item.substr(b, e - b + 1));
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

Status refuse(const std::filesystem::path& file, const std::string& reason) {
  return Status::error("plugin '" + file.string() + "' refused: " + reason);
}

Status read_descriptor(const void* remote, const std::filesystem::path& file, quern_executor_descriptor& desc,
                       PluginInfo& info) {
  // The header fields first, byte-wise: nothing else may be read before the
  // size and major version are known.
  uint32_t size = 0;
  std::memcpy(&size, remote, sizeof size);
  if (size < kDescriptorHeaderSize)
    return refuse(file, "descriptor is truncated (struct_size " + std::to_string(size) + ")");
  uint16_t major = 0, minor = 0;
  std::memcpy(&major, static_cast<const char*>(remote) + offsetof(quern_executor_descriptor, abi_major),
              sizeof major);
  std::memcpy(&minor, static_cast<const char*>(remote) + offsetof(quern_executor_descriptor, abi_minor),
              sizeof minor);
  if (major != QUERN_ABI_MAJOR)
    return refuse(
        file, "built for ABI " + std::to_string(major) + ", host speaks " + std::to_string(QUERN_ABI_MAJOR));
  if (size < kAbi10DescriptorSize)
    return refuse(file, "descriptor is truncated (struct_size " + std::to_string(size) +
                            ", ABI 1.0 needs at least " + std::to_string(kAbi10DescriptorSize) + ")");
  desc = quern_executor_descriptor{};
  std::memcpy(&desc, remote, std::min<std::size_t>(size, sizeof desc));
  // A field is read only when struct_size covers all of it: a size that ends
  // inside a later field must not leave half a pointer behind.
  if (size < offsetof(quern_executor_descriptor, resources) + sizeof(quern_executor_descriptor::resources))
    desc.resources = nullptr;
  if (size < offsetof(quern_executor_descriptor, host_abi) + sizeof(quern_executor_descriptor::host_abi))
    desc.host_abi = nullptr;
  const quern_executor_descriptor& d = desc;

  if (d.name == nullptr || d.name[0] == '\0') return refuse(file, "descriptor has no name");
  std::string missing;
  if (d.create == nullptr) missing += " create";
  if (d.destroy == nullptr) missing += " destroy";
  if (d.execute == nullptr) missing += " execute";
  if (!missing.empty())
    return refuse(file, std::string("plugin '") + d.name + "' lacks required function(s):" + missing);

  info.name = d.name;
  info.version = d.version != nullptr ? d.version : "";
  info.abi_major = major;
  info.abi_minor = minor;
  info.languages = split_list(d.languages);
  info.tags = split_list(d.tags);
  info.capabilities = d.capabilities;
  info.file = file;
  return Status::ok();
}

StatusOr<nlohmann::json> parse_resources(std::string_view text, const std::string& who) {
  auto parsed = json_input::parse(text, who);
  if (!parsed) return Status::error(parsed.message());
  if (!parsed->is_object())
    return Status::error(who + ": must be a JSON object, got " + std::string(parsed->type_name()));
  return parsed;
}

}  // namespace quern::plugin
