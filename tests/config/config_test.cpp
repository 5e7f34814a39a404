// Tests for host/config: the XML format, its defaults, and above all its
// error messages ("file:line: what was expected"), which are the user
// interface of a config file.
//
// Suite names start with a lowercase "config" so that `ctest -R config`
// (case-sensitive) selects exactly these tests.
#include "host/config/config.h"

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

namespace quern::config {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

// Parses text that is expected to be rejected and returns the message.
std::string error_of(const std::string& xml) {
  StatusOr<Config> config = parse_config(xml, "test.xml");
  EXPECT_FALSE(config.is_ok()) << "accepted:\n" << xml;
  return config.message();
}

// A scratch directory per test, removed afterwards.
class configFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::temp_directory_path() / ("quern_config_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "config");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& relative, const std::string& text) {
    const fs::path path = dir_ / relative;
    std::ofstream(path) << text;
    return path;
  }

  fs::path dir_;
};

// Restores QUERN_DATABASE_URL after a test that changes it.
class EnvGuard {
 public:
  EnvGuard() {
    if (const char* v = std::getenv("QUERN_DATABASE_URL")) saved_ = v;
  }
  ~EnvGuard() {
    if (saved_) {
      ::setenv("QUERN_DATABASE_URL", saved_->c_str(), 1);
    } else {
      ::unsetenv("QUERN_DATABASE_URL");
    }
  }

 private:
  std::optional<std::string> saved_;
};

// ---- valid input ---------------------------------------------------------------

TEST(configParse, FullFile) {
  const std::string xml = R"(<?xml version="1.0"?>
<!-- a comment -->
<quern>
  <database url="postgresql://q@db:5432/quern" data-dir="/var/lib/quern"/>
  <plugins dir="/opt/quern/plugins">
    <plugin path="/x/libquern_bash.so">
      <setting name="interpreter" value="/bin/bash"/>
      <setting name="retries" value="3"/>
      <setting name="verbose" value="true"/>
    </plugin>
    <plugin path="/x/libquern_noop.so"/>
  </plugins>
  <queue lease-timeout="1m" poll-interval="250ms" heartbeat-interval="10s"
         max-restarts="0" default-timeout="2h" kill-grace="0.5"/>
  <workers>
    <group name="default" slots="4" tags="bash, noop"/>
    <group name="gpu" slots="1024" tags="cuda:12,ml.train,x-y_z"/>
  </workers>
</quern>
)";
  StatusOr<Config> config = parse_config(xml, "full.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->source, "full.xml");
  EXPECT_EQ(config->database_url, "postgresql://q@db:5432/quern");
  EXPECT_EQ(config->data_dir, "/var/lib/quern");
  EXPECT_EQ(config->plugin_dir, "/opt/quern/plugins");
  ASSERT_EQ(config->plugins.size(), 2u);
  EXPECT_EQ(config->plugins[0].path, "/x/libquern_bash.so");
  // Settings are always strings, even when they look like numbers or booleans.
  EXPECT_EQ(nlohmann::json::parse(config->plugins[0].config_json),
            (nlohmann::json{{"interpreter", "/bin/bash"}, {"retries", "3"}, {"verbose", "true"}}));
  EXPECT_EQ(config->plugins[1].config_json, "{}");
  EXPECT_EQ(config->lease_timeout, milliseconds(60000));
  EXPECT_EQ(config->poll_interval, milliseconds(250));
  EXPECT_EQ(config->heartbeat_interval, milliseconds(10000));
  EXPECT_EQ(config->effective_heartbeat_interval(), milliseconds(10000));
  EXPECT_EQ(config->max_restarts, 0);
  EXPECT_EQ(config->default_timeout_s, 7200);
  EXPECT_EQ(config->kill_grace, milliseconds(500));
  ASSERT_EQ(config->groups.size(), 2u);
  EXPECT_EQ(config->groups[0].name, "default");
  EXPECT_EQ(config->groups[0].slots, 4);
  EXPECT_EQ(config->groups[0].tags, (std::vector<std::string>{"bash", "noop"}));
  EXPECT_EQ(config->groups[1].name, "gpu");
  EXPECT_EQ(config->groups[1].slots, 1024);
  EXPECT_EQ(config->groups[1].tags, (std::vector<std::string>{"cuda:12", "ml.train", "x-y_z"}));
}

TEST(configParse, EmptyRootGivesDefaults) {
  StatusOr<Config> config = parse_config("<quern/>", "empty.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  const Config defaults;
  EXPECT_EQ(config->database_url, "");
  EXPECT_EQ(config->data_dir, ".quern");
  EXPECT_EQ(config->plugin_dir, "");
  EXPECT_TRUE(config->plugins.empty());
  EXPECT_EQ(config->lease_timeout, milliseconds(30000));
  EXPECT_EQ(config->poll_interval, milliseconds(1000));
  EXPECT_EQ(config->heartbeat_interval, milliseconds(0));
  EXPECT_EQ(config->effective_heartbeat_interval(), milliseconds(10000));
  EXPECT_EQ(config->max_restarts, defaults.max_restarts);
  EXPECT_EQ(config->default_timeout_s, 3600);
  EXPECT_EQ(config->kill_grace, milliseconds(2000));
  EXPECT_EQ(config->groups, default_groups());
  EXPECT_TRUE(config->routing_rules.empty());
}

// Without <workers>: default (bash, python3), native (sql, http), gpu (gpu),
// each loading only its own plugins.
TEST(configParse, BuiltInGroups) {
  const std::vector<WorkerGroup> groups = default_groups();
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].name, "default");
  EXPECT_EQ(groups[0].tags, (std::vector<std::string>{"bash", "python3"}));
  EXPECT_EQ(groups[0].plugins, (std::vector<std::string>{"bash", "python"}));
  EXPECT_EQ(groups[1].name, "native");
  EXPECT_EQ(groups[1].tags, (std::vector<std::string>{"sql", "http"}));
  EXPECT_EQ(groups[1].plugins, (std::vector<std::string>{"sql", "http"}));
  EXPECT_EQ(groups[2].name, "gpu");
  EXPECT_EQ(groups[2].tags, std::vector<std::string>{"gpu"});
  EXPECT_EQ(groups[2].plugins, std::vector<std::string>{"gpu"});
  for (const auto& g : groups) {
    EXPECT_EQ(g.slots, 4) << g.name;
    EXPECT_TRUE(g.pass_env.empty()) << g.name;
  }
  // A file's <workers> replaces them all.
  StatusOr<Config> config = parse_config("<quern><workers><group name='gpu'/></workers></quern>", "t.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  ASSERT_EQ(config->groups.size(), 1u);
  EXPECT_EQ(config->groups[0].tags,
            std::vector<std::string>{"bash"});  // no inheritance from the built-in gpu
  EXPECT_TRUE(config->groups[0].plugins.empty());
}

TEST(configParse, GroupPluginsPassEnvAndDedicated) {
  StatusOr<Config> config = parse_config(
      "<quern><workers>\n"
      "  <group name='ml' slots='2' tags='gpu, python3' plugins='gpu,python' pass-env='AWS_REGION, "
      "HTTP_PROXY'\n"
      "         dedicated='f/ml/train, f/ml/score' in-process='python'/>\n"
      "</workers></quern>",
      "t.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  ASSERT_EQ(config->groups.size(), 1u);
  const WorkerGroup& g = config->groups[0];
  EXPECT_EQ(g.name, "ml");
  EXPECT_EQ(g.slots, 2);
  EXPECT_EQ(g.tags, (std::vector<std::string>{"gpu", "python3"}));
  EXPECT_EQ(g.plugins, (std::vector<std::string>{"gpu", "python"}));
  EXPECT_EQ(g.pass_env, (std::vector<std::string>{"AWS_REGION", "HTTP_PROXY"}));
  EXPECT_EQ(g.dedicated, (std::vector<std::string>{"f/ml/train", "f/ml/score"}));
  EXPECT_EQ(g.in_process, (std::vector<std::string>{"python"}));
}

TEST(configParse, InProcessDefaultsToQuernsOwnPluginsAndNoneContainsAll) {
  StatusOr<Config> config = parse_config(
      "<quern><workers><group name='a'/><group name='b' in-process=' none '/></workers></quern>", "t.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->groups[0].in_process,
            (std::vector<std::string>{"bash", "python", "sql", "http", "gpu", "noop"}));
  EXPECT_TRUE(config->groups[1].in_process.empty());
  for (const WorkerGroup& g : default_groups()) EXPECT_EQ(g.in_process, first_party_plugins());
}

TEST(configParse, SandboxDefaultsToBwrapWithTheHostsNetwork) {
  StatusOr<Config> config = parse_config(
      "<quern><workers><group name='a'/><group name='b' sandbox='none' network=' none '/></workers></quern>",
      "t.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->groups[0].sandbox, "bwrap");
  EXPECT_EQ(config->groups[0].network, "host");
  EXPECT_EQ(config->groups[1].sandbox, "none");
  EXPECT_EQ(config->groups[1].network, "none");
  EXPECT_EQ(error_of("<quern><workers>\n<group sandbox='docker'/></workers></quern>"),
            "test.xml:2: <group sandbox=\"docker\">: expected bwrap or none");
  EXPECT_EQ(error_of("<quern><workers>\n<group network='bridge'/></workers></quern>"),
            "test.xml:2: <group network=\"bridge\">: expected host or none");
}

TEST(configParse, GroupLimits) {
  StatusOr<Config> config = parse_config(
      "<quern><workers><group name='a'/><group name='b' memory-max='256M' pids-max='100' cpu-max='1.5' "
      "tmp-size='64MiB' nofile='1024' job-user='quern-jobs'/><group name='c' memory-max='1.5G' "
      "cpu-max='0.25'/></workers></quern>",
      "t.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  const WorkerGroup& a = config->groups[0];
  EXPECT_EQ(a.memory_max + a.pids_max + a.cpu_max_milli + a.tmp_size + a.nofile, 0);  // none by default
  EXPECT_EQ(a.job_user, "nobody");
  const WorkerGroup& b = config->groups[1];
  EXPECT_EQ(b.memory_max, 256 << 20);
  EXPECT_EQ(b.pids_max, 100);
  EXPECT_EQ(b.cpu_max_milli, 1500);
  EXPECT_EQ(b.tmp_size, 64 << 20);
  EXPECT_EQ(b.nofile, 1024);
  EXPECT_EQ(b.job_user, "quern-jobs");
  EXPECT_EQ(config->groups[2].memory_max, 1536LL << 20);
  EXPECT_EQ(config->groups[2].cpu_max_milli, 250);
  EXPECT_EQ(error_of("<quern><workers>\n<group memory-max='lots'/></workers></quern>"),
            "test.xml:2: <group memory-max=\"lots\">: expected a size like 256M, 1.5G or 512K (K, M, G, T: "
            "powers of 1024), at least 4194304 bytes");
  EXPECT_THAT(error_of("<quern><workers><group memory-max='1M'/></workers></quern>"),
              HasSubstr("at least 4194304 bytes"));
  EXPECT_THAT(error_of("<quern><workers><group memory-max='-5G'/></workers></quern>"),
              HasSubstr("expected a size"));
  EXPECT_THAT(error_of("<quern><workers><group memory-max='99999999T'/></workers></quern>"),
              HasSubstr("expected a size"));
  EXPECT_THAT(error_of("<quern><workers><group cpu-max='0'/></workers></quern>"),
              HasSubstr("expected a number of CPUs from 0.01 to 1024"));
  EXPECT_THAT(error_of("<quern><workers><group cpu-max='2 cores'/></workers></quern>"),
              HasSubstr("expected a number of CPUs"));
  EXPECT_THAT(error_of("<quern><workers><group pids-max='0'/></workers></quern>"), HasSubstr("pids-max"));
  EXPECT_THAT(error_of("<quern><workers><group nofile='3'/></workers></quern>"), HasSubstr("nofile"));
  EXPECT_THAT(error_of("<quern><workers><group job-user='root'/></workers></quern>"),
              HasSubstr("expected a user name or uid other than root"));
  EXPECT_THAT(error_of("<quern><workers><group job-user='a b'/></workers></quern>"),
              HasSubstr("expected a user name or uid other than root"));
}

TEST(configErrors, GroupPluginsAndPassEnv) {
  EXPECT_EQ(error_of("<quern><workers>\n<group plugins='bash,lib quern'/></workers></quern>"),
            "test.xml:2: <group plugins=\"bash,lib quern\">: bad plugin name \"lib quern\" (expected "
            "[A-Za-z0-9_.-]+, the NAME of libquern_NAME.so)");
  EXPECT_THAT(error_of("<quern><workers><group plugins=''/></workers></quern>"),
              HasSubstr("expected at least one plugin name"));
  EXPECT_THAT(error_of("<quern><workers><group plugins='bash,bash'/></workers></quern>"),
              HasSubstr("duplicate plugin name \"bash\""));
  EXPECT_EQ(error_of("<quern><workers>\n<group in-process='sql,../x'/></workers></quern>"),
            "test.xml:2: <group in-process=\"sql,../x\">: bad plugin name \"../x\" (expected "
            "[A-Za-z0-9_.-]+, the NAME of libquern_NAME.so, or none)");
  EXPECT_EQ(error_of("<quern><workers>\n\n<group pass-env='AWS_REGION,1X'/></workers></quern>"),
            "test.xml:3: <group pass-env=\"AWS_REGION,1X\">: bad variable name \"1X\" (expected "
            "[A-Za-z_][A-Za-z0-9_]*)");
  // The worker's own secrets and the per-job directories are never passed on.
  EXPECT_THAT(error_of("<quern><workers><group pass-env='PATH,QUERN_DATABASE_URL'/></workers></quern>"),
              HasSubstr("QUERN_DATABASE_URL cannot be passed on: QUERN_ variables are the worker's own"));
  EXPECT_THAT(error_of("<quern><workers><group pass-env='HOME'/></workers></quern>"),
              HasSubstr("HOME cannot be passed on: Quern sets it to each job's own working directory"));
  EXPECT_THAT(error_of("<quern><workers><group env='X'/></workers></quern>"),
              HasSubstr("unknown attribute \"env\" (allowed: name, slots, tags, plugins, pass-env, "
                        "dedicated, in-process, sandbox, network, memory-max, pids-max, cpu-max, tmp-size, "
                        "nofile, job-user)"));
}

TEST(configParse, GroupAttributesDefault) {
  StatusOr<Config> config = parse_config("<quern><workers><group slots='2'/></workers></quern>", "t.xml");
  ASSERT_TRUE(config.is_ok()) << config.message();
  ASSERT_EQ(config->groups.size(), 1u);
  EXPECT_EQ(config->groups[0].name, "default");
  EXPECT_EQ(config->groups[0].slots, 2);
  EXPECT_EQ(config->groups[0].tags, std::vector<std::string>{"bash"});
}

TEST(configDuration, Units) {
  EXPECT_EQ(*parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(*parse_duration("30s"), milliseconds(30000));
  EXPECT_EQ(*parse_duration("5m"), milliseconds(300000));
  EXPECT_EQ(*parse_duration("1h"), milliseconds(3600000));
  EXPECT_EQ(*parse_duration("2.5"), milliseconds(2500));
  EXPECT_EQ(*parse_duration("0"), milliseconds(0));
  EXPECT_EQ(*parse_duration(" 1.5m "), milliseconds(90000));
  for (const char* bad : {"", "abc", "-1s", "1w", "1 s", ".5", "5.", "1e3", "inf", "30S", "1h30m", "+1"}) {
    StatusOr<milliseconds> d = parse_duration(bad);
    EXPECT_FALSE(d.is_ok()) << '"' << bad << '"';
    EXPECT_THAT(d.message(), HasSubstr("expected a duration")) << bad;
  }
  EXPECT_THAT(parse_duration("99999999h").message(), HasSubstr("too long"));
}

// ---- errors: file:line and what was expected ------------------------------------------

TEST(configErrors, BadInteger) {
  EXPECT_EQ(error_of("<quern>\n<workers>\n  <group name=\"a\" slots=\"abc\"/>\n</workers>\n</quern>"),
            "test.xml:3: <group slots=\"abc\">: expected a positive integer (1..1024)");
  EXPECT_THAT(error_of("<quern><workers><group slots='0'/></workers></quern>"),
              HasSubstr("test.xml:1: <group slots=\"0\">: expected a positive integer (1..1024)"));
  EXPECT_THAT(error_of("<quern><workers><group slots='1025'/></workers></quern>"), HasSubstr("(1..1024)"));
  EXPECT_THAT(
      error_of("<quern><queue max-restarts='-1'/></quern>"),
      HasSubstr("test.xml:1: <queue max-restarts=\"-1\">: expected a non-negative integer (0..1000)"));
}

TEST(configErrors, AttributeOnItsOwnLine) {
  // Attributes have no offset in pugixml; the parser still finds the attribute's own line.
  EXPECT_THAT(
      error_of("<quern>\n<workers>\n  <group name=\"a\"\n         slots=\"x\"/>\n</workers>\n</quern>"),
      HasSubstr("test.xml:4: <group slots=\"x\">"));
}

TEST(configErrors, BadDuration) {
  EXPECT_EQ(error_of("<quern>\n\n<queue lease-timeout=\"30 seconds\"/>\n</quern>"),
            "test.xml:3: <queue lease-timeout=\"30 seconds\">: expected a duration like \"250ms\", \"30s\", "
            "\"5m\", \"1h\" or \"2.5\" (seconds)");
  EXPECT_THAT(error_of("<quern><queue default-timeout='1.5s'/></quern>"),
              HasSubstr("<queue default-timeout=\"1.5s\">: expected a whole number of seconds"));
  EXPECT_THAT(error_of("<quern><queue poll-interval='0'/></quern>"),
              HasSubstr("<queue poll-interval=\"0\">: must be greater than zero"));
  EXPECT_THAT(error_of("<quern><queue lease-timeout='0s'/></quern>"),
              HasSubstr("<queue lease-timeout=\"0s\">: must be greater than zero"));
}

TEST(configErrors, HeartbeatMustBeBelowLease) {
  EXPECT_THAT(error_of("<quern>\n<queue lease-timeout='30s' heartbeat-interval='30s'/></quern>"),
              HasSubstr("test.xml:2: <queue heartbeat-interval=\"30s\">: must be less than lease-timeout"));
  EXPECT_TRUE(
      parse_config("<quern><queue lease-timeout='30s' heartbeat-interval='29s'/></quern>", "t").is_ok());
}

TEST(configErrors, UnknownElement) {
  EXPECT_EQ(error_of("<quern>\n  <queu/>\n</quern>"),
            "test.xml:2: unknown element <queu> inside <quern> (allowed: <database>, <plugins>, <queue>, "
            "<workers>, <server>, <routing>, <limits>, <retention>)");
  EXPECT_THAT(error_of("<quern><workers>\n<grop/></workers></quern>"),
              HasSubstr("test.xml:2: unknown element <grop> inside <workers> (allowed: <group>)"));
  EXPECT_THAT(error_of("<quern><queue><x/></queue></quern>"), HasSubstr("it takes no child elements"));
}

TEST(configParse, ServerElement) {
  auto cfg = quern::config::parse_config(
      "<quern><server listen=\"0.0.0.0:9000\" handler-threads=\"8\" max-wait=\"30s\"/></quern>", "test.xml");
  ASSERT_TRUE(cfg) << cfg.message();
  EXPECT_EQ(cfg->server_address, "0.0.0.0");
  EXPECT_EQ(cfg->server_port, 9000);
  EXPECT_EQ(cfg->server_handler_threads, 8);
  EXPECT_EQ(cfg->server_max_wait, std::chrono::seconds(30));
  EXPECT_THAT(error_of("<quern>\n<server listen=\"nope\"/></quern>"),
              HasSubstr("test.xml:2: <server listen=\"nope\">: expected ADDRESS:PORT"));
  EXPECT_TRUE(cfg->server_metrics_listen.empty()) << "metrics are off unless asked for";
  auto with_metrics =
      quern::config::parse_config("<quern><server metrics-listen=\" 127.0.0.1:9421 \"/></quern>", "test.xml");
  ASSERT_TRUE(with_metrics) << with_metrics.message();
  EXPECT_EQ(with_metrics->server_metrics_listen, "127.0.0.1:9421");
  EXPECT_THAT(
      error_of("<quern>\n<server metrics-listen=\"9421\"/></quern>"),
      HasSubstr("test.xml:2: <server metrics-listen=\"9421\">: expected ADDRESS:PORT, e.g. 127.0.0.1:9421"));
  EXPECT_THAT(error_of("<quern><server metrics-listen=\"127.0.0.1:70000\"/></quern>"),
              HasSubstr("expected ADDRESS:PORT"));
}

TEST(configErrors, UnknownAttribute) {
  EXPECT_EQ(error_of("<quern>\n<queue lease-timout=\"30s\"/>\n</quern>"),
            "test.xml:2: <queue lease-timout=\"30s\">: unknown attribute \"lease-timout\" (allowed: "
            "lease-timeout, poll-interval, heartbeat-interval, max-restarts, default-timeout, max-timeout, "
            "kill-grace)");
  EXPECT_THAT(error_of("<quern><database uri='x'/></quern>"),
              HasSubstr("unknown attribute \"uri\" (allowed: url, data-dir)"));
  EXPECT_THAT(error_of("<quern version='1'/>"), HasSubstr("<quern version=\"1\">: unknown attribute"));
}

TEST(configErrors, DuplicateGroup) {
  EXPECT_EQ(error_of("<quern><workers>\n<group name='a'/>\n<group name='a' slots='2'/>\n</workers></quern>"),
            "test.xml:3: <group name=\"a\">: duplicate group name \"a\" (first at line 2)");
  // Two unnamed groups are both "default".
  EXPECT_THAT(error_of("<quern><workers><group/><group/></workers></quern>"),
              HasSubstr("duplicate group name \"default\""));
}

TEST(configErrors, Tags) {
  EXPECT_THAT(error_of("<quern><workers>\n<group tags=''/></workers></quern>"),
              HasSubstr("test.xml:2: <group tags=\"\">: expected at least one tag"));
  EXPECT_THAT(error_of("<quern><workers><group tags=' , '/></workers></quern>"), HasSubstr("empty tag"));
  EXPECT_THAT(error_of("<quern><workers><group tags='bash,,noop'/></workers></quern>"),
              HasSubstr("empty tag"));
  EXPECT_THAT(error_of("<quern><workers><group tags='bash,no op'/></workers></quern>"),
              HasSubstr("<group tags=\"bash,no op\">: bad tag \"no op\" (expected [A-Za-z0-9_.:-]+)"));
  EXPECT_THAT(error_of("<quern><workers><group tags='a,b,a'/></workers></quern>"),
              HasSubstr("duplicate tag \"a\""));
  EXPECT_THAT(error_of("<quern><workers><group name='a b'/></workers></quern>"),
              HasSubstr("<group name=\"a b\">: expected a name"));
}

TEST(configErrors, StructuralMistakes) {
  EXPECT_THAT(error_of("<quern><workers/></quern>"), HasSubstr("<workers>: expected at least one <group>"));
  EXPECT_THAT(error_of("<quern>\n<queue/>\n<queue/></quern>"),
              HasSubstr("test.xml:3: <queue>: duplicate element (first at line 2)"));
  EXPECT_THAT(error_of("<quern><queue>\n30s</queue></quern>"),
              HasSubstr("test.xml:2: <queue>: unexpected text \"30s\""));
  EXPECT_THAT(error_of("<quern><plugins><plugin/></plugins></quern>"),
              HasSubstr("<plugin>: missing required attribute \"path\""));
  EXPECT_THAT(error_of("<quern><plugins><plugin path='a'><setting name='x'/></plugin></plugins></quern>"),
              HasSubstr("<setting>: missing required attribute \"value\""));
  EXPECT_THAT(error_of("<quern><plugins><plugin path='a'>\n<setting name='x' value='1'/>\n"
                       "<setting name='x' value='2'/></plugin></plugins></quern>"),
              HasSubstr("test.xml:3: <setting name=\"x\">: duplicate setting"));
  EXPECT_THAT(error_of("<quern><plugins>\n<plugin path='a'/>\n<plugin path='./a'/></plugins></quern>"),
              HasSubstr("test.xml:3: <plugin path=\"./a\">: duplicate plugin (first at line 2)"));
  EXPECT_THAT(error_of("<quern><database data-dir=''/></quern>"), HasSubstr("expected a non-empty path"));
}

TEST(configErrors, XmlSyntaxErrorAtTheRightLine) {
  const std::string message = error_of("<quern>\n  <queue/>\n  <workers>\n    <group name='a'\n</quern>\n");
  EXPECT_THAT(message, HasSubstr("test.xml:"));
  EXPECT_THAT(message, HasSubstr("XML syntax error: "));
  // pugixml stops at the first character it cannot accept: the '<' of </quern> on line 5.
  EXPECT_THAT(message, HasSubstr("test.xml:5: ")) << message;

  EXPECT_THAT(error_of("<quern>\n\n<queue lease-timeout='1s' /></qurn>"),
              HasSubstr("test.xml:3: XML syntax error: Start-end tags mismatch"));
  EXPECT_THAT(error_of("<quern>\r\n\r\n<queue>\r\n</quern>"), HasSubstr("test.xml:4: XML syntax error"));
}

TEST(configErrors, WrongOrMissingRoot) {
  EXPECT_EQ(error_of("<!-- hi -->\n<config/>"), "test.xml:2: expected root element <quern>, found <config>");
  EXPECT_THAT(error_of(""), HasSubstr("test.xml:"));
  EXPECT_THAT(error_of("<quern/><quern/>"), HasSubstr("a second root element"));
}

// ---- files ------------------------------------------------------------------------

TEST_F(configFile, MissingFileNamesThePath) {
  const fs::path missing = dir_ / "config" / "nope.xml";
  StatusOr<Config> config = load_config(missing);
  ASSERT_FALSE(config.is_ok());
  EXPECT_THAT(config.message(), HasSubstr(missing.string()));
  EXPECT_THAT(config.message(), HasSubstr("No such file"));
  EXPECT_THAT(load_config(dir_).message(), HasSubstr("is a directory"));
}

TEST_F(configFile, ErrorsNameTheFile) {
  const fs::path file = write("config/quern.xml", "<quern>\n<workers><group slots='x'/></workers></quern>");
  EXPECT_EQ(load_config(file).message(),
            file.string() + ":2: <group slots=\"x\">: expected a positive integer (1..1024)");
}

TEST_F(configFile, RelativePathsResolveAgainstTheFilesDirectory) {
  const fs::path file = write("config/quern.xml", R"(<quern>
  <database data-dir="../.quern"/>
  <plugins dir="../build/plugins">
    <plugin path="extra/libquern_x.so"/>
    <plugin path="/abs/libquern_y.so"/>
  </plugins>
</quern>)");
  StatusOr<Config> config = load_config(file);
  ASSERT_TRUE(config.is_ok()) << config.message();
  const fs::path root = fs::absolute(dir_).lexically_normal();
  EXPECT_EQ(config->source, file);
  EXPECT_EQ(config->data_dir, root / ".quern");
  EXPECT_EQ(config->plugin_dir, root / "build" / "plugins");
  EXPECT_EQ(config->plugins[0].path, root / "config" / "extra" / "libquern_x.so");
  EXPECT_EQ(config->plugins[1].path, "/abs/libquern_y.so");
}

TEST_F(configFile, DefaultsResolveToo) {
  // An unset data-dir is ".quern" next to the file; an unset plugin dir stays empty (= next to the binary).
  const fs::path file = write("config/quern.xml", "<quern/>");
  StatusOr<Config> config = load_config(file);
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->data_dir, fs::absolute(dir_ / "config" / ".quern").lexically_normal());
  EXPECT_EQ(config->plugin_dir, "");
}

TEST(configResolvePaths, RelativeBaseIsMadeAbsolute) {
  Config config;
  config.plugin_dir = "p";
  resolve_paths(config, "some/dir");
  EXPECT_EQ(config.data_dir, (fs::current_path() / "some/dir/.quern").lexically_normal());
  EXPECT_EQ(config.plugin_dir, (fs::current_path() / "some/dir/p").lexically_normal());
}

TEST(configEnvironment, DatabaseUrlOverride) {
  EnvGuard guard;
  Config config;
  config.database_url = "postgresql://from-file/db";

  ::unsetenv("QUERN_DATABASE_URL");
  apply_environment(config);
  EXPECT_EQ(config.database_url, "postgresql://from-file/db");

  ::setenv("QUERN_DATABASE_URL", "", 1);  // empty = not set
  apply_environment(config);
  EXPECT_EQ(config.database_url, "postgresql://from-file/db");

  ::setenv("QUERN_DATABASE_URL", "postgresql://from-env/db", 1);
  apply_environment(config);
  EXPECT_EQ(config.database_url, "postgresql://from-env/db");
}

TEST(configShipped, Parses) {
  const fs::path file = fs::path(QUERN_CONFIG_TEST_SOURCE_DIR) / "config" / "quern.xml";
  StatusOr<Config> config = load_config(file);
  ASSERT_TRUE(config.is_ok()) << config.message();
  const fs::path root = fs::absolute(QUERN_CONFIG_TEST_SOURCE_DIR).lexically_normal();
  EXPECT_EQ(config->database_url, "");  // embedded
  EXPECT_EQ(config->data_dir, root / ".quern");
  EXPECT_EQ(config->plugin_dir, root / "build" / "plugins");
  EXPECT_EQ(config->lease_timeout, milliseconds(30000));
  EXPECT_EQ(config->poll_interval, milliseconds(1000));
  EXPECT_LT(config->effective_heartbeat_interval(), config->lease_timeout);
  // Every plugin the checkout builds that runs without a GPU is served.
  ASSERT_EQ(config->groups.size(), 2u);
  EXPECT_EQ(config->groups[0].name, "default");
  EXPECT_EQ(config->groups[0].slots, 4);
  EXPECT_EQ(config->groups[0].tags, (std::vector<std::string>{"bash", "python3", "noop"}));
  EXPECT_EQ(config->groups[1].name, "native");
  EXPECT_EQ(config->groups[1].tags, (std::vector<std::string>{"sql", "http"}));
}

// The commented example of a production setup stays valid.
TEST(configShipped, ProductionExampleParses) {
  const fs::path file = fs::path(QUERN_CONFIG_TEST_SOURCE_DIR) / "config" / "examples" / "production.xml";
  StatusOr<Config> config = load_config(file);
  ASSERT_TRUE(config.is_ok()) << config.message();
  std::vector<std::string> names;
  for (const auto& g : config->groups) names.push_back(g.name);
  EXPECT_EQ(names, (std::vector<std::string>{"default", "native", "gpu", "highmem"}));
  EXPECT_EQ(config->groups[3].plugins, (std::vector<std::string>{"bash", "python"}));
  EXPECT_GE(config->routing_rules.size(), 5u);
}

TEST(configParse, LimitsAndMaxTimeout) {
  auto config = parse_config(R"(<quern>
  <queue default-timeout="10m" max-timeout="1h"/>
  <limits>
    <limit key="api:stripe" max-running="3" rate="100/60s"/>
    <limit key="api:slow" rate="5/250ms"/>
  </limits>
</quern>)",
                             "test.xml");
  ASSERT_TRUE(config) << config.message();
  EXPECT_EQ(config->default_timeout_s, 600);
  EXPECT_EQ(config->max_timeout_s, 3600);
  ASSERT_EQ(config->limits.size(), 2u);
  EXPECT_EQ(config->limits[0], (queue::ConcurrencyLimit{"api:stripe", 3, 100, std::chrono::seconds(60)}));
  EXPECT_EQ(config->limits[1], (queue::ConcurrencyLimit{"api:slow", 0, 5, std::chrono::milliseconds(250)}));
}

TEST(configErrors, Limits) {
  EXPECT_EQ(
      error_of("<quern>\n<limits>\n<limit key='a' rate='100 per minute'/></limits></quern>"),
      "test.xml:3: <limit rate=\"100 per minute\">: expected COUNT/WINDOW, e.g. \"100/60s\" or \"5/1m\" "
      "(count 1..1000000)");
  EXPECT_THAT(error_of("<quern><limits><limit key='a'/></limits></quern>"),
              HasSubstr("<limit>: set max-running, rate, or both"));
  EXPECT_THAT(error_of("<quern><limits><limit max-running='1'/></limits></quern>"), HasSubstr("needs key="));
  EXPECT_THAT(error_of("<quern><limits><limit key='a' max-running='1'/><limit key='a' max-running='2'/>"
                       "</limits></quern>"),
              HasSubstr("a second <limit> for this key"));
  EXPECT_THAT(error_of("<quern><limits><limit key='a:$args[x]' max-running='1'/></limits></quern>"),
              HasSubstr("without $ substitutions"));
  EXPECT_THAT(error_of("<quern><queue default-timeout='2h' max-timeout='1h'/></quern>"),
              HasSubstr("default-timeout (7200 s) is more than max-timeout (3600 s)"));
}

}  // namespace
}  // namespace quern::config

// ---- <autoscale> --------------------------------------------------------------------

namespace quern::config {
namespace {

TEST(configParse, AutoscaleDefaultsAndEveryField) {
  auto plain = parse_config("<quern><workers><group name='g'/></workers></quern>", "test.xml");
  ASSERT_TRUE(plain.is_ok()) << plain.message();
  EXPECT_FALSE(plain->groups[0].autoscale);
  auto c = parse_config(
      "<quern><workers><group name='g'><autoscale integration='keda' max='8'/></group>"
      "<group name='h'><autoscale integration='dry-run' min='1' max='3' tick='500ms' cooldown='10s'"
      " scale-out-step='2' scale-in-step='3' scale-out-backlog='5' full-scale-backlog='100'"
      " scale-in-occupancy='25%' occupancy-short='10s' occupancy-long='2m' idle-before-zero='1m'"
      " lookahead='0'/></group></workers></quern>",
      "test.xml");
  ASSERT_TRUE(c.is_ok()) << c.message();
  const Autoscale& d = *c->groups[0].autoscale;
  EXPECT_EQ(d.integration, "keda");
  EXPECT_EQ(d.min, 0);
  EXPECT_EQ(d.max, 8);
  EXPECT_EQ(d.tick, milliseconds(2000));
  EXPECT_EQ(d.cooldown, milliseconds(30000));
  EXPECT_EQ(d.scale_in_occupancy_pct, 50);
  EXPECT_EQ(d.idle_before_zero, milliseconds(300000));
  const Autoscale& h = *c->groups[1].autoscale;
  EXPECT_EQ(h.min, 1);
  EXPECT_EQ(h.max, 3);
  EXPECT_EQ(h.tick, milliseconds(500));
  EXPECT_EQ(h.cooldown, milliseconds(10000));
  EXPECT_EQ(h.scale_out_step, 2);
  EXPECT_EQ(h.scale_in_step, 3);
  EXPECT_EQ(h.scale_out_backlog, 5);
  EXPECT_EQ(h.full_scale_backlog, 100);
  EXPECT_EQ(h.scale_in_occupancy_pct, 25);
  EXPECT_EQ(h.occupancy_short, milliseconds(10000));
  EXPECT_EQ(h.occupancy_long, milliseconds(120000));
  EXPECT_EQ(h.idle_before_zero, milliseconds(60000));
  EXPECT_EQ(h.lookahead, milliseconds(0));
}

TEST(configErrors, Autoscale) {
  EXPECT_EQ(error_of("<quern><workers><group>\n<autoscale integration='keda' min='5' max='2'/></group>"
                     "</workers></quern>"),
            "test.xml:2: <autoscale min=\"5\">: min (5) is greater than max (2)");
  EXPECT_EQ(
      error_of("<quern><workers><group>\n<autoscale integration='ecs' max='2'/></group></workers></quern>"),
      "test.xml:2: <autoscale integration=\"ecs\">: expected local, script, keda or dry-run");
  EXPECT_THAT(error_of("<quern><workers><group><autoscale max='2'/></group></workers></quern>"),
              HasSubstr("integration"));
  EXPECT_THAT(error_of("<quern><workers><group><autoscale integration='local'/></group></workers></quern>"),
              HasSubstr("max"));
  EXPECT_THAT(error_of("<quern><workers><group><autoscale integration='local' max='0'/></group></workers>"
                       "</quern>"),
              HasSubstr("<autoscale max=\"0\">: expected"));
  EXPECT_THAT(error_of("<quern><workers><group><autoscale integration='script' max='2'/></group></workers>"
                       "</quern>"),
              HasSubstr("integration=\"script\" needs script=\"PATH\""));
  EXPECT_THAT(error_of("<quern><workers><group><autoscale integration='local' max='2' script='x'/></group>"
                       "</workers></quern>"),
              HasSubstr("script is only for integration=\"script\""));
  EXPECT_THAT(
      error_of("<quern><workers><group><autoscale integration='local' max='2' scale-in-occupancy='150%'/>"
               "</group></workers></quern>"),
      HasSubstr("expected a percentage from 0% to 100%"));
  EXPECT_THAT(error_of("<quern><workers><group><autoscale integration='local' max='2' tick='1ms'/></group>"
                       "</workers></quern>"),
              HasSubstr("<autoscale tick=\"1ms\">: expected at least 100ms"));
  EXPECT_THAT(error_of("<quern><workers><group><autoscale integration='local' max='2'/>"
                       "<autoscale integration='local' max='3'/></group></workers></quern>"),
              HasSubstr("duplicate element"));
  EXPECT_THAT(error_of("<quern><workers><group><autoscale integration='local' max='2' speed='9'/></group>"
                       "</workers></quern>"),
              HasSubstr("unknown attribute \"speed\""));
}

TEST_F(configFile, AnAutoscaleScriptMustExistAndBeExecutable) {
  const std::string xml =
      "<quern><workers><group name='g'>\n  <autoscale integration='script' max='3' script='scale.sh'/>"
      "</group></workers></quern>";
  const fs::path file = write("config/quern.xml", xml);
  EXPECT_EQ(load_config(file).message(),
            file.string() + ":2: <autoscale script=\"" + (dir_ / "config" / "scale.sh").string() +
                "\">: no such file (the path is relative to the config file's folder)");
  const fs::path script = write("config/scale.sh", "#!/bin/sh\nexit 0\n");
  EXPECT_THAT(load_config(file).message(),
              HasSubstr(":2: <autoscale script=\"" + script.string() + "\">: not executable"));
  fs::permissions(script, fs::perms::owner_all);
  auto ok = load_config(file);
  ASSERT_TRUE(ok.is_ok()) << ok.message();
  EXPECT_EQ(ok->groups[0].autoscale->script, script);
}

}  // namespace
}  // namespace quern::config
