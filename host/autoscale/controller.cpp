// The autoscaling controller (see controller.h).
#include "host/autoscale/controller.h"

#include <unistd.h>

#include <algorithm>
#include <set>

#include "host/log/log.h"
#include "host/queue/queue.h"

namespace quern::autoscale {
namespace {

// A group at zero that a NOTIFY woke is ticked at once, but not more often
// than this (a burst of inserts is one wake-up).
constexpr std::chrono::milliseconds kWakeSpacing{50};
// Longest sleep between looks at the stop flag.
constexpr std::chrono::milliseconds kMaxWait{250};
// The group's row is rewritten at least this often while nothing changes
// (decided_at tells readers the controller is alive), not every tick.
constexpr std::chrono::milliseconds kStateRefresh{10000};

std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

}  // namespace

struct Controller::GroupRun {
  config::WorkerGroup group;
  std::unique_ptr<Integration> integration;
  std::set<std::string> channels;  // NOTIFY channels of its tags
  History history;
  bool holding = false;  // this controller decides for it (lock held, history initialised)
  Clock::time_point next_tick{};
  Clock::time_point last_tick{};
  Clock::time_point retry_after{};  // after a failed apply
  Clock::time_point last_saved{};
  bool woken = false;
  GroupState state;
};

Controller::Controller(ControllerOptions options)
    : options_(std::move(options)), identity_(hostname() + ":" + std::to_string(::getpid())) {}

Controller::~Controller() { stop(); }

Status Controller::start() {
  for (const config::WorkerGroup& g : options_.groups) {
    if (!g.autoscale) continue;
    auto run = std::make_unique<GroupRun>();
    run->group = g;
    run->integration = options_.make_integration ? options_.make_integration(g) : nullptr;
    if (!run->integration) continue;
    for (const std::string& tag : g.tags) run->channels.insert(queue::channel_for_tag(tag));
    groups_.push_back(std::move(run));
  }
  if (groups_.empty()) return Status::ok();
  thread_ = std::thread([this] { loop(); });
  return Status::ok();
}

void Controller::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  for (auto& g : groups_)
    if (g->integration) g->integration->shutdown();
  if (store_) store_->unlock_all();
}

void Controller::loop() {
  pg::SessionOptions so;
  so.application_name = "quern autoscaler";
  auto session = std::make_shared<pg::Session>(options_.database_url, so);
  store_ = AutoscaleStore::over(session);
  // The listener shares the store's connection: the controller uses one.
  std::unique_ptr<queue::Queue> listener = queue::Queue::over(session);
  bool listening = false;
  std::string last_error;
  while (!stopping_) {
    if (!listening) {  // once: the queue LISTENs again by itself after a reconnect
      listening = true;
      for (const auto& g : groups_)
        for (const std::string& ch : g->channels)
          if (Status s = listener->listen_channel(ch); !s) listening = false;
    }
    const Clock::time_point now = Clock::now();
    Clock::time_point next = now + kMaxWait;
    for (auto& g : groups_) {
      // Only a group at zero needs waking: one with workers has them claiming.
      const bool wake = g->woken && g->holding && g->history.current == 0;
      g->woken = wake;
      if (now >= g->next_tick || (wake && now >= g->last_tick + kWakeSpacing)) {
        g->woken = false;
        tick_group(*g, now);
        g->last_tick = now;
        g->next_tick = now + g->group.autoscale->tick;
      }
      next = std::min(next, g->woken ? g->last_tick + kWakeSpacing : g->next_tick);
    }
    const auto wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()),
                                 std::chrono::milliseconds(1), kMaxWait);
    auto got = listener->wait_for_notifications(wait);
    if (!got) {
      if (got.message() != last_error) log::warning("autoscale", got.message() + " (retrying)");
      last_error = got.message();
      std::this_thread::sleep_for(wait);
      continue;
    }
    last_error.clear();
    for (const queue::Notification& n : *got)
      for (auto& g : groups_)
        if (g->channels.count(n.channel) != 0) g->woken = true;
  }
}

void Controller::tick_group(GroupRun& g, Clock::time_point now) {
  const config::Autoscale& cfg = *g.group.autoscale;
  auto locked = store_->try_lock(g.group.name);
  if (!locked || !*locked) {
    if (g.holding)
      log::warning("autoscale", "group " + g.group.name + ": lost its lock; another controller decides");
    g.holding = false;
    return;
  }
  auto signals = store_->signals(g.group.name, g.group.tags, cfg.lookahead, options_.live_within);
  if (!signals) {
    log::warning("autoscale", "group " + g.group.name + ": " + signals.message());
    return;
  }
  if (!g.holding) {
    auto recorded = store_->get_group(g.group.name);
    std::optional<int> count;
    if (recorded && *recorded) {
      count = (*recorded)->desired;
      g.state = **recorded;  // keeps when the count last changed, and from what
    }
    g.history = History{};
    g.history.current = std::max(0, g.integration->initial_count(count, *signals));
    g.holding = true;
    log::info("autoscale", "group " + g.group.name + ": deciding here (integration " + cfg.integration +
                               ", " + std::to_string(cfg.min) + ".." + std::to_string(cfg.max) +
                               " workers, now " + std::to_string(g.history.current) + ")");
  }
  g.integration->reconcile(g.history.current, *store_);
  observe(g.history, cfg, *signals, now);
  const Decision d = decide(cfg, std::max(1, g.group.slots), *signals, g.history, now);
  const int from = g.history.current;
  bool changed = false;
  if (d.desired != from && now >= g.retry_after) {
    Status applied = g.integration->apply(from, d.desired, d);
    Event e;
    e.group = g.group.name;
    e.from_count = from;
    e.to_count = d.desired;
    e.rule = d.rule;
    e.reason = d.reason;
    e.integration = cfg.integration;
    e.outcome = applied ? g.integration->success_outcome() : "failed";
    e.error = applied ? "" : applied.message();
    if (auto id = store_->add_event(e); id) {
      e.id = *id;
    } else {
      log::warning("autoscale", "group " + g.group.name + ": " + id.message());
    }
    e.at = now;
    log::info("autoscale", "group " + g.group.name + ": " + std::to_string(from) + " -> " +
                               std::to_string(d.desired) + " (" + d.reason + "): " + e.outcome +
                               (e.error.empty() ? "" : ": " + e.error));
    if (options_.on_event) options_.on_event(e);
    if (applied) {
      record(g.history, d.desired, now);
      g.state.from_count = from;
      g.state.requested_at = now;
      changed = true;
    } else {
      g.retry_after = now + std::max<std::chrono::milliseconds>(std::chrono::seconds(5), cfg.cooldown);
    }
  }
  const bool reason_changed = d.rule != g.state.rule;
  g.state.group = g.group.name;
  g.state.integration = cfg.integration;
  g.state.tags = g.group.tags;
  g.state.min = cfg.min;
  g.state.max = cfg.max;
  g.state.desired = g.history.current;
  g.state.rule = d.rule;
  g.state.reason = d.reason;
  g.state.decided_at = now;
  g.state.controller = identity_;
  if (changed || reason_changed || now - g.last_saved >= kStateRefresh) {
    if (Status s = store_->save_group(g.state); s)
      g.last_saved = now;
    else
      log::warning("autoscale", "group " + g.group.name + ": " + s.message());
  }
}

}  // namespace quern::autoscale
