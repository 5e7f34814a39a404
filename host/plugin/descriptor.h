// Internal to host/plugin: the checks the loader applies to what a plugin
// hands it, as pure functions (plugin_registry.cpp uses them; the fuzz target
// tests/fuzz/fuzz_plugin_descriptor.cpp drives them without a shared library).
//
// Thread-safe: no state.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "host/common/status.h"
#include "host/plugin/plugin_registry.h"
#include "quern/executor.h"

namespace quern::plugin {

// Size of the descriptor as ABI 1.0 defines it: everything up to and
// including `interrupt`. A later 1.x host's struct may be longer; a plugin
// must still cover at least this much.
inline constexpr std::size_t kAbi10DescriptorSize =
    offsetof(quern_executor_descriptor, interrupt) + sizeof(quern_executor_descriptor::interrupt);
// The header fields that never change: struct_size, abi_major, abi_minor.
inline constexpr std::size_t kDescriptorHeaderSize = offsetof(quern_executor_descriptor, name);

// "plugin '<file>' refused: <reason>" (Status::error).
Status refuse(const std::filesystem::path& file, const std::string& reason);

// Checks and copies the descriptor a plugin's entry function returned.
// `remote` is read byte-wise and never beyond what its struct_size says:
// 4 bytes (struct_size), then the header (abi_major, abi_minor) only when
// struct_size covers it, then min(struct_size, sizeof(quern_executor_descriptor))
// bytes. The strings it points to (name, version, languages, tags) are read
// as NUL-terminated text; its function pointers are copied, never called.
//
// On success `desc` is the copy (fields struct_size does not fully cover read
// as NULL / 0) and `info` describes it (file = `file`). Refusals (see
// PluginRegistry::load_file) name `file` through refuse(). Not checked here:
// a duplicate name, which needs the registry.
Status read_descriptor(const void* remote, const std::filesystem::path& file, quern_executor_descriptor& desc,
                       PluginInfo& info);

// The text a plugin's `resources` wrote (ABI 1.1): a JSON object within the
// host's JSON limits. Errors (Status::error) start with `who`.
StatusOr<nlohmann::json> parse_resources(std::string_view text, const std::string& who);

}  // namespace quern::plugin
