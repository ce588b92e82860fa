// hello: the smallest app, and the one the benchmarks measure. The session has
// already read the whole body before the handler runs (gunicorn's hello-world
// reads it too), so every method and target gets the same answer.
#include "app/app.hpp"

namespace qilin::app {

Handler make_hello_app() {
  return from_plain([](http::Request&) { return http::Response(200, "Hello, World!"); });
}

}  // namespace qilin::app
