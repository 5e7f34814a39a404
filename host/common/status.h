// Status and StatusOr: expected failures (bad input, unreachable database, a
// job that fails) travel as values. Exceptions are reserved for startup and
// configuration errors and for code behind the plugin ABI.
//
// A failed Status carries a message and a code. The code says what the
// caller can do about it, so that nobody decides by searching messages:
//   invalid_argument  the input was wrong; sending it again fails again (HTTP 400)
//   not_found         the thing named does not exist (404)
//   conflict          the request contradicts the current state (409)
//   unavailable       a dependency (the database, the server) is away or
//                     overloaded; the same request may succeed later (503)
//   internal          anything else: a bug or an operator's problem (500)
// Status::error() is `internal`; constructors name the others.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace quern {

enum class StatusCode { ok, invalid_argument, not_found, conflict, unavailable, internal };

const char* to_string(StatusCode code);

class Status {
 public:
  Status() = default;  // OK
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(StatusCode::internal, std::move(message)); }
  static Status invalid(std::string message) {
    return Status(StatusCode::invalid_argument, std::move(message));
  }
  static Status not_found(std::string message) { return Status(StatusCode::not_found, std::move(message)); }
  static Status conflict(std::string message) { return Status(StatusCode::conflict, std::move(message)); }
  static Status unavailable(std::string message) {
    return Status(StatusCode::unavailable, std::move(message));
  }
  // A failed status with an explicit code (code must not be ok).
  static Status with_code(StatusCode code, std::string message) {
    assert(code != StatusCode::ok);
    return Status(code, std::move(message));
  }

  bool is_ok() const { return !message_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  // Empty for an OK status.
  const std::string& message() const {
    static const std::string empty;
    return message_ ? *message_ : empty;
  }
  // Prefixes the message with context ("while doing X: "); keeps the code.
  Status with_context(const std::string& context) const {
    return is_ok() ? *this : Status(code_, context + ": " + *message_);
  }

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code_ = StatusCode::ok;
  std::optional<std::string> message_;
};

inline const char* to_string(StatusCode code) {
  switch (code) {
    case StatusCode::ok:
      return "ok";
    case StatusCode::invalid_argument:
      return "invalid_argument";
    case StatusCode::not_found:
      return "not_found";
    case StatusCode::conflict:
      return "conflict";
    case StatusCode::unavailable:
      return "unavailable";
    case StatusCode::internal:
      return "internal";
  }
  return "internal";
}

// Either a value or an error Status. Accessing value() of an error is a bug
// (asserts in debug builds).
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).is_ok()); }  // NOLINT

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  Status status() const { return is_ok() ? Status::ok() : std::get<Status>(v_); }
  StatusCode code() const { return is_ok() ? StatusCode::ok : std::get<Status>(v_).code(); }
  const std::string& message() const {
    static const std::string empty;
    return is_ok() ? empty : std::get<Status>(v_).message();
  }

  T& value() & {
    assert(is_ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(is_ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(is_ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace quern
