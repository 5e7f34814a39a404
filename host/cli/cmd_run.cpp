// `quern run FILE | --code ...`: submit one job, stream its logs (stderr),
// print its result (stdout); the exit status reflects the job's.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

#include "host/autoscale/autoscale_store.h"
#include "host/cli/commands.h"
#include "host/cli/job_follow.h"

namespace quern::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct RunArgs {
  CommonOptions common;
  std::string file;
  JobRequest req;
  bool no_wait = false;
  std::string server;
  std::string token;
};

int run_job(RunArgs a) {
  if (a.file.empty() == a.req.code.empty()) {
    std::cerr << "quern run: give exactly one of FILE or --code\n";
    return 2;
  }
  if (!a.file.empty()) {
    if (Status s = load_script_file(a.file, a.req); !s) {
      std::cerr << "quern run: " << s.message() << "\n";
      return 2;
    }
  }
  if (auto sub = make_submission(a.req); !sub) {
    std::cerr << "quern run: " << sub.message() << "\n";
    return 2;
  }
  if (!a.server.empty()) return run_through_server(a.server, a.token, a.req);
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    std::cerr << "quern run: " << cfg.message() << "\n";
    return 2;
  }
  // Pushed straight to the database: built with the config's rules as the
  // server builds its API's jobs (through --server, the server applies its own).
  auto job = make_job(a.req, *cfg);
  if (!job) {
    std::cerr << "quern run: " << job.message() << "\n";
    return 2;
  }
  auto url = resolve_database_url(*cfg);
  if (!url) {
    std::cerr << "quern run: " << url.message() << "\n";
    return 2;
  }
  auto q = queue::Queue::connect(*url);
  if (!q) {
    std::cerr << "quern run: " << q.message() << "\n";
    return 1;
  }
  auto id = (*q)->push(*job);
  if (!id) {
    std::cerr << "quern run: submitting failed: " << id.message() << "\n";
    return 1;
  }
  std::cerr << "job " << *id << " queued (tag " << job->tag << ")" << std::endl;
  if (auto served = (*q)->tag_is_served(job->tag, live_within(*cfg)); served && !*served) {
    // Over the queue's own connection: no second one for a note.
    auto store =
        autoscale::AutoscaleStore::over(std::shared_ptr<pg::Session>(&(*q)->session(), [](pg::Session*) {}));
    std::cerr << "note: " << autoscale::unserved_note(*store, job->tag, group_tags(*cfg), config_name(*cfg))
              << std::endl;
  }
  if (a.no_wait) {
    std::cout << *id << "\n";
    return 0;
  }
  // Ctrl-C cancels the job we are following instead of abandoning it.
  std::signal(SIGINT, on_sigint);
  auto rec = follow_job(**q, *id, &std::cerr, [] { return g_interrupted.load(); });
  if (!rec) {
    std::cerr << "quern run: following job " << *id << " failed: " << rec.message() << "\n";
    return 1;
  }
  if (rec->state == "success") {
    std::cout << rec->result.dump() << std::endl;
  } else {
    std::cerr << "job " << *id << " " << rec->state << (rec->error.empty() ? "" : ": " + rec->error)
              << std::endl;
  }
  return exit_code_for(rec->state);
}

}  // namespace

void register_run(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Submit a job, stream its logs, print its result");
  add_common_options(*cmd, a->common);
  cmd->add_option("file", a->file, "Script file (language from the extension: .sh → bash)");
  cmd->add_option("--code", a->req.code, "Inline code instead of a file");
  cmd->add_option("--language,-l", a->req.language, "Language (bash, noop, ...)");
  cmd->add_option("--args,-a", a->req.args_json, "Arguments as a JSON object");
  cmd->add_option("--tag,-t", a->req.tag, "Routing tag (default: the language)");
  cmd->add_option("--priority,-p", a->req.priority, "1..100, higher runs first (default 50)");
  cmd->add_option("--timeout", a->req.timeout_s, "Seconds before the job is killed (default: worker's)");
  cmd->add_flag("--no-wait", a->no_wait, "Print the job id and return at once");
  cmd->add_option("--server", a->server, "Go through this server's API instead of the database");
  cmd->add_option("--token", a->token, "API token (with --server)")->envname("QUERN_TOKEN");
  cmd->callback([a, exit_code] { *exit_code = run_job(*a); });
}

}  // namespace quern::cli
