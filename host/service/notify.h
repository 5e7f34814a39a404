// Telling a service manager how the daemon fares: systemd's notification
// protocol (sd_notify(3)), spoken directly. A unit with Type=notify starts
// the daemon with NOTIFY_SOCKET naming a Unix datagram socket; the daemon
// sends "READY=1" once it serves, "WATCHDOG=1" at least every
// WATCHDOG_USEC/2 when the unit sets WatchdogSec=, "STOPPING=1" when it
// begins to stop, and "STATUS=..." lines people read in `systemctl status`.
// Outside systemd (no NOTIFY_SOCKET) every call does nothing.
//
// Thread-safety: all functions may be called from any thread; each call
// sends one datagram on a socket of its own.
#pragma once

#include <chrono>
#include <string>

namespace quern::service {

// Sends `state` (newline-separated VAR=value assignments) to the service
// manager. True when sent; false when there is no NOTIFY_SOCKET or it
// failed (a daemon goes on either way).
bool notify(const std::string& state);

// How often the service manager wants WATCHDOG=1 (WATCHDOG_USEC, when
// WATCHDOG_PID is absent or ours), halved as sd_watchdog_enabled(3)
// advises; zero when it wants none.
std::chrono::microseconds watchdog_interval();

}  // namespace quern::service
