// Command-line parsing through the option table; see command_line.h.
#include "edgeproxy/command_line.h"

#include <string_view>

namespace edgeproxy {
namespace {

// The entry an argument names, how the user spelled the flag, and its value if attached.
struct Spelled {
  const OptionSpec* option = nullptr;
  std::string flag;
  std::string_view value;
  bool has_value = false;
  bool negated = false;  // --no-NAME of a switch
};

Result<Spelled> identify(std::string_view arg) {
  Spelled s;
  if (arg.size() > 2 && arg.substr(0, 2) == "--") {
    std::string_view name = arg.substr(2);
    if (const size_t eq = name.find('='); eq != std::string_view::npos) {
      s.value = name.substr(eq + 1);
      name = name.substr(0, eq);
      s.has_value = true;
    }
    s.flag = "--" + std::string(name);
    s.option = find_option(name);
    if (s.option == nullptr && name.substr(0, 3) == "no-") {
      const OptionSpec* o = find_option(name.substr(3));
      if (o != nullptr && o->kind == ValueKind::kSwitch) {
        s.option = o;
        s.negated = true;
      }
    }
    if (s.option != nullptr && !s.option->on_command_line()) s.option = nullptr;
    if (s.option != nullptr && !s.option->takes_value() && s.has_value) {
      return Error{s.flag + ": takes no value"};
    }
  } else if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-') {
    s.flag = std::string(arg.substr(0, 2));
    s.option = find_short_option(arg[1]);
    if (arg.size() > 2) {
      if (s.option != nullptr && !s.option->takes_value()) {
        return Error{"unknown option '" + std::string(arg) + "' (flags do not combine)"};
      }
      s.value = arg.substr(2);
      s.has_value = true;
    }
  } else {
    return Error{"unexpected argument '" + std::string(arg) + "' (see --help)"};
  }
  if (s.option == nullptr) return Error{"unknown option '" + std::string(arg) + "' (see --help)"};
  return s;
}

// Parses `text` for `o` and applies it to `targets`; errors name `flag`.
Result<Ok> apply_value(const OptionSpec& o, const std::string& flag, std::string_view text,
                       OptionTargets& targets) {
  OptionValue value;
  if (o.takes_value() || o.kind == ValueKind::kSwitch) {
    auto parsed = parse_option_value(o, text);
    if (!parsed.ok()) return Error{flag + ": " + parsed.error()};
    value = std::move(parsed.value());
  }
  o.apply(targets, value);
  return Ok{};
}

// Refuses a listener flag the one listener's --mode ignores, as a file refuses the directive.
Result<Ok> check_modes(const CommandLine& cl, const std::vector<std::string>& flags) {
  const ListenerMode mode = cl.listener.mode;
  for (size_t i = 0; i < cl.given.size(); ++i) {
    const OptionSpec& o = *cl.given[i].option;
    if (o.scope != OptionScope::kListener || o.modes == 0 || (o.modes & mode_bit(mode)) != 0) {
      continue;
    }
    return Error{flags[i] + ": applies to " + mode_names(o.modes) + " listeners only (expected " +
                 mode_choices(o.modes, "--mode ") + ", not --mode " + to_string(mode) + ")"};
  }
  // As in a file, an HTTP listener reads each request head itself and relays per request.
  if (mode == ListenerMode::kHttp) {
    for (size_t i = 0; i < cl.given.size(); ++i) {
      const std::string_view name = cl.given[i].option->name;
      if ((name == "accept-proxy" && cl.listener.accept_proxy) ||
          (name == "accelerate" && cl.listener.accelerate_bytes != 0)) {
        return Error{flags[i] +
                     ": not with --mode http (an http listener reads each request "
                     "head itself and does not accelerate)"};
      }
    }
  }
  return Ok{};
}

}  // namespace

bool CommandLine::has(std::string_view name) const noexcept {
  for (const GivenOption& g : given) {
    if (name == g.option->name) return true;
  }
  return false;
}

Result<CommandLine> parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  ListenerSpec& listener = cl.listener;
  BackendSpec& backend = cl.backend;
  OptionTargets targets{&cl.config, &listener, &backend, &cl};
  const std::string* conflicting = nullptr;  // the first listener/backend-scope flag
  std::vector<std::string> flags;            // as spelled, parallel to cl.given
  for (int i = 1; i < argc; ++i) {
    auto spelled = identify(argv[i]);
    if (!spelled.ok()) return Error{spelled.error()};
    Spelled& s = spelled.value();
    const OptionSpec& o = *s.option;
    std::string_view text;
    if (o.kind == ValueKind::kSwitch) {
      text = s.negated ? "off" : "on";
    } else if (o.takes_value()) {
      if (s.has_value) {
        text = s.value;
      } else if (i + 1 < argc) {
        text = argv[++i];
      } else {
        return Error{s.flag + ": missing value"};
      }
    }
    if (auto r = apply_value(o, s.flag, text, targets); !r.ok()) return Error{r.error()};
    cl.given.push_back(GivenOption{&o, std::string(text)});
    flags.push_back(s.flag);
  }
  for (size_t i = 0; i < cl.given.size(); ++i) {
    const OptionScope scope = cl.given[i].option->scope;
    if (conflicting == nullptr &&
        (scope == OptionScope::kListener || scope == OptionScope::kBackend)) {
      conflicting = &flags[i];
    }
  }
  if (!cl.config_file.empty() && conflicting != nullptr) {
    return Error{*conflicting +
                 ": not with -c (the file names its listeners and backends; only process-wide "
                 "options override it)"};
  }
  if (cl.has("config") && cl.config_file.empty()) return Error{"-c: empty file name"};
  if (auto r = check_modes(cl, flags); !r.ok()) return Error{r.error()};
  cl.idle_timeout_s = listener.idle_timeout_s;
  cl.connect_timeout_ms = backend.connect_timeout_ms;
  return cl;
}

Result<Topology> topology_from_command_line(const CommandLine& cl) {
  Topology t;
  t.source = "command line";
  t.global = cl.config;
  const SourceLocation where{"command line", 0, 0};
  BackendSpec backend = cl.backend;
  backend.name = "main";
  backend.connect_timeout_ms = cl.connect_timeout_ms;
  backend.retries = 0;
  backend.where = where;
  backend.pooled = cl.listener.mode == ListenerMode::kHttp;
  ServerSpec server;
  server.name = "main";
  server.endpoint.host = cl.backend_host;
  server.endpoint.port = cl.backend_port;
  server.where = where;
  backend.servers.push_back(std::move(server));
  t.backends.push_back(std::move(backend));
  ListenerSpec listener = cl.listener;
  listener.name = "main";
  listener.binds.push_back(Endpoint{cl.listen_host, cl.listen_port, {}});
  listener.backend = 0;
  listener.idle_timeout_s = cl.idle_timeout_s;
  listener.where = where;
  t.listeners.push_back(std::move(listener));
  return t;
}

Result<Ok> apply_global_overrides(Config& global, const CommandLine& cl) {
  OptionTargets targets{&global, nullptr, nullptr, nullptr};
  for (const GivenOption& g : cl.given) {
    if (g.option->scope != OptionScope::kGlobal) continue;
    const std::string flag = std::string("--") + g.option->name;
    if (auto r = apply_value(*g.option, flag, g.value, targets); !r.ok()) return r;
  }
  return Ok{};
}

}  // namespace edgeproxy
