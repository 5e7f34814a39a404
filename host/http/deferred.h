// Deferred responses, the inside (internal to host/http): the state a
// Deferred (http_server.h) shares with the connection that parks it and with
// its wake sources. The session's half — parking, resuming, the disconnect
// watch — is in deferred.cpp, as members of Session (http_session.h).
//
// A parked session sets `notify` (it posts to the session's strand, through
// ServerShared's gate, holding the session weakly); leaving the deferred
// state it clears it again, before it drops the Deferred. So a WakeState
// never outlives the use of the executor that notify holds, and the last
// reference to it, wherever it goes, destroys nothing but flags.
//
// Lock order: WakeState::mu, then ServerShared::io_gate_mu, then Asio's own.
// Nothing is called back under them.
#pragma once

#include <functional>
#include <mutex>

namespace quern::http::detail {

struct WakeState {
  std::mutex mu;
  bool woken = false;            // wake() since the session last began a resume; guarded by mu
  bool ended = false;            // the request left the deferred state for good; guarded by mu
  bool posted = false;           // a wake-up is on its way to the session's strand; guarded by mu
  std::function<void()> notify;  // while parked: tells the session; guarded by mu

  // Any thread: records the wake-up and, when parked, tells the session
  // once. False once the deferral ended (nothing will come of it).
  bool wake();
};

}  // namespace quern::http::detail
