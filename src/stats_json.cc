// JSON rendering of a StatsSnapshot; see stats_json.h.
#include "edgeproxy/stats_json.h"

#include <cstdio>

namespace edgeproxy {
namespace {

void add_number(std::string& out, const char* name, unsigned long long value) {
  out += '"';
  out += name;
  out += "\":";
  out += std::to_string(value);
  out += ',';
}

// Replaces the trailing ',' of a member list with `close`.
void close_object(std::string& out, char close) {
  if (!out.empty() && out.back() == ',') out.pop_back();
  out += close;
}

void add_stats(std::string& out, const Stats& s) {
  out += '{';
#define EDGEPROXY_JSON_VALUE(name) add_number(out, #name, static_cast<unsigned long long>(s.name));
#define EDGEPROXY_JSON_SKIP(name)
// Histograms are the metrics endpoint's (docs/metrics.md); the JSON has the text block's figures.
#define EDGEPROXY_JSON_SKIP_HISTOGRAM(name, bounds)
  EDGEPROXY_ALL_STATS(EDGEPROXY_JSON_VALUE, EDGEPROXY_JSON_VALUE, EDGEPROXY_JSON_VALUE,
                      EDGEPROXY_JSON_SKIP, EDGEPROXY_JSON_SKIP_HISTOGRAM)
#undef EDGEPROXY_JSON_VALUE
#undef EDGEPROXY_JSON_SKIP
#undef EDGEPROXY_JSON_SKIP_HISTOGRAM
  char factor[32];
  std::snprintf(factor, sizeof factor, "%.3f", s.acceleration_factor());
  out += "\"acceleration_factor\":";
  out += factor;
  out += '}';
}

void add_object_stats(std::string& out, const ObjectStats& s) {
#define EDGEPROXY_JSON_ATOMIC(name) \
  add_number(out, #name, static_cast<unsigned long long>(s.name.load(std::memory_order_relaxed)));
  EDGEPROXY_OBJECT_STATS(EDGEPROXY_JSON_ATOMIC, EDGEPROXY_JSON_ATOMIC)
#undef EDGEPROXY_JSON_ATOMIC
}

// `"key":{...}`, the members written by `fill`.
template <class Fill>
void add_named_object(std::string& out, const char* key, Fill&& fill) {
  out += '"';
  out += key;
  out += "\":{";
  fill();
  close_object(out, '}');
  out += ',';
}

// The length of the UTF-8 sequence starting at s[i], or 0 when it is not a valid one.
size_t utf8_length(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  uint32_t cp = 0;
  if (b >= 0xc2 && b <= 0xdf) {
    len = 2;
    cp = b & 0x1f;
  } else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    cp = b & 0x0f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    cp = b & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3f);
  }
  // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return len;
}

}  // namespace

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b == '"' || b == '\\') {
      out += '\\';
      out += static_cast<char>(b);
      ++i;
    } else if (b < 0x20 || b == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", b);
      out += esc;
      ++i;
    } else if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
    } else if (const size_t len = utf8_length(text, i); len != 0) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
  return out;
}

std::string render_stats_json(const StatsSnapshot& snap) {
  std::string out = "{";
  add_number(out, "uptime_ms", static_cast<unsigned long long>(snap.uptime_ms));
  add_number(out, "epoch", snap.topology != nullptr ? snap.topology->epoch : 0);
  add_number(out, "reloads", snap.reloads);
  add_number(out, "reload_failures", snap.reload_failures);
  out += "\"silent_workers\":[";
  for (const uint32_t w : snap.silent) out += std::to_string(w) + ",";
  close_object(out, ']');
  out += ",\"total\":";
  add_stats(out, snap.total);
  out += ",\"workers\":[";
  for (const Stats& w : snap.workers) {
    add_stats(out, w);
    out += ',';
  }
  close_object(out, ']');
  out += ",\"admin\":{";
#define EDGEPROXY_JSON_ADMIN(name) \
  add_number(out, #name, static_cast<unsigned long long>(snap.admin.name));
  EDGEPROXY_ADMIN_STATS(EDGEPROXY_JSON_ADMIN, EDGEPROXY_JSON_ADMIN)
#undef EDGEPROXY_JSON_ADMIN
  close_object(out, '}');
  out += ",\"listeners\":{";
  if (snap.topology != nullptr) {
    for (const ListenerSpec& ls : snap.topology->listeners) {
      out += json_string(ls.name) + ":{";
      out += "\"mode\":";
      out += json_string(to_string(ls.mode)) + ",";
      add_object_stats(out, ls.runtime->stats);
      const ListenerRuntime& r = *ls.runtime;
#define EDGEPROXY_JSON_GROUP(group, name) \
  add_number(out, #name,                  \
             static_cast<unsigned long long>(r.group.name.load(std::memory_order_relaxed)));
#define EDGEPROXY_JSON_LIMITS(name) EDGEPROXY_JSON_GROUP(limits, name)
#define EDGEPROXY_JSON_FORWARD(name) EDGEPROXY_JSON_GROUP(forward, name)
#define EDGEPROXY_JSON_HTTP(name) EDGEPROXY_JSON_GROUP(http, name)
#define EDGEPROXY_JSON_ROUTE(name) EDGEPROXY_JSON_GROUP(route, name)
      if (ls.limits.per_connection() || ls.limits.per_client()) {
        add_named_object(out, "limits", [&] { EDGEPROXY_LIMIT_STATS(EDGEPROXY_JSON_LIMITS) });
      }
      if (ls.mode == ListenerMode::kForward) {
        add_named_object(out, "forward", [&] { EDGEPROXY_FORWARD_STATS(EDGEPROXY_JSON_FORWARD) });
      }
      if (ls.mode == ListenerMode::kHttp) {
        add_named_object(out, "http", [&] { EDGEPROXY_HTTP_STATS(EDGEPROXY_JSON_HTTP) });
      }
      if (ls.inspects()) {
        add_named_object(out, "route", [&] { EDGEPROXY_ROUTE_STATS(EDGEPROXY_JSON_ROUTE) });
      }
#undef EDGEPROXY_JSON_GROUP
#undef EDGEPROXY_JSON_LIMITS
#undef EDGEPROXY_JSON_FORWARD
#undef EDGEPROXY_JSON_HTTP
#undef EDGEPROXY_JSON_ROUTE
      close_object(out, '}');
      out += ',';
    }
  }
  close_object(out, '}');
  out += ",\"backends\":{";
  if (snap.topology != nullptr) {
    for (const BackendSpec& b : snap.topology->backends) {
      out += json_string(b.name) + ":{";
      out += "\"balance\":";
      out += json_string(to_string(b.balance));
      out += ',';
      add_object_stats(out, b.runtime->stats);
      if (b.pooled) {
        const PoolStats& p = b.runtime->pool;
#define EDGEPROXY_JSON_POOL(name) \
  add_number(out, #name, static_cast<unsigned long long>(p.name.load(std::memory_order_relaxed)));
        add_named_object(out, "pool",
                         [&] { EDGEPROXY_POOL_STATS(EDGEPROXY_JSON_POOL, EDGEPROXY_JSON_POOL) });
#undef EDGEPROXY_JSON_POOL
      }
      out += "\"servers\":{";
      for (const ServerSpec& sv : b.servers) {
        const ServerRuntime& r = *sv.runtime;
        const uint32_t set = r.weight.load(std::memory_order_relaxed);
        out += json_string(sv.name) + ":{";
        out += "\"address\":" + json_string(sv.endpoint.to_string()) + ",";
        out += "\"up\":";
        out += r.up.load(std::memory_order_relaxed) ? "true," : "false,";
        out += "\"drained\":";
        out += r.drained.load(std::memory_order_relaxed) ? "true," : "false,";
        add_number(out, "weight", set != 0 ? set : sv.weight);
        add_number(out, "configured_weight", sv.weight);
        add_object_stats(out, r.stats);
        close_object(out, '}');
        out += ',';
      }
      close_object(out, '}');
      out += '}';
      out += ',';
    }
  }
  close_object(out, '}');
  out += '}';
  return out;
}

}  // namespace edgeproxy
