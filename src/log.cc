// stderr logging; see log.h.
#include "edgeproxy/log.h"

#include <cstdarg>
#include <cstdio>

namespace edgeproxy {
namespace {

LogLevel g_level = LogLevel::kNormal;

void emit(const char* tag, const char* format, va_list args) noexcept {
  // One fprintf per line: stderr is unbuffered, so a single call keeps lines whole.
  char line[1024];
  std::vsnprintf(line, sizeof line, format, args);
  std::fprintf(stderr, "edgeproxy: %s%s\n", tag, line);
}

}  // namespace

void set_log_level(LogLevel level) noexcept {
  g_level = level;
}
LogLevel log_level() noexcept {
  return g_level;
}

#define EDGEPROXY_LOG_BODY(tag) \
  va_list args;                 \
  va_start(args, format);       \
  emit(tag, format, args);      \
  va_end(args)

void log_error(const char* format, ...) noexcept {
  EDGEPROXY_LOG_BODY("");
}

void log_warn(const char* format, ...) noexcept {
  if (g_level == LogLevel::kQuiet) return;
  EDGEPROXY_LOG_BODY("warning: ");
}

void log_info(const char* format, ...) noexcept {
  if (g_level == LogLevel::kQuiet) return;
  EDGEPROXY_LOG_BODY("");
}

void log_debug(const char* format, ...) noexcept {
  if (g_level != LogLevel::kVerbose) return;
  EDGEPROXY_LOG_BODY("");
}

}  // namespace edgeproxy
