// Logging to stderr, one line per message, prefixed "edgeproxy: ". For start-up, shutdown and
// rare conditions only: expected per-connection network errors are counted in Stats instead.
#pragma once

#include <cstdint>

namespace edgeproxy {

enum class LogLevel : uint8_t { kQuiet, kNormal, kVerbose };

void set_log_level(LogLevel level) noexcept;
LogLevel log_level() noexcept;

void log_error(const char* format, ...) noexcept __attribute__((format(printf, 1, 2)));
// Warnings show unless -q.
void log_warn(const char* format, ...) noexcept __attribute__((format(printf, 1, 2)));
void log_info(const char* format, ...) noexcept __attribute__((format(printf, 1, 2)));
// Only with -v.
void log_debug(const char* format, ...) noexcept __attribute__((format(printf, 1, 2)));

}  // namespace edgeproxy
