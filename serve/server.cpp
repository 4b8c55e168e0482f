// The HTTP side of `linformer serve` (include/linformer/serve.hpp): cpp-httplib's server, the routes connected to
// Routes, authentication, errors as JSON, metrics per request, the model loaded in the
// background and the shutdown on a signal.
#include "linformer/serve.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/core.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "api_error.hpp"
#include "batcher.hpp"
#include "linformer/error.hpp"
#include "linformer/inference.hpp"
#include "metrics.hpp"
#include "page.hpp"
#include "requests.hpp"
#include "routes.hpp"

namespace linformer::serve {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

// The routes and their methods: a known path with another method is a 405, not a 404.
const std::set<std::string> kGetRoutes = {"/", "/health", "/info", "/metrics"};
const std::set<std::string> kPostRoutes = {"/embed", "/v1/embeddings", "/predict", "/fill-mask", "/tokenize",
                                           "/attention"};

void send_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", message}, {"error_type", type}}.dump(), "application/json");
}

// The key's file holds one line; surrounding whitespace (a trailing newline) is not part of it.
std::string read_api_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("--api-key-file: cannot read {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  const size_t b = key.find_first_not_of(" \t\r\n"), e = key.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) throw ConfigError(fmt::format("--api-key-file: {} is empty", path));
  return key.substr(b, e - b + 1);
}

// Equal strings, in a time that depends on the lengths only (not on where they first differ).
bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? (unsigned char)a[i] : 0;
    const unsigned char y = i < b.size() ? (unsigned char)b[i] : 0;
    diff |= (unsigned char)(x ^ y);
  }
  return diff == 0;
}

}  // namespace

void run_server(const ServeOptions& opt) {
  const std::string api_key = opt.api_key_file.empty() ? "" : read_api_key(opt.api_key_file);

  // SIGTERM and SIGINT are taken by one thread (sigwait), so block them in this thread before any
  // other starts: every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  Metrics metrics;
  enum State { loading, ready, draining };
  std::atomic<int> state{loading};
  std::unique_ptr<InferenceModel> model;
  std::unique_ptr<Batcher> batcher;
  std::unique_ptr<Routes> routes;
  std::exception_ptr load_error;

  httplib::Server svr;
  const int http_threads = std::max(1, opt.http_threads);
  svr.new_task_queue = [http_threads] { return new httplib::ThreadPool(http_threads); };
  svr.set_read_timeout(opt.timeout_s, 0);
  svr.set_write_timeout(opt.timeout_s, 0);
  svr.set_keep_alive_timeout(opt.keep_alive_s);
  svr.set_keep_alive_max_count(10000);  // cpp-httplib's default closes a connection after 5 requests
  svr.set_payload_max_length(opt.max_body_bytes);
  // cpp-httplib writes a response's headers and body in separate writes: with Nagle's algorithm on,
  // the body waits for the client's delayed ACK of the headers (40 ms on Linux) on every request.
  svr.set_tcp_nodelay(true);

  // Authentication and the server's state, before any route runs.
  svr.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (state.load() == draining) {
      res.set_header("Connection", "close");
      send_error(res, 503, "unhealthy", "the server is shutting down");
      return httplib::Server::HandlerResponse::Handled;
    }
    const bool open = req.method == "GET" && (req.path == "/" || req.path == "/health");
    if (!api_key.empty() && !open) {
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      const bool ok = auth.size() > prefix.size() && auth.compare(0, prefix.size(), prefix) == 0 &&
                      constant_time_equal(auth.substr(prefix.size()), api_key);
      if (!ok) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401, "unauthorized",
                   auth.empty() ? "missing \"Authorization: Bearer KEY\" header" : "wrong API key");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // 404 / 405 / 413 / 400 from cpp-httplib itself get a JSON body like ours.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([&](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // one of ours
    if (res.status == 404 && (kGetRoutes.count(req.path) || kPostRoutes.count(req.path))) {
      const bool get = kGetRoutes.count(req.path);
      res.set_header("Allow", get ? "GET" : "POST");
      send_error(res, 405, "method_not_allowed",
                 fmt::format("{} {}: this route takes {}", req.method, req.path, get ? "GET" : "POST"));
    } else if (res.status == 404) {
      send_error(res, 404, "not_found", fmt::format("no route {} {} (see GET /info and docs/serving.md)", req.method, req.path));
    } else if (res.status == 413) {
      send_error(res, 413, "payload_too_large",
                 fmt::format("the request body is larger than {} bytes (--max-body-bytes)", opt.max_body_bytes));
    } else {
      send_error(res, res.status, res.status < 500 ? "malformed" : "backend", fmt::format("HTTP {}", res.status));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));

  svr.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
    const bool known = kGetRoutes.count(req.path) || kPostRoutes.count(req.path);
    metrics.request(known ? req.path : "other", res.status);
  });

  // A POST route: the body parsed and answered by `fn`, every error a JSON body with its status.
  auto post = [&](const std::string& path, json (Routes::*fn)(const json&) const) {
    svr.Post(path, [&, fn](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = clock_type::now();
      try {
        if (state.load() != ready) throw unhealthy("the model is still loading");
        const json body = parse_body(req.body);
        res.set_content(((*routes).*fn)(body).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
      } catch (const ApiError& e) {
        send_error(res, e.status(), e.type(), e.what());
      } catch (const InputError& e) {
        send_error(res, 422, "validation", e.what());
      } catch (const ConfigError& e) {
        send_error(res, 422, "not_supported", e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, "backend", e.what());
      }
      metrics.stage("total", std::chrono::duration<double>(clock_type::now() - t0).count());
    });
  };
  post("/embed", &Routes::embed);
  post("/v1/embeddings", &Routes::openai_embeddings);
  post("/predict", &Routes::predict);
  post("/fill-mask", &Routes::fill_mask);
  post("/tokenize", &Routes::tokenize);
  post("/attention", &Routes::attention);

  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    const int s = state.load();
    if (s == ready) res.set_content(json{{"status", "ok"}}.dump(), "application/json");
    else send_error(res, 503, "unhealthy", s == loading ? "the model is still loading" : "the server is shutting down");
  });
  svr.Get("/info", [&](const httplib::Request&, httplib::Response& res) {
    if (state.load() != ready) return send_error(res, 503, "unhealthy", "the model is still loading");
    res.set_content(routes->info().dump(2), "application/json");
  });
  svr.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Get("/", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(kPageHtml, "text/html; charset=utf-8");
  });

  // cpp-httplib 0.11 listens with a backlog of 5: a burst of new connections (64 clients starting
  // at once) overflows it and some get reset. Keep the socket (the options callback sees it before
  // bind) and listen again with the system's largest backlog, which Linux allows on a bound socket.
  std::atomic<int> listen_fd{-1};
  svr.set_socket_options([&listen_fd](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));  // a restart may bind while old connections linger
    listen_fd = sock;
  });
  const int port = opt.port == 0 ? svr.bind_to_any_port(opt.host) : (svr.bind_to_port(opt.host, opt.port) ? opt.port : -1);
  if (port < 0) throw IoError(fmt::format("serve: cannot listen on {}:{} (in use, or not an address here)", opt.host, opt.port));
  if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  fmt::print("serve: listening on http://{}:{}\n", opt.host, port);
  std::fflush(stdout);

  // The model loads while the server already answers /health (503) and /metrics.
  std::thread loader([&] {
    try {
      if (opt.load_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt.load_delay_ms));
      InferenceOptions io;
      io.tokenizer = opt.tokenizer;
      io.max_workers = 1;  // one compute thread: the batcher's
      io.threads = opt.threads;
      model = std::make_unique<InferenceModel>(InferenceModel::load(opt.model, io));
      batcher = std::make_unique<Batcher>(*model, opt.max_batch_tokens, opt.max_concurrent_requests, opt.threads,
                                          opt.compute_delay_ms, metrics);
      routes = std::make_unique<Routes>(*model, *batcher, metrics, opt);
      const ModelConfig& c = model->config();
      fmt::print("serve: model {} loaded (attention {}, max_len {}, d_model {}, {} layers{}{}); ready\n", opt.model,
                 to_string(c.attention), c.max_len, c.d_model, c.n_layers,
                 model->has_classifier() ? fmt::format(", {} labels", model->labels().size()) : "",
                 model->has_tokenizer() ? "" : ", no tokenizer");
      std::fflush(stdout);
      int expected = loading;
      state.compare_exchange_strong(expected, ready);
    } catch (...) {
      load_error = std::current_exception();
      state = draining;
      kill(getpid(), SIGTERM);  // ends the server through the same path as a signal
    }
  });

  // The signal thread: the first SIGTERM/SIGINT stops accepting; cpp-httplib then finishes the
  // connections' current requests (its pool is joined when listen returns).
  std::atomic<bool> stopped{false};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (!load_error) {
      fmt::print("serve: {} received: draining (a second one exits at once)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
      std::fflush(stdout);
    }
    state = draining;
    while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    svr.stop();
    // A second signal while draining (a second Ctrl-C) ends the process without waiting.
    const timespec tick{0, 50 * 1000 * 1000};
    while (!stopped) {
      if (sigtimedwait(&sigs, nullptr, &tick) > 0) {
        fmt::print(stderr, "serve: second signal: exiting without finishing the requests in flight\n");
        std::fflush(stderr);
        std::_Exit(1);
      }
    }
  });

  svr.listen_after_bind();
  stopped = true;
  signals.join();
  loader.join();
  if (load_error) std::rethrow_exception(load_error);
  batcher->stop();  // nothing is queued any more: every connection's request has been answered
  fmt::print("serve: stopped\n");
  std::fflush(stdout);
}

}  // namespace linformer::serve
