// render_prometheus(): names, types and HELP once per family, label escaping, per-worker series
// (two workers, a silent one left out), cumulative histogram buckets, per-object series.
#include "edgeproxy/prometheus.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "edgeproxy/stats.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {
namespace {

std::shared_ptr<Topology> TwoObjects(const std::string& listener_name) {
  auto t = std::make_shared<Topology>();
  t->epoch = 3;
  ListenerSpec l;
  l.name = listener_name;
  l.runtime = std::make_shared<ListenerRuntime>();
  l.runtime->stats.connections = 7;
  l.runtime->stats.bytes_in = 1000;
  t->listeners.push_back(l);
  BackendSpec b;
  b.name = "app";
  b.runtime = std::make_shared<BackendRuntime>();
  b.runtime->stats.connections = 7;
  for (const char* name : {"s1", "s2"}) {
    ServerSpec s;
    s.name = name;
    s.runtime = std::make_shared<ServerRuntime>();
    b.servers.push_back(s);
  }
  b.servers[0].runtime->stats.connections = 4;
  b.servers[1].runtime->stats.connections = 3;
  b.servers[1].runtime->up = false;
  t->backends.push_back(b);
  return t;
}

StatsSnapshot TwoWorkers() {
  StatsSnapshot snap;
  snap.workers.resize(2);
  snap.workers[0].accepted = 3;
  snap.workers[1].accepted = 5;
  snap.workers[0].bytes_c2u = 100;
  snap.workers[0].active = 2;
  snap.workers[0].duration.observe(2'000'000);            // 2 ms
  snap.workers[0].duration.observe(3'000'000);            // 3 ms
  snap.workers[0].duration.observe(20'000'000);           // 20 ms
  snap.workers[0].duration.observe(100'000'000'000'000);  // 100000 s: past the last bound
  snap.workers[1].connect_time.observe(150'000);          // 150 us
  for (const Stats& w : snap.workers) snap.total.merge(w);
  snap.topology = TwoObjects("web");
  snap.reloads = 2;
  snap.uptime_ms = 1500;
  return snap;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// "name{labels}" -> value of every sample line.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const std::string& line : Lines(text)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

// Every family of `text` has one HELP, then one TYPE, then its samples.
void ExpectWellFormedFamilies(const std::string& text) {
  std::set<std::string> typed;
  std::set<std::string> helped;
  std::string current;
  for (const std::string& line : Lines(text)) {
    ASSERT_FALSE(line.empty());
    if (line.starts_with("# HELP ")) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(helped.insert(name).second) << "HELP twice: " << name;
      current = name;
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      std::istringstream in(line.substr(7));
      std::string name;
      std::string type;
      in >> name >> type;
      EXPECT_EQ(name, current) << "TYPE right after its HELP";
      EXPECT_TRUE(typed.insert(name).second) << "TYPE twice: " << name;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << type;
      EXPECT_EQ(name.ends_with("_total"), type == "counter") << name;
      EXPECT_TRUE(name.starts_with("edgeproxy_")) << name;
      continue;
    }
    EXPECT_TRUE(line.starts_with(current)) << "a sample outside its family: " << line;
  }
}

TEST(PrometheusTest, EveryFamilyHasOneHelpAndOneTypeBeforeItsSamples) {
  ExpectWellFormedFamilies(render_prometheus(TwoWorkers()));
}

TEST(PrometheusTest, EveryWorkerStatisticIsAFamilyOfItsOwn) {
  const std::string text = render_prometheus(TwoWorkers());
  size_t families = 0;
  for (const std::string& line : Lines(text)) families += line.starts_with("# TYPE ") ? 1u : 0u;
  size_t stats = 0;
#define EDGEPROXY_COUNT(name) ++stats;
#define EDGEPROXY_COUNT_HISTOGRAM(name, bounds) ++stats;
  EDGEPROXY_ALL_STATS(EDGEPROXY_COUNT, EDGEPROXY_COUNT, EDGEPROXY_COUNT, EDGEPROXY_COUNT,
                      EDGEPROXY_COUNT_HISTOGRAM)
#undef EDGEPROXY_COUNT
#undef EDGEPROXY_COUNT_HISTOGRAM
  size_t objects = 0;
#define EDGEPROXY_COUNT(name) ++objects;
  EDGEPROXY_OBJECT_STATS(EDGEPROXY_COUNT, EDGEPROXY_COUNT)
#undef EDGEPROXY_COUNT
  // Worker stats, worker_answered, 5 supervisor families, 3 kinds of objects, server_up (no
  // listener inspects, forwards or has limits: those families have no sample).
  EXPECT_EQ(families, stats + 1 + 5 + 3 * objects + 1);
}

TEST(PrometheusTest, TwoWorkersGiveOneSeriesEach) {
  const auto s = Samples(render_prometheus(TwoWorkers()));
  EXPECT_EQ(s.at("edgeproxy_connections_accepted_total{worker=\"0\"}"), "3");
  EXPECT_EQ(s.at("edgeproxy_connections_accepted_total{worker=\"1\"}"), "5");
  EXPECT_EQ(s.at("edgeproxy_client_to_upstream_bytes_total{worker=\"0\"}"), "100");
  EXPECT_EQ(s.at("edgeproxy_connections_current{worker=\"0\"}"), "2");
  EXPECT_EQ(s.at("edgeproxy_worker_answered{worker=\"1\"}"), "1");
  EXPECT_EQ(s.at("edgeproxy_reloads_total"), "2");
  EXPECT_EQ(s.at("edgeproxy_topology_epoch"), "3");
  EXPECT_EQ(s.at("edgeproxy_workers"), "2");
  EXPECT_EQ(s.at("edgeproxy_uptime_seconds"), "1.500");
}

TEST(PrometheusTest, ASilentWorkerIsLeftOutAndSaidSo) {
  StatsSnapshot snap = TwoWorkers();
  snap.silent = {1};
  const auto s = Samples(render_prometheus(snap));
  EXPECT_EQ(s.count("edgeproxy_connections_accepted_total{worker=\"1\"}"), 0u);
  EXPECT_EQ(s.at("edgeproxy_connections_accepted_total{worker=\"0\"}"), "3");
  EXPECT_EQ(s.at("edgeproxy_worker_answered{worker=\"1\"}"), "0");
}

TEST(PrometheusTest, HistogramBucketsAreCumulativeAndEndInTheCount) {
  const std::string text = render_prometheus(TwoWorkers());
  const auto s = Samples(text);
  const std::string w0 = "{worker=\"0\",le=";
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_bucket" + w0 + "\"0.001\"}"), "0");
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_bucket" + w0 + "\"0.005\"}"), "2");
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_bucket" + w0 + "\"0.01\"}"), "2");
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_bucket" + w0 + "\"0.05\"}"), "3");
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_bucket" + w0 + "\"86400\"}"), "3");
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_bucket" + w0 + "\"+Inf\"}"), "4");
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_count{worker=\"0\"}"), "4");
  EXPECT_EQ(s.at("edgeproxy_connection_duration_seconds_sum{worker=\"0\"}"), "100000.025000000");
  EXPECT_EQ(s.at("edgeproxy_backend_connect_seconds_bucket{worker=\"1\",le=\"0.0001\"}"), "0");
  EXPECT_EQ(s.at("edgeproxy_backend_connect_seconds_bucket{worker=\"1\",le=\"0.00025\"}"), "1");
  EXPECT_EQ(s.at("edgeproxy_backend_connect_seconds_count{worker=\"1\"}"), "1");
  // Every bucket series never decreases along le, per worker.
  for (const char* family :
       {"edgeproxy_connection_duration_seconds", "edgeproxy_backend_connect_seconds"}) {
    for (const char* worker : {"0", "1"}) {
      const std::string prefix = std::string(family) + "_bucket{worker=\"" + worker + "\",le=";
      uint64_t previous = 0;
      size_t buckets = 0;
      for (const std::string& line : Lines(text)) {
        if (!line.starts_with(prefix)) continue;
        const uint64_t v = std::stoull(line.substr(line.rfind(' ') + 1));
        EXPECT_GE(v, previous) << line;
        previous = v;
        ++buckets;
      }
      EXPECT_EQ(buckets, kDurationBounds.size() + 1);
    }
  }
}

TEST(PrometheusTest, ObjectsHaveTheirLabelsAndServerUp) {
  const auto s = Samples(render_prometheus(TwoWorkers()));
  EXPECT_EQ(s.at("edgeproxy_listener_connections_total{listener=\"web\"}"), "7");
  EXPECT_EQ(s.at("edgeproxy_listener_client_to_upstream_bytes_total{listener=\"web\"}"), "1000");
  EXPECT_EQ(s.at("edgeproxy_backend_connections_total{backend=\"app\"}"), "7");
  EXPECT_EQ(s.at("edgeproxy_server_connections_total{backend=\"app\",server=\"s1\"}"), "4");
  EXPECT_EQ(s.at("edgeproxy_server_connections_total{backend=\"app\",server=\"s2\"}"), "3");
  EXPECT_EQ(s.at("edgeproxy_server_up{backend=\"app\",server=\"s1\"}"), "1");
  EXPECT_EQ(s.at("edgeproxy_server_up{backend=\"app\",server=\"s2\"}"), "0");
  EXPECT_EQ(s.at("edgeproxy_listener_current_connections{listener=\"web\"}"), "0");
}

TEST(PrometheusTest, LabelValuesAreEscaped) {
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(escape_label_value("h\xc3\xa9"), "h\xc3\xa9") << "UTF-8 passes through";
  StatsSnapshot snap = TwoWorkers();
  snap.topology = TwoObjects("we\"b\\1\n");
  const auto s = Samples(render_prometheus(snap));
  EXPECT_EQ(s.at("edgeproxy_listener_connections_total{listener=\"we\\\"b\\\\1\\n\"}"), "7");
}

TEST(PrometheusTest, ListenerOutcomesOnlyForListenersTheyApplyTo) {
  StatsSnapshot snap = TwoWorkers();
  auto t = TwoObjects("web");
  ListenerSpec fwd = t->listeners[0];
  fwd.name = "fwd";
  fwd.mode = ListenerMode::kForward;
  fwd.runtime = std::make_shared<ListenerRuntime>();
  fwd.runtime->forward.tunnels = 9;
  fwd.limits.max_lifetime_s = 10;
  fwd.runtime->limits.lifetime_closes = 4;
  t->listeners.push_back(fwd);
  snap.topology = t;
  const auto s = Samples(render_prometheus(snap));
  EXPECT_EQ(s.at("edgeproxy_listener_forward_tunnels_total{listener=\"fwd\"}"), "9");
  EXPECT_EQ(s.count("edgeproxy_listener_forward_tunnels_total{listener=\"web\"}"), 0u);
  EXPECT_EQ(s.at("edgeproxy_listener_limit_lifetime_closes_total{listener=\"fwd\"}"), "4");
  EXPECT_EQ(s.count("edgeproxy_listener_limit_lifetime_closes_total{listener=\"web\"}"), 0u);
}

TEST(PrometheusTest, AppendedFamilyIsOneSample) {
  std::string out;
  append_prometheus_family(out, "edgeproxy_x_total", "counter", "An x.", 4);
  EXPECT_EQ(out,
            "# HELP edgeproxy_x_total An x.\n# TYPE edgeproxy_x_total counter\n"
            "edgeproxy_x_total 4\n");
}

// HTTP listeners' counters only for http listeners; pool statistics only for the backends an
// http listener uses (BackendSpec::pooled), counters with _total and gauges without.
TEST(PrometheusTest, HttpAndPoolStatisticsOnlyWhereTheyApply) {
  StatsSnapshot snap = TwoWorkers();
  auto t = TwoObjects("web");
  ListenerSpec h = t->listeners[0];
  h.name = "site";
  h.mode = ListenerMode::kHttp;
  h.runtime = std::make_shared<ListenerRuntime>();
  h.runtime->http.requests = 12;
  h.runtime->http.pending_full = 2;
  t->listeners.push_back(h);
  BackendSpec pooled = t->backends[0];
  pooled.name = "pooled";
  pooled.pooled = true;
  pooled.runtime = std::make_shared<BackendRuntime>();
  pooled.runtime->pool.pool_opens = 5;
  pooled.runtime->pool.pool_idle = 3;
  pooled.runtime->pool.pending = 1;
  t->backends.push_back(pooled);
  snap.topology = t;
  const std::string text = render_prometheus(snap);
  ExpectWellFormedFamilies(text);
  const auto s = Samples(text);
  EXPECT_EQ(s.at("edgeproxy_listener_http_requests_total{listener=\"site\"}"), "12");
  EXPECT_EQ(s.at("edgeproxy_listener_http_pending_full_total{listener=\"site\"}"), "2");
  EXPECT_EQ(s.at("edgeproxy_listener_http_bad_gateway_total{listener=\"site\"}"), "0");
  EXPECT_EQ(s.count("edgeproxy_listener_http_requests_total{listener=\"web\"}"), 0u);
  EXPECT_EQ(s.at("edgeproxy_backend_pool_opens_total{backend=\"pooled\"}"), "5");
  EXPECT_EQ(s.at("edgeproxy_backend_pool_closes_total{backend=\"pooled\"}"), "0");
  EXPECT_EQ(s.at("edgeproxy_backend_pool_idle{backend=\"pooled\"}"), "3");
  EXPECT_EQ(s.at("edgeproxy_backend_pool_active{backend=\"pooled\"}"), "0");
  EXPECT_EQ(s.at("edgeproxy_backend_pool_pending{backend=\"pooled\"}"), "1");
  EXPECT_EQ(s.count("edgeproxy_backend_pool_opens_total{backend=\"app\"}"), 0u);
  EXPECT_NE(text.find("# HELP edgeproxy_backend_pool_idle Pooled server connections IDLE now"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE edgeproxy_backend_pool_pending gauge"), std::string::npos);
  EXPECT_NE(text.find("# HELP edgeproxy_listener_http_requests_total Requests forwarded to a "
                      "server."),
            std::string::npos);
  const std::string plain = render_prometheus(TwoWorkers());
  EXPECT_EQ(plain.find("edgeproxy_listener_http_"), std::string::npos);
  EXPECT_EQ(plain.find("edgeproxy_backend_pool_"), std::string::npos);
}

}  // namespace
}  // namespace edgeproxy
