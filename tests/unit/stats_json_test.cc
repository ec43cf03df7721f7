// stats_json: the renderer gives valid JSON (checked by python's json module) with every
// statistic, per object values and administrative state, whatever bytes the names hold.
#include "edgeproxy/stats_json.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include <unistd.h>

namespace edgeproxy {
namespace {

// Whether python3's json module accepts `text` and `check` (a Python expression over the
// parsed document `d`) holds.
bool python_accepts(const std::string& text, const std::string& check) {
  char json_path[] = "/tmp/edgeproxy-json-XXXXXX";
  char script_path[] = "/tmp/edgeproxy-json-check-XXXXXX";
  const int json_fd = mkstemp(json_path);
  const int script_fd = mkstemp(script_path);
  if (json_fd < 0 || script_fd < 0) return false;
  std::ofstream(json_path) << text;
  std::ofstream(script_path) << "import json, sys\nd = json.load(open(sys.argv[1]))\n"
                             << "sys.exit(0 if (" << check << ") else 3)\n";
  const std::string cmd = std::string("python3 ") + script_path + " " + json_path;
  const int rc = std::system(cmd.c_str());
  ::close(json_fd);
  ::close(script_fd);
  std::remove(json_path);
  std::remove(script_path);
  return rc == 0;
}

std::shared_ptr<Topology> sample_topology(const std::string& server_name) {
  auto t = std::make_shared<Topology>();
  t->epoch = 3;
  BackendSpec b;
  b.name = "app";
  b.runtime = std::make_shared<BackendRuntime>();
  ServerSpec s;
  s.name = server_name;
  s.endpoint.host = "127.0.0.1";
  s.endpoint.port = 8081;
  s.weight = 2;
  s.runtime = std::make_shared<ServerRuntime>();
  s.runtime->stats.connections = 5;
  s.runtime->drained = true;
  s.runtime->weight = 7;
  b.servers.push_back(std::move(s));
  t->backends.push_back(std::move(b));
  ListenerSpec l;
  l.name = "web";
  l.runtime = std::make_shared<ListenerRuntime>();
  l.runtime->stats.bytes_in = 1234;
  l.limits.max_lifetime_s = 1;
  t->listeners.push_back(std::move(l));
  return t;
}

TEST(StatsJsonTest, ValidJsonWithEveryFigure) {
  StatsSnapshot snap;
  snap.topology = sample_topology("a");
  snap.total.accepted = 9;
  snap.total.u2c_upstream_ns = 2;
  snap.total.u2c_client_ns = 3;
  snap.workers = {Stats{}, Stats{}};
  snap.workers[1].accepted = 9;
  snap.silent = {1};
  snap.reloads = 4;
  snap.admin.denied = 2;
  const std::string json = render_stats_json(snap);
  EXPECT_TRUE(python_accepts(
      json,
      "d['total']['accepted']==9 and d['total']['acceleration_factor']==1.5 and "
      "d['workers'][1]['accepted']==9 and d['silent_workers']==[1] and d['reloads']==4 and "
      "d['epoch']==3 and d['admin']['denied']==2 and "
      "d['listeners']['web']['bytes_in']==1234 and "
      "d['listeners']['web']['limits']['lifetime_closes']==0 and "
      "d['backends']['app']['servers']['a']['connections']==5 and "
      "d['backends']['app']['servers']['a']['drained'] is True and "
      "d['backends']['app']['servers']['a']['weight']==7 and "
      "d['backends']['app']['servers']['a']['configured_weight']==2 and "
      "d['backends']['app']['balance']=='roundrobin'"))
      << json;
}

TEST(StatsJsonTest, EmptySnapshotIsValid) {
  EXPECT_TRUE(python_accepts(render_stats_json(StatsSnapshot{}),
                             "d['workers']==[] and d['listeners']=={}"));
}

// Names never hold these (the parser refuses them), but the renderer must not depend on it.
TEST(StatsJsonTest, HostileNamesAreEscaped) {
  StatsSnapshot snap;
  snap.topology = sample_topology(std::string("q\"\\\n\x01\xff\xc3\xa9", 8));
  const std::string json = render_stats_json(snap);
  EXPECT_TRUE(python_accepts(
      json, "list(d['backends']['app']['servers'])==['q\"\\\\\\n\\x01\\ufffd\\u00e9']"))
      << json;
}

TEST(StatsJsonTest, JsonStringEscapes) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string(std::string("\x00\x1f\x7f", 3)), "\"\\u0000\\u001f\\u007f\"");
  EXPECT_EQ(json_string("\xc3\xa9"), "\"\xc3\xa9\"");                   // é kept
  EXPECT_EQ(json_string("\xc0\xaf"), "\"\\ufffd\\ufffd\"");             // overlong
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate
  EXPECT_EQ(json_string("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");   // 4 bytes kept
  EXPECT_EQ(json_string("\xe2\x82"), "\"\\ufffd\\ufffd\"");             // truncated
}

TEST(StatsJsonTest, HttpListenersAndPooledBackendsHaveTheirGroups) {
  StatsSnapshot snap;
  auto t = sample_topology("a");
  t->backends[0].pooled = true;
  t->backends[0].balance = Balance::kMostIdle;
  t->backends[0].runtime->pool.pool_opens = 3;
  t->backends[0].runtime->pool.pending = 2;
  BackendSpec tcp = t->backends[0];
  tcp.name = "tcp";
  tcp.pooled = false;
  tcp.balance = Balance::kRoundRobin;
  tcp.runtime = std::make_shared<BackendRuntime>();
  t->backends.push_back(tcp);
  ListenerSpec h = t->listeners[0];
  h.name = "site";
  h.mode = ListenerMode::kHttp;
  h.runtime = std::make_shared<ListenerRuntime>();
  h.runtime->http.requests = 8;
  h.runtime->http.no_server = 1;
  t->listeners.push_back(h);
  snap.topology = t;
  const std::string json = render_stats_json(snap);
  EXPECT_TRUE(python_accepts(
      json,
      "d['listeners']['site']['mode']=='http' and d['listeners']['web']['mode']=='tcp' and "
      "d['listeners']['site']['http']['requests']==8 and "
      "d['listeners']['site']['http']['no_server']==1 and "
      "len(d['listeners']['site']['http'])==15 and 'http' not in d['listeners']['web'] and "
      "d['backends']['app']['balance']=='most-idle' and "
      "d['backends']['app']['pool']=={'pool_opens':3,'pool_closes':0,'pool_idle':0,"
      "'pool_active':0,'pending':2} and 'pool' not in d['backends']['tcp']"))
      << json;
}

}  // namespace
}  // namespace edgeproxy
