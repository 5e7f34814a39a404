// Header-only C++17 wrapper over the executor C ABI (quern/executor.h).
//
// A plugin author writes a plain class and one registration macro:
//
//   class Echo {
//    public:
//     explicit Echo(std::string_view config_json);   // or a default constructor
//     quern_status execute(std::string_view job_json, quern::sdk::JobContext& ctx);
//     // Optional members; when absent the descriptor's pointer stays NULL:
//     void prepare(std::string_view script_json);    // throw to report failure
//     std::string health();                          // "" = healthy, else why not
//     void interrupt();                              // called from another thread
//     std::string resources();                       // (ABI 1.1) capacity, a JSON object
//   };
//   QUERN_EXECUTOR_PLUGIN(Echo, "echo", "1.0.0", "echo", "echo", 0)
//
// The macro defines the static descriptor and the exported entry function
// quern_executor_entry_v1. Every generated C function catches all exceptions:
// the constructor's / prepare's / health's / resources' exceptions become error
// text in the host's buffer, execute's become set_error + QUERN_STATUS_INTERNAL. Nothing
// the host passes in is kept past the call it was passed to.
//
// Thread-safety: the host calls execute on one instance from one thread at a
// time; interrupt() may be called from any thread while execute runs, so an
// author's interrupt() must be thread-safe (an std::atomic<bool> is enough).
// JobContext methods may be called from any thread until execute returns.
#ifndef QUERN_EXECUTOR_HPP
#define QUERN_EXECUTOR_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "quern/executor.h"

namespace quern::sdk {

// The job's view of the host callbacks. Only reads callback fields that the
// host's callbacks->struct_size covers (an older host may pass a shorter
// table); a call to a callback the host lacks is a no-op (cancelled() then
// reports QUERN_RUNNING). Cheap to copy; valid only until execute returns.
class JobContext {
 public:
  JobContext(const quern_job_callbacks* callbacks, quern_job_ctx* ctx) noexcept : cb_(callbacks), ctx_(ctx) {}

  // One line of output without its newline; stream is QUERN_STREAM_*.
  void log(int32_t stream, std::string_view line) const noexcept {
    if (auto fn = field(&quern_job_callbacks::log_line, offsetof(quern_job_callbacks, log_line)))
      fn(ctx_, stream, to_str(line));
  }
  void progress(double fraction) const noexcept {
    if (auto fn = field(&quern_job_callbacks::progress, offsetof(quern_job_callbacks, progress)))
      fn(ctx_, fraction);
  }
  // QUERN_RUNNING, or why the job must stop (QUERN_CANCEL_REQUESTED,
  // QUERN_TIMEOUT_REACHED, QUERN_SHUTDOWN).
  int32_t cancelled() const noexcept {
    if (auto fn = field(&quern_job_callbacks::is_cancelled, offsetof(quern_job_callbacks, is_cancelled)))
      return fn(ctx_);
    return QUERN_RUNNING;
  }
  // The job's result as JSON text; the last call wins.
  void set_result(std::string_view json) const noexcept {
    if (auto fn = field(&quern_job_callbacks::set_result, offsetof(quern_job_callbacks, set_result)))
      fn(ctx_, to_str(json));
  }
  // A human-readable error; the last call wins.
  void set_error(std::string_view message) const noexcept {
    if (auto fn = field(&quern_job_callbacks::set_error, offsetof(quern_job_callbacks, set_error)))
      fn(ctx_, to_str(message));
  }
  // The process group of a child started for this job; 0 when it is gone.
  void set_process_group(int64_t pgid) const noexcept {
    if (auto fn =
            field(&quern_job_callbacks::set_process_group, offsetof(quern_job_callbacks, set_process_group)))
      fn(ctx_, pgid);
  }

 private:
  static quern_str to_str(std::string_view s) noexcept {
    return quern_str{s.data(), static_cast<uint64_t>(s.size())};
  }
  // The callback at `offset`, or nullptr when the host's table is too short
  // to contain it (or the host left it NULL).
  template <typename Fn>
  Fn field(Fn quern_job_callbacks::*member, std::size_t offset) const noexcept {
    if (cb_ == nullptr || offset + sizeof(Fn) > cb_->struct_size) return nullptr;
    return cb_->*member;
  }

  const quern_job_callbacks* cb_;
  quern_job_ctx* ctx_;
};

// How a job that stopped because of `why` (a cancelled() value other than
// QUERN_RUNNING) ends: sets its error ("timed out", "stopped: worker
// shutting down" or "canceled", then `detail` if any) and returns the status
// to return from execute — QUERN_STATUS_TIMEOUT for a timeout, else
// QUERN_STATUS_CANCELED (the host hands a job stopped by a shutdown back to
// the queue).
inline quern_status stop_status(const JobContext& ctx, int32_t why, std::string_view detail = {}) {
  std::string message = why == QUERN_TIMEOUT_REACHED ? "timed out"
                        : why == QUERN_SHUTDOWN      ? "stopped: worker shutting down"
                                                     : "canceled";
  message.append(detail.data(), detail.size());
  ctx.set_error(message);
  return why == QUERN_TIMEOUT_REACHED ? QUERN_STATUS_TIMEOUT : QUERN_STATUS_CANCELED;
}

namespace detail {

// Writes msg into the caller's buffer: at most size-1 bytes, NUL-terminated.
inline void write_error(quern_errbuf err, const char* msg) noexcept {
  if (err.data == nullptr || err.size == 0) return;
  if (msg == nullptr) msg = "";
  std::size_t n = std::strlen(msg);
  if (n > err.size - 1) n = static_cast<std::size_t>(err.size - 1);
  std::memcpy(err.data, msg, n);
  err.data[n] = '\0';
}

inline std::string_view to_view(quern_str s) noexcept {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.size);
}

// Detection of the optional members (C++17 void_t idiom).
template <typename, typename = void>
struct has_prepare : std::false_type {};
template <typename T>
struct has_prepare<T, std::void_t<decltype(std::declval<T&>().prepare(std::string_view()))>>
    : std::true_type {};

template <typename, typename = void>
struct has_health : std::false_type {};
template <typename T>
struct has_health<T, std::void_t<decltype(std::string(std::declval<T&>().health()))>> : std::true_type {};

template <typename, typename = void>
struct has_interrupt : std::false_type {};
template <typename T>
struct has_interrupt<T, std::void_t<decltype(std::declval<T&>().interrupt())>> : std::true_type {};

template <typename, typename = void>
struct has_resources : std::false_type {};
template <typename T>
struct has_resources<T, std::void_t<decltype(std::string(std::declval<T&>().resources()))>> : std::true_type {
};

// The C functions generated for class T. Each is a complete exception
// barrier: nothing escapes into the host.
template <typename T>
struct Adapter {
  static T* self(quern_instance* instance) noexcept { return reinterpret_cast<T*>(instance); }

  static int32_t create(quern_str config_json, quern_instance** out, quern_errbuf err) noexcept {
    if (out == nullptr) {
      write_error(err, "create: out is NULL");
      return 1;
    }
    *out = nullptr;
    try {
      T* p;
      if constexpr (std::is_constructible_v<T, std::string_view>) {
        p = new T(to_view(config_json));
      } else {
        static_assert(std::is_default_constructible_v<T>,
                      "executor class needs a (std::string_view config_json) or default constructor");
        p = new T();
      }
      *out = reinterpret_cast<quern_instance*>(p);
      return 0;
    } catch (const std::exception& e) {
      write_error(err, e.what());
    } catch (...) {
      write_error(err, "unknown exception in constructor");
    }
    return 1;
  }

  static void destroy(quern_instance* instance) noexcept {
    // A throwing destructor would terminate here (noexcept); that is the
    // C++ default for destructors anyway.
    delete self(instance);
  }

  static int32_t prepare(quern_instance* instance, quern_str script_json, quern_errbuf err) noexcept {
    try {
      self(instance)->prepare(to_view(script_json));
      return 0;
    } catch (const std::exception& e) {
      write_error(err, e.what());
    } catch (...) {
      write_error(err, "unknown exception in prepare");
    }
    return 1;
  }

  static int32_t execute(quern_instance* instance, quern_str job_json, const quern_job_callbacks* callbacks,
                         quern_job_ctx* ctx) noexcept {
    JobContext job(callbacks, ctx);
    // Formatted without allocation so that bad_alloc is reported too.
    char msg[512];
    try {
      return static_cast<int32_t>(self(instance)->execute(to_view(job_json), job));
    } catch (const std::exception& e) {
      std::snprintf(msg, sizeof msg, "internal error in executor: %s", e.what());
    } catch (...) {
      std::snprintf(msg, sizeof msg, "internal error in executor: unknown exception");
    }
    job.set_error(msg);
    return QUERN_STATUS_INTERNAL;
  }

  static int32_t health(quern_instance* instance, quern_errbuf err) noexcept {
    try {
      std::string why = self(instance)->health();
      if (why.empty()) return 0;
      write_error(err, why.c_str());
    } catch (const std::exception& e) {
      write_error(err, e.what());
    } catch (...) {
      write_error(err, "unknown exception in health");
    }
    return 1;
  }

  static void interrupt(quern_instance* instance) noexcept {
    try {
      self(instance)->interrupt();
    } catch (...) {
      // Nothing to report to: interrupt has no error channel.
    }
  }

  // snprintf-style, as executor.h defines it: the whole length is returned
  // even when `out` is too small, and the host calls again with room.
  static int64_t resources(quern_instance* instance, quern_errbuf out) noexcept {
    try {
      const std::string json = self(instance)->resources();
      write_error(out, json.c_str());  // JSON text holds no NUL byte (it escapes it)
      return static_cast<int64_t>(json.size());
    } catch (const std::exception& e) {
      write_error(out, e.what());
    } catch (...) {
      write_error(out, "unknown exception in resources");
    }
    return -1;
  }
};

template <typename T>
constexpr quern_executor_descriptor make_descriptor(const char* name, const char* version,
                                                    const char* languages, const char* tags,
                                                    uint64_t capabilities) noexcept {
  quern_executor_descriptor d{};
  d.struct_size = static_cast<uint32_t>(sizeof(quern_executor_descriptor));
  d.abi_major = QUERN_ABI_MAJOR;
  d.abi_minor = QUERN_ABI_MINOR;
  d.name = name;
  d.version = version;
  d.languages = languages;
  d.tags = tags;
  d.capabilities = capabilities;
  d.create = &Adapter<T>::create;
  d.destroy = &Adapter<T>::destroy;
  d.execute = &Adapter<T>::execute;
  if constexpr (has_prepare<T>::value) d.prepare = &Adapter<T>::prepare;
  if constexpr (has_health<T>::value) d.health = &Adapter<T>::health;
  if constexpr (has_interrupt<T>::value) d.interrupt = &Adapter<T>::interrupt;
  if constexpr (has_resources<T>::value) d.resources = &Adapter<T>::resources;
  return d;
}

}  // namespace detail
}  // namespace quern::sdk

// Registers Class as this library's executor. Use once per plugin, at
// namespace scope. languages and tags are comma-separated string literals.
#define QUERN_EXECUTOR_PLUGIN(Class, name, version, languages, tags, capabilities)                           \
  extern "C" QUERN_EXPORT const quern_executor_descriptor* QUERN_EXECUTOR_ENTRY_V1(void) {                   \
    static const quern_executor_descriptor quern_descriptor_ = ::quern::sdk::detail::make_descriptor<Class>( \
        (name), (version), (languages), (tags), static_cast<uint64_t>(capabilities));                        \
    return &quern_descriptor_;                                                                               \
  }

#endif  // QUERN_EXECUTOR_HPP
