// Fuzz target: what the plugin loader checks in a plugin's descriptor and in
// the text of its `resources` (host/plugin/descriptor.h), without a shared
// library: the input is turned into a descriptor as a plugin would lay it out.
//
// The input gives struct_size (often one of the sizes that matter), the ABI
// numbers, which of the 4 strings and 8 function pointers are set, the
// capabilities, the strings themselves, and at the end the resources text.
// Function pointers are set to a function that traps (never called) or NULL.
// The descriptor is copied into a heap block of exactly the bytes its
// struct_size promises (at least the 4 bytes of struct_size), so that
// AddressSanitizer sees any read past them.
//
// Properties: read_descriptor accepts exactly the descriptors the rules in
// plugin_registry.h allow (header covered, same ABI major, at least ABI 1.0's
// size, a name, create/destroy/execute) and otherwise refuses naming the
// file; what it accepts is copied field for field where struct_size covers
// it, NULL/0 where it does not (resources and host_abi only when fully
// covered); the plugin's info repeats the strings, with languages and tags
// split into trimmed, non-empty items. parse_resources gives a JSON object or
// an error that starts with its `who`.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_check.h"
#include "host/common/json_input.h"
#include "host/plugin/descriptor.h"

namespace {

using namespace quern;
using plugin::kAbi10DescriptorSize;
using plugin::kDescriptorHeaderSize;

[[noreturn]] void never_called() { __builtin_trap(); }

template <typename Fn>
Fn fake_function(bool set) {
  return set ? reinterpret_cast<Fn>(&never_called) : nullptr;
}

constexpr size_t kResourcesEnd =
    offsetof(quern_executor_descriptor, resources) + sizeof(quern_executor_descriptor::resources);
constexpr size_t kHostAbiEnd =
    offsetof(quern_executor_descriptor, host_abi) + sizeof(quern_executor_descriptor::host_abi);

bool covered(size_t size, size_t offset, size_t field_size) { return size >= offset + field_size; }
#define COVERED(size, field) \
  covered(size, offsetof(quern_executor_descriptor, field), sizeof(quern_executor_descriptor::field))

void check_list(const std::vector<std::string>& items, const char* text) {
  if (text == nullptr) {
    FUZZ_CHECK(items.empty());
    return;
  }
  size_t commas = 0;
  for (const char* p = text; *p; ++p) commas += *p == ',';
  FUZZ_CHECK(items.size() <= commas + 1);
  for (const std::string& item : items) {
    FUZZ_CHECK(!item.empty());
    FUZZ_CHECK(item.find(',') == std::string::npos);
    for (char edge : {item.front(), item.back()})
      FUZZ_CHECK(edge != ' ' && edge != '\t' && edge != '\r' && edge != '\n');
    FUZZ_CHECK(std::strstr(text, item.c_str()) != nullptr);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);

  static constexpr uint32_t kSizes[] = {0,
                                        4,
                                        kDescriptorHeaderSize,
                                        kAbi10DescriptorSize - 1,
                                        kAbi10DescriptorSize,
                                        kAbi10DescriptorSize + 4,
                                        kResourcesEnd - 1,
                                        kResourcesEnd,
                                        kHostAbiEnd - 1,
                                        sizeof(quern_executor_descriptor),
                                        sizeof(quern_executor_descriptor) + 64,
                                        0xFFFFFFFFu};
  const uint8_t size_choice = in.ConsumeIntegral<uint8_t>();
  const uint32_t struct_size = size_choice < 2 * std::size(kSizes) ? kSizes[size_choice % std::size(kSizes)]
                                                                   : in.ConsumeIntegral<uint32_t>();
  const uint16_t major = in.ConsumeBool() ? QUERN_ABI_MAJOR : in.ConsumeIntegral<uint16_t>();
  const uint16_t minor = in.ConsumeIntegral<uint16_t>();
  const uint16_t set = in.ConsumeIntegral<uint16_t>();  // bit i: string / function i is set
  const uint64_t capabilities = in.ConsumeIntegral<uint64_t>();
  std::string strings[4];
  for (std::string& s : strings) s = in.ConsumeRandomLengthString(64);  // no NUL inside: c_str() ends it
  const std::string resources_text = in.ConsumeRemainingBytesAsString();

  quern_executor_descriptor full{};
  full.struct_size = struct_size;
  full.abi_major = major;
  full.abi_minor = minor;
  const char** string_fields[] = {&full.name, &full.version, &full.languages, &full.tags};
  for (int i = 0; i < 4; ++i) *string_fields[i] = (set >> i & 1) ? strings[i].c_str() : nullptr;
  full.capabilities = capabilities;
  full.create = fake_function<decltype(full.create)>(set >> 4 & 1);
  full.destroy = fake_function<decltype(full.destroy)>(set >> 5 & 1);
  full.prepare = fake_function<decltype(full.prepare)>(set >> 6 & 1);
  full.execute = fake_function<decltype(full.execute)>(set >> 7 & 1);
  full.health = fake_function<decltype(full.health)>(set >> 8 & 1);
  full.interrupt = fake_function<decltype(full.interrupt)>(set >> 9 & 1);
  full.resources = fake_function<decltype(full.resources)>(set >> 10 & 1);
  full.host_abi = fake_function<decltype(full.host_abi)>(set >> 11 & 1);

  // Exactly the bytes struct_size promises (the loader must read no more).
  const size_t promised =
      std::max<size_t>(sizeof(uint32_t), std::min<size_t>(struct_size, sizeof(quern_executor_descriptor)));
  auto remote = std::make_unique<unsigned char[]>(promised);
  std::memcpy(remote.get(), &full, promised);

  const std::string file = "fuzz/libquern_fuzz.so";
  quern_executor_descriptor desc{};
  plugin::PluginInfo info;
  const Status s = plugin::read_descriptor(remote.get(), file, desc, info);

  const bool has_name = full.name != nullptr && full.name[0] != '\0';
  const bool acceptable = struct_size >= kDescriptorHeaderSize && major == QUERN_ABI_MAJOR &&
                          struct_size >= kAbi10DescriptorSize && has_name && full.create && full.destroy &&
                          full.execute;
  FUZZ_CHECK_MSG(s.is_ok() == acceptable, s.message());
  if (!s) {
    FUZZ_CHECK(s.code() == StatusCode::internal);
    FUZZ_CHECK_MSG(s.message().rfind("plugin '" + file + "' refused: ", 0) == 0, s.message());
  } else {
    FUZZ_CHECK(desc.struct_size == struct_size && desc.abi_major == major && desc.abi_minor == minor);
    FUZZ_CHECK(desc.name == full.name && desc.version == full.version);
    FUZZ_CHECK(desc.languages == full.languages && desc.tags == full.tags);
    FUZZ_CHECK(desc.capabilities == capabilities);
    FUZZ_CHECK(desc.create == full.create && desc.destroy == full.destroy && desc.prepare == full.prepare);
    FUZZ_CHECK(desc.execute == full.execute && desc.health == full.health &&
               desc.interrupt == full.interrupt);
    FUZZ_CHECK(COVERED(struct_size, interrupt));
    FUZZ_CHECK(desc.resources == (COVERED(struct_size, resources) ? full.resources : nullptr));
    FUZZ_CHECK(desc.host_abi == (COVERED(struct_size, host_abi) ? full.host_abi : nullptr));
    FUZZ_CHECK(info.name == full.name);
    FUZZ_CHECK(info.version == (full.version ? full.version : ""));
    FUZZ_CHECK(info.abi_major == major && info.abi_minor == minor && info.capabilities == capabilities);
    FUZZ_CHECK(info.file == file);
    check_list(info.languages, full.languages);
    check_list(info.tags, full.tags);
  }

  const std::string who = "plugin 'fuzz': resources";
  auto parsed = plugin::parse_resources(resources_text, who);
  if (parsed) {
    FUZZ_CHECK(parsed->is_object());
    FUZZ_CHECK(json_input::check_storable(*parsed, "r").is_ok());
  } else {
    FUZZ_CHECK(parsed.code() == StatusCode::internal);
    FUZZ_CHECK_MSG(parsed.message().rfind(who, 0) == 0, parsed.message());
  }
  return 0;
}
