#include "test_http_server.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace quern::testing {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using nlohmann::json;

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

// The value of name in a raw query string ("" when absent).
std::string query_value(std::string_view query, std::string_view name) {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    std::size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(pos, end - pos);
    if (pair.substr(0, pair.find('=')) == name && pair.find('=') != std::string_view::npos)
      return percent_decode(pair.substr(pair.find('=') + 1));
    pos = end + 1;
  }
  return {};
}

}  // namespace

struct TestHttpServer::State {
  boost::asio::io_context io;
  tcp::acceptor acceptor{io};
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::vector<std::unique_ptr<Connection>> connections;
};

struct TestHttpServer::Connection {
  explicit Connection(boost::asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  std::thread thread;
};

TestHttpServer::TestHttpServer() : state_(std::make_unique<State>()) {
  tcp::endpoint endpoint(boost::asio::ip::address_v4::loopback(), 0);
  state_->acceptor.open(endpoint.protocol());
  state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  state_->acceptor.bind(endpoint);
  state_->acceptor.listen();
  port_ = state_->acceptor.local_endpoint().port();
  acceptor_thread_ = std::thread([this] { accept_loop(); });
}

TestHttpServer::~TestHttpServer() {
  {
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
  }
  state_->cv.notify_all();
  // Wake the blocking accept with a connection of our own.
  try {
    boost::asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(boost::asio::ip::address_v4::loopback(), port_));
  } catch (...) {
  }
  acceptor_thread_.join();
  std::vector<std::unique_ptr<Connection>> connections;
  {
    std::lock_guard lock(state_->mu);
    connections.swap(state_->connections);
  }
  // The sockets stay open (owned here) until their threads end, so the
  // descriptors cannot be reused under a shutdown.
  for (auto& c : connections) ::shutdown(c->socket.native_handle(), SHUT_RDWR);
  for (auto& c : connections) c->thread.join();
}

std::string TestHttpServer::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void TestHttpServer::accept_loop() {
  while (true) {
    auto c = std::make_unique<Connection>(state_->io);
    boost::system::error_code ec;
    state_->acceptor.accept(c->socket, ec);
    std::lock_guard lock(state_->mu);
    if (state_->stopping) return;
    if (ec) continue;
    ++connections_;
    Connection& ref = *c;
    state_->connections.push_back(std::move(c));
    ref.thread = std::thread([this, &ref] { serve(ref); });
  }
}

void TestHttpServer::serve(Connection& connection) {
  boost::system::error_code ec;
  beast::flat_buffer buffer;
  bhttp::request<bhttp::string_body> req;
  bhttp::read(connection.socket, buffer, req, ec);
  if (ec) return;

  const std::string target(req.target());
  const std::string path = target.substr(0, target.find('?'));
  const std::string query = target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1);
  bhttp::response<bhttp::string_body> res{bhttp::status::ok, req.version()};
  res.keep_alive(false);
  res.set(bhttp::field::content_type, "text/plain; charset=utf-8");

  if (path == "/echo") {
    json headers = json::object();
    for (const auto& f : req) headers[std::string(f.name_string())] = std::string(f.value());
    json body = {{"method", std::string(req.method_string())},
                 {"target", target},
                 {"path", path},
                 {"query", query},
                 {"headers", headers},
                 {"body", req.body()}};
    res.set(bhttp::field::content_type, "application/json");
    res.body() = body.dump();
  } else if (path == "/json") {
    res.set(bhttp::field::content_type, "application/json; charset=utf-8");
    res.body() = R"({"hello":"world","n":[1,2,3]})";
  } else if (path == "/text") {
    res.body() = "plain text, ünïcødé";
  } else if (path == "/binary") {
    res.set(bhttp::field::content_type, "application/octet-stream");
    res.body() = std::string("\xff\xfe\x00\x01\x80", 5);
  } else if (path.rfind("/status/", 0) == 0) {
    const int status = std::stoi(path.substr(8));
    res.result(static_cast<unsigned>(status));
    res.set(bhttp::field::content_type, "application/json");
    res.body() = json{{"status", status}}.dump();
  } else if (path.rfind("/redirect/", 0) == 0) {
    const int n = std::stoi(path.substr(10));
    if (n > 0) {
      res.result(bhttp::status::found);
      res.set(bhttp::field::location, "/redirect/" + std::to_string(n - 1));
    } else {
      res.body() = "done";
    }
  } else if (path == "/redirect-to") {
    res.result(bhttp::status::found);
    res.set(bhttp::field::location, query_value(query, "location"));
  } else if (path == "/big") {
    res.body() = std::string(static_cast<std::size_t>(std::stoll(query_value(query, "bytes"))), 'x');
    if (query_value(query, "chunked") == "1") res.chunked(true);
  } else if (path == "/hang") {
    ++hanging_;
    std::unique_lock lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->stopping; });
    --hanging_;
    res.body() = "late";
  } else {
    res.result(bhttp::status::not_found);
    res.body() = "no route " + path;
  }
  if (!res.chunked()) res.prepare_payload();
  bhttp::write(connection.socket, res, ec);
  connection.socket.shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace quern::testing
