// The host side of quern_job_callbacks (quern/executor.h): the C
// trampolines a plugin's execute() calls. The quern_job_ctx* a plugin gets
// points to a JobCall, which holds the JobSink that receives what the job
// reports (the 1.0 callbacks) and the job document the 1.2 accessors read.
//
// The document is parsed at the first accessor call, not before: plugins
// that use no accessor (every plugin built before 1.2, and most C++ ones)
// pay nothing for them. Text answers are written snprintf-style (executor.h).
// A document that is not a JSON object (the worker always passes one) reads
// as an empty object: every field and argument is then QUERN_VALUE_MISSING.
//
// Thread-safety: a plugin may call every callback from several of its
// threads at once until execute() returns. The parse runs once (under a
// once_flag) and the document is only read afterwards; the JobSink
// synchronizes itself. No callback lets an exception reach the plugin.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

#include "host/plugin/plugin_registry.h"
#include "quern/executor.h"

namespace quern::plugin {

// One execute() call's context. Both arguments must outlive it.
class JobCall {
 public:
  JobCall(JobSink& sink, std::string_view job_json) noexcept : sink_(sink), json_(job_json) {}
  JobCall(const JobCall&) = delete;
  JobCall& operator=(const JobCall&) = delete;

  // What execute() hands the plugin: the table (the same for every call,
  // struct_size = this host's sizeof) and this call as its ctx.
  static const quern_job_callbacks* callbacks() noexcept;
  quern_job_ctx* ctx() noexcept { return reinterpret_cast<quern_job_ctx*>(this); }

  JobSink& sink() noexcept { return sink_; }
  // The job document, parsed on first use: a JSON object (empty when the
  // text is not one). Throws only what allocation throws.
  const nlohmann::ordered_json& document();

 private:
  JobSink& sink_;
  std::string_view json_;
  std::once_flag parsed_;
  nlohmann::ordered_json doc_;
};

}  // namespace quern::plugin
