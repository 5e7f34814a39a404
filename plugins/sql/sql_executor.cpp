// The sql executor: runs a job's code as SQL against a configured
// PostgreSQL resource, in process. See docs/SQL.md.
//
// Config (create):
//   {"resources": {"<name>": {"url": "postgresql://user@host/db",
//                             "password_env": "VAR" | "password_file": "/path"}},
//    "default_resource": "<name>", "connect_timeout_s": 10}
// The url must not hold a password; the password is read here, once, and is
// never logged nor put in an error (masked if libpq ever echoes it).
//
// Job (execute): code = one or more statements; args bound as parameters
// ($1..$n in the args object's order, or :name), never interpolated. One
// transaction per job unless `-- quern:no-transaction`; statement_timeout is
// the job's timeout_s. Result: {"statements": [{"columns","rows","affected"}]},
// plus "columns"/"rows"/"affected" at the top level for a single statement.
// Status: SUCCESS; FAILURE with PostgreSQL's message; TIMEOUT when the
// statement timeout or the host's timeout stopped it; CANCELED on cancel,
// shutdown or interrupt().
//
// Connections: one per resource per instance, opened on first use, kept
// between jobs, reopened when broken. Thread-safety: one execute at a time per
// instance (the host's rule); interrupt() from any thread.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <libpq-fe.h>

#include "pg_session.h"
#include "quern/executor.hpp"
#include "sql_script.h"
#include "sql_values.h"

namespace {

using nlohmann::ordered_json;
using quern::sdk::JobContext;
using quern::sql::Outcome;
using quern::sql::PgSession;
using quern::sql::ResultPtr;
using quern::sql::StopCheck;

constexpr const char* kSqlStateQueryCanceled = "57014";

std::string read_password_file(const std::string& resource, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("sql: resource '" + resource + "': cannot read password_file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string password = text.str();
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
  return password;
}

// The password of a resource, from its password_env or password_file.
std::string read_password(const std::string& resource, const ordered_json& spec) {
  auto env = spec.find("password_env");
  auto file = spec.find("password_file");
  if (env != spec.end() && file != spec.end())
    throw std::invalid_argument("sql: resource '" + resource +
                                "': give password_env or password_file, not both");
  if (env != spec.end()) {
    if (!env->is_string())
      throw std::invalid_argument("sql: resource '" + resource + "': password_env must be a string");
    const char* value = std::getenv(env->get<std::string>().c_str());
    if (value == nullptr)
      throw std::runtime_error("sql: resource '" + resource + "': environment variable " +
                               env->get<std::string>() + " is not set");
    return value;
  }
  if (file != spec.end()) {
    if (!file->is_string())
      throw std::invalid_argument("sql: resource '" + resource + "': password_file must be a string");
    return read_password_file(resource, file->get<std::string>());
  }
  return {};
}

// Refuses a url that carries a password: it would end up in logs and configs.
void check_url(const std::string& resource, const std::string& url) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &err);
  if (options == nullptr) {
    std::string why = err != nullptr ? err : "invalid";
    PQfreemem(err);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    // libpq's parse errors name the offending part, never a password value.
    throw std::invalid_argument("sql: resource '" + resource + "': bad url: " + why);
  }
  bool has_password = false;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o)
    if (std::string_view(o->keyword) == "password" && o->val != nullptr && o->val[0] != '\0')
      has_password = true;
  PQconninfoFree(options);
  if (has_password)
    throw std::invalid_argument("sql: resource '" + resource +
                                "': the url must not contain a password; use password_env or password_file");
}

class SqlExecutor {
 public:
  explicit SqlExecutor(std::string_view config_json) {
    const ordered_json config =
        config_json.empty() ? ordered_json::object() : ordered_json::parse(config_json);
    if (!config.is_object()) throw std::invalid_argument("sql: config must be a JSON object");
    std::chrono::milliseconds connect_timeout(10000);
    if (auto it = config.find("connect_timeout_s"); it != config.end()) {
      if (!it->is_number() || it->get<double>() <= 0)
        throw std::invalid_argument("sql: connect_timeout_s must be a positive number");
      connect_timeout = std::chrono::milliseconds(static_cast<int64_t>(it->get<double>() * 1000));
    }
    auto resources = config.find("resources");
    if (resources == config.end() || !resources->is_object() || resources->empty())
      throw std::invalid_argument("sql: config needs \"resources\": {\"<name>\": {\"url\": ...}}");
    for (const auto& [name, spec] : resources->items()) {
      if (!spec.is_object() || !spec.contains("url") || !spec["url"].is_string())
        throw std::invalid_argument("sql: resource '" + name + "' needs a \"url\" string");
      const std::string url = spec["url"].get<std::string>();
      auto session = std::make_unique<PgSession>(url, read_password(name, spec), connect_timeout);
      try {
        check_url(name, url);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(session->mask(e.what()));
      }
      sessions_[name] = std::move(session);
    }
    if (auto it = config.find("default_resource"); it != config.end()) {
      if (!it->is_string() || !sessions_.count(it->get<std::string>()))
        throw std::invalid_argument("sql: default_resource names no configured resource");
      default_resource_ = it->get<std::string>();
    } else if (sessions_.size() == 1) {
      default_resource_ = sessions_.begin()->first;
    }
  }

  quern_status execute(std::string_view job_json, JobContext& ctx) {
    interrupted_.store(false);
    const ordered_json job = ordered_json::parse(job_json);
    std::vector<std::string> names;
    std::vector<std::optional<std::string>> values;
    if (auto it = job.find("args"); it != job.end() && it->is_object()) {
      for (const auto& [name, value] : it->items()) {
        names.push_back(name);
        values.push_back(quern::sql::param_text(value));
      }
    } else if (it != job.end() && it->is_array()) {
      for (const auto& value : *it) values.push_back(quern::sql::param_text(value));
    }

    quern::sql::Script script;
    try {
      script = quern::sql::parse_script(job.value("code", std::string()), names);
    } catch (const std::invalid_argument& e) {
      return fail(ctx, std::string("cannot parse the SQL: ") + e.what());
    }
    if (script.statements.empty()) return fail(ctx, "the SQL has no statement");
    for (std::size_t n = 0; n < script.statements.size(); ++n) {
      if (script.statements[n].max_param > values.size())
        return fail(ctx, where(n, script.statements.size()) + ": uses $" +
                             std::to_string(script.statements[n].max_param) + " but the job has " +
                             std::to_string(values.size()) + " argument(s)");
    }

    std::string resource = script.resource.value_or(default_resource_);
    if (resource.empty())
      return fail(ctx, "no resource: add a `-- quern:resource NAME` line (" + known() + ")");
    auto found = sessions_.find(resource);
    if (found == sessions_.end()) return fail(ctx, "unknown resource '" + resource + "' (" + known() + ")");
    PgSession& session = *found->second;

    const StopCheck stop = [&] {
      int32_t why = ctx.cancelled();
      if (why == QUERN_RUNNING && interrupted_.load()) why = QUERN_CANCEL_REQUESTED;
      return why;
    };
    session.set_notice_sink([&](std::string_view line) { ctx.log(QUERN_STREAM_STDOUT, line); });
    struct ClearSink {
      PgSession& s;
      ~ClearSink() { s.set_notice_sink(nullptr); }
    } clear_sink{session};

    int64_t timeout_ms = 0;
    if (auto it = job.find("timeout_s"); it != job.end() && it->is_number() && it->get<double>() > 0)
      timeout_ms = static_cast<int64_t>(it->get<double>() * 1000);
    const bool in_transaction = !script.no_transaction;
    const std::string prologue_set = std::string(in_transaction ? "SET LOCAL" : "SET") +
                                     " statement_timeout = " + std::to_string(timeout_ms);

    // A pooled connection may have died since the last job (server restart):
    // open a fresh one once if the prologue finds it gone.
    Outcome o;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = session.idle();
      if (!reused) {
        o = session.connect(stop);
        if (!o.ok()) return finish(ctx, o, "cannot connect to resource '" + resource + "'");
      }
      o = run(session, in_transaction ? "BEGIN" : prologue_set, stop);
      if (o.ok() && in_transaction) o = run(session, prologue_set, stop);
      if (o.ok() || !(reused && o.connection_lost)) break;
    }
    if (!o.ok()) return abort(session, ctx, o, in_transaction, "resource '" + resource + "'");

    ordered_json statements = ordered_json::array();
    const std::size_t total = script.statements.size();
    for (std::size_t n = 0; n < total; ++n) {
      const auto& st = script.statements[n];
      std::vector<std::optional<std::string>> params(values.begin(), values.begin() + st.max_param);
      ResultPtr result;
      o = session.exec(st.text, params, st.referenced, stop, &result);
      if (!o.ok()) return abort(session, ctx, o, in_transaction, where(n, total));
      statements.push_back(quern::sql::result_to_json(result.get()));
    }
    if (in_transaction) {
      o = run(session, "COMMIT", stop);
      if (!o.ok()) return abort(session, ctx, o, in_transaction, "commit");
    } else {
      run(session, "RESET statement_timeout", stop);
    }

    ordered_json out = ordered_json::object();
    if (statements.size() == 1) {
      out["columns"] = statements[0]["columns"];
      out["rows"] = statements[0]["rows"];
      out["affected"] = statements[0]["affected"];
    }
    out["statements"] = std::move(statements);
    ctx.set_result(out.dump(-1, ' ', false, ordered_json::error_handler_t::replace));
    return QUERN_STATUS_SUCCESS;
  }

  void interrupt() { interrupted_.store(true); }

 private:
  static Outcome run(PgSession& session, const std::string& sql, const StopCheck& stop) {
    ResultPtr ignored;
    return session.exec(sql, {}, {}, stop, &ignored);
  }

  static std::string where(std::size_t n, std::size_t total) {
    return total == 1 ? std::string("statement")
                      : "statement " + std::to_string(n + 1) + " of " + std::to_string(total);
  }

  std::string known() const {
    std::string list;
    for (const auto& [name, session] : sessions_) list += (list.empty() ? "" : ", ") + name;
    return "configured: " + list;
  }

  static quern_status fail(JobContext& ctx, const std::string& message) {
    ctx.set_error(message);
    return QUERN_STATUS_FAILURE;
  }

  // Ends a job that did not succeed: rolls back what the job did (bounded in
  // time; a session that cannot roll back is dropped), then reports.
  quern_status abort(PgSession& session, JobContext& ctx, const Outcome& o, bool in_transaction,
                     const std::string& where) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    const StopCheck bounded = [deadline] {
      return std::chrono::steady_clock::now() > deadline ? QUERN_SHUTDOWN : QUERN_RUNNING;
    };
    if (!session.idle() && !o.connection_lost) {
      Outcome r = run(session, "ROLLBACK", bounded);
      if (!r.ok() || !session.idle()) session.disconnect();
    }
    if (!in_transaction && !o.connection_lost && session.idle()) {
      if (!run(session, "RESET statement_timeout", bounded).ok()) session.disconnect();
    }
    return finish(ctx, o, where);
  }

  static quern_status finish(JobContext& ctx, const Outcome& o, const std::string& where) {
    if (o.kind == Outcome::kStopped) return quern::sdk::stop_status(ctx, o.stop_reason);
    if (o.sqlstate == kSqlStateQueryCanceled && o.message.find("statement timeout") != std::string::npos) {
      ctx.set_error("timed out: " + where + ": " + o.message);
      return QUERN_STATUS_TIMEOUT;
    }
    ctx.set_error(where + ": " + o.message);
    return QUERN_STATUS_FAILURE;
  }

  std::map<std::string, std::unique_ptr<PgSession>> sessions_;
  std::string default_resource_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

QUERN_EXECUTOR_PLUGIN(SqlExecutor, "sql", "1.0.0", "sql", "sql", 0)
