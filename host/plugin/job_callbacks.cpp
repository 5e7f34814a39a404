// Implementation of job_callbacks.h: the callback table and its trampolines.
#include "host/plugin/job_callbacks.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "host/common/json_input.h"

namespace quern::plugin {
namespace {

using Json = nlohmann::ordered_json;

std::string_view to_view(quern_str s) {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.size);
}

JobCall& call_of(quern_job_ctx* ctx) { return *reinterpret_cast<JobCall*>(ctx); }

// ---- 1.0: what the job reports, to the JobSink. Exceptions from the sink
// must not unwind into plugin code, so each callback swallows them.

void cb_log_line(quern_job_ctx* ctx, int32_t stream, quern_str line) {
  try {
    call_of(ctx).sink().log_line(stream, to_view(line));
  } catch (...) {
  }
}
void cb_progress(quern_job_ctx* ctx, double fraction) {
  try {
    call_of(ctx).sink().progress(fraction);
  } catch (...) {
  }
}
int32_t cb_is_cancelled(quern_job_ctx* ctx) {
  try {
    return call_of(ctx).sink().is_cancelled();
  } catch (...) {
    // A sink that cannot answer is treated as "keep running"; the host still
    // enforces timeouts through the process group.
    return QUERN_RUNNING;
  }
}
void cb_set_result(quern_job_ctx* ctx, quern_str json) {
  try {
    call_of(ctx).sink().set_result(to_view(json));
  } catch (...) {
  }
}
void cb_set_error(quern_job_ctx* ctx, quern_str message) {
  try {
    call_of(ctx).sink().set_error(to_view(message));
  } catch (...) {
  }
}
void cb_set_process_group(quern_job_ctx* ctx, int64_t pgid) {
  try {
    call_of(ctx).sink().set_process_group(pgid);
  } catch (...) {
  }
}

// ---- 1.2: the job document.

// snprintf-style: at most out.size-1 bytes and a NUL; the whole length back.
int64_t write_text(quern_errbuf out, std::string_view text) {
  if (out.data != nullptr && out.size > 0) {
    const std::size_t n = text.size() < out.size ? text.size() : static_cast<std::size_t>(out.size - 1);
    if (n > 0) std::memcpy(out.data, text.data(), n);
    out.data[n] = '\0';
  }
  return static_cast<int64_t>(text.size());
}
// No value: "" in the buffer, the negative code back.
int64_t no_text(quern_errbuf out, int64_t code) {
  if (out.data != nullptr && out.size > 0) out.data[0] = '\0';
  return code;
}

// The document key of a QUERN_FIELD_*, and whether it is a text field.
struct Field {
  const char* key;
  bool text;
};
const Field* field_of(int32_t field) {
  static const Field kFields[] = {{"code", true},      {"language", true}, {"script_path", true},
                                  {"workdir", true},   {"id", false},      {"attempt", false},
                                  {"timeout_s", false}};
  if (field < QUERN_FIELD_CODE || field > QUERN_FIELD_TIMEOUT_S) return nullptr;
  return &kFields[field - QUERN_FIELD_CODE];
}

// The document's member `key` ("args", "env") when it is an object, else
// nullptr (absent, or of another type: read as no entries).
const Json::object_t* object_member(JobCall& call, const char* key) {
  const Json& doc = call.document();
  auto it = doc.find(key);
  return it != doc.end() && it->is_object() ? &it->get_ref<const Json::object_t&>() : nullptr;
}
const Json* arg(JobCall& call, quern_str name) {
  const Json::object_t* args = object_member(call, "args");
  if (args == nullptr) return nullptr;
  auto it = args->find(std::string(to_view(name)));
  return it == args->end() ? nullptr : &it->second;
}

// A JSON integer within int64 into *out: 0, or QUERN_VALUE_WRONG_TYPE.
int32_t integer_value(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return QUERN_VALUE_WRONG_TYPE;
    if (out != nullptr) *out = static_cast<int64_t>(u);
    return 0;
  }
  if (!v.is_number_integer()) return QUERN_VALUE_WRONG_TYPE;
  if (out != nullptr) *out = v.get<int64_t>();
  return 0;
}

int64_t cb_field_text(quern_job_ctx* ctx, int32_t field, quern_errbuf out) {
  try {
    const Field* f = field_of(field);
    if (f == nullptr) return no_text(out, QUERN_VALUE_MISSING);
    const Json& doc = call_of(ctx).document();
    auto it = doc.find(f->key);
    if (it == doc.end()) return no_text(out, QUERN_VALUE_MISSING);
    if (!f->text || !it->is_string()) return no_text(out, QUERN_VALUE_WRONG_TYPE);
    return write_text(out, it->get_ref<const std::string&>());
  } catch (...) {
    return no_text(out, QUERN_VALUE_MISSING);
  }
}

int32_t cb_field_int(quern_job_ctx* ctx, int32_t field, int64_t* out) {
  try {
    const Field* f = field_of(field);
    if (f == nullptr) return QUERN_VALUE_MISSING;
    const Json& doc = call_of(ctx).document();
    auto it = doc.find(f->key);
    if (it == doc.end()) return QUERN_VALUE_MISSING;
    if (f->text) return QUERN_VALUE_WRONG_TYPE;
    return integer_value(*it, out);
  } catch (...) {
    return QUERN_VALUE_MISSING;
  }
}

int64_t cb_arg_count(quern_job_ctx* ctx) {
  try {
    const Json::object_t* args = object_member(call_of(ctx), "args");
    return args == nullptr ? 0 : static_cast<int64_t>(args->size());
  } catch (...) {
    return 0;
  }
}

int64_t cb_arg_name(quern_job_ctx* ctx, uint64_t index, quern_errbuf out) {
  try {
    const Json::object_t* args = object_member(call_of(ctx), "args");
    if (args == nullptr || index >= args->size()) return no_text(out, QUERN_VALUE_MISSING);
    // ordered_map is a vector of pairs: the submission's order, by index.
    return write_text(out, (args->begin() + static_cast<std::ptrdiff_t>(index))->first);
  } catch (...) {
    return no_text(out, QUERN_VALUE_MISSING);
  }
}

int64_t cb_arg_json(quern_job_ctx* ctx, quern_str name, quern_errbuf out) {
  try {
    const Json* v = arg(call_of(ctx), name);
    if (v == nullptr) return no_text(out, QUERN_VALUE_MISSING);
    return write_text(out, v->dump());
  } catch (...) {
    return no_text(out, QUERN_VALUE_MISSING);
  }
}

int64_t cb_arg_string(quern_job_ctx* ctx, quern_str name, quern_errbuf out) {
  try {
    const Json* v = arg(call_of(ctx), name);
    if (v == nullptr) return no_text(out, QUERN_VALUE_MISSING);
    if (!v->is_string()) return no_text(out, QUERN_VALUE_WRONG_TYPE);
    return write_text(out, v->get_ref<const std::string&>());
  } catch (...) {
    return no_text(out, QUERN_VALUE_MISSING);
  }
}

int32_t cb_arg_int(quern_job_ctx* ctx, quern_str name, int64_t* out) {
  try {
    const Json* v = arg(call_of(ctx), name);
    return v == nullptr ? QUERN_VALUE_MISSING : integer_value(*v, out);
  } catch (...) {
    return QUERN_VALUE_MISSING;
  }
}

int32_t cb_arg_double(quern_job_ctx* ctx, quern_str name, double* out) {
  try {
    const Json* v = arg(call_of(ctx), name);
    if (v == nullptr) return QUERN_VALUE_MISSING;
    if (!v->is_number()) return QUERN_VALUE_WRONG_TYPE;
    if (out != nullptr) *out = v->get<double>();
    return 0;
  } catch (...) {
    return QUERN_VALUE_MISSING;
  }
}

int32_t cb_arg_bool(quern_job_ctx* ctx, quern_str name, int32_t* out) {
  try {
    const Json* v = arg(call_of(ctx), name);
    if (v == nullptr) return QUERN_VALUE_MISSING;
    if (!v->is_boolean()) return QUERN_VALUE_WRONG_TYPE;
    if (out != nullptr) *out = v->get<bool>() ? 1 : 0;
    return 0;
  } catch (...) {
    return QUERN_VALUE_MISSING;
  }
}

int64_t cb_env_count(quern_job_ctx* ctx) {
  try {
    const Json::object_t* env = object_member(call_of(ctx), "env");
    return env == nullptr ? 0 : static_cast<int64_t>(env->size());
  } catch (...) {
    return 0;
  }
}

int64_t cb_env_entry(quern_job_ctx* ctx, uint64_t index, quern_errbuf out) {
  try {
    const Json::object_t* env = object_member(call_of(ctx), "env");
    if (env == nullptr || index >= env->size()) return no_text(out, QUERN_VALUE_MISSING);
    const auto& [name, value] = *(env->begin() + static_cast<std::ptrdiff_t>(index));
    // The worker writes strings; anything else is passed as its JSON text.
    return write_text(out, name + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));
  } catch (...) {
    return no_text(out, QUERN_VALUE_MISSING);
  }
}

// Every field set: a plugin of any minor finds what it knows.
quern_job_callbacks make_callbacks() {
  quern_job_callbacks cb{};
  cb.struct_size = sizeof(quern_job_callbacks);
  cb.log_line = &cb_log_line;
  cb.progress = &cb_progress;
  cb.is_cancelled = &cb_is_cancelled;
  cb.set_result = &cb_set_result;
  cb.set_error = &cb_set_error;
  cb.set_process_group = &cb_set_process_group;
  cb.field_text = &cb_field_text;
  cb.field_int = &cb_field_int;
  cb.arg_count = &cb_arg_count;
  cb.arg_name = &cb_arg_name;
  cb.arg_json = &cb_arg_json;
  cb.arg_string = &cb_arg_string;
  cb.arg_int = &cb_arg_int;
  cb.arg_double = &cb_arg_double;
  cb.arg_bool = &cb_arg_bool;
  cb.env_count = &cb_env_count;
  cb.env_entry = &cb_env_entry;
  return cb;
}

}  // namespace

const quern_job_callbacks* JobCall::callbacks() noexcept {
  static const quern_job_callbacks table = make_callbacks();
  return &table;
}

const nlohmann::ordered_json& JobCall::document() {
  std::call_once(parsed_, [this] {
    // Not storable: a "\u0000" in an argument is the plugin's to judge.
    auto parsed = json_input::parse<Json>(json_, "the job document", /*storable=*/false);
    doc_ = parsed && parsed->is_object() ? std::move(parsed).value() : Json::object();
  });
  return doc_;
}

}  // namespace quern::plugin
