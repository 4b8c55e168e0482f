// `linformer serve`: an HTTP/1.1 + JSON inference server on the public inference API
// (docs/serving.md). cpp-httplib (Debian's libcpp-httplib-dev, what llama.cpp's server uses)
// serves the connections on a pool of --http-threads threads; the model's computations all go
// through one Batcher (batcher.hpp), whose compute thread owns the cores.
//
// Life cycle: bind (port 0: a free one) and print "serve: listening on http://HOST:PORT"; load
// the model in the background (GET /health and the model routes answer 503 until it is loaded);
// serve until SIGTERM or SIGINT; then stop accepting, finish the requests in flight and return.
#pragma once
#include "options.hpp"

namespace linformer::serve {

// Blocks until a signal ends the server. Returns normally after draining; throws the load error if
// the model could not be loaded (the server stops then), or an error if the address cannot be bound.
void run_server(const ServeOptions& opt);

}  // namespace linformer::serve
