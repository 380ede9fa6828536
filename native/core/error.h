// One exception type for every failure the core reports: bad input, unavailable backend, I/O.
// The addon turns it into a JS Error with the same message, so messages name the argument.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sppo {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(os.str());
}

}  // namespace sppo

// SPPO_CHECK(cond, "message parts", value, ...) throws sppo::Error when cond is false.
#define SPPO_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::sppo::fail(__VA_ARGS__); \
  } while (0)
