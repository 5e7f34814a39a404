// <retention completed-jobs logs/> in the XML config (host/config): the
// defaults when it is absent, "off", and the errors for values that must not
// start a server (zero, negative, garbage, unknown attributes), each naming
// the file, line and attribute. No database needed.
#include <gtest/gtest.h>

#include "host/config/config.h"

namespace quern::config {
namespace {

using namespace std::chrono_literals;
using Period = std::optional<std::chrono::milliseconds>;

constexpr std::chrono::hours kDay{24};

Config parsed(const std::string& xml) {
  StatusOr<Config> c = parse_config(xml, "test.xml");
  EXPECT_TRUE(c) << c.message();
  return c ? *c : Config{};
}

std::string error_of(const std::string& xml) {
  StatusOr<Config> c = parse_config(xml, "test.xml");
  EXPECT_FALSE(c) << "accepted:\n" << xml;
  return c.message();
}

TEST(RetentionConfig, DefaultsWhenAbsent) {
  const Config c = parsed("<quern/>");
  EXPECT_EQ(c.retention_completed_jobs, Period(30 * kDay));
  EXPECT_EQ(c.retention_logs, Period(14 * kDay));
  // An empty element keeps the defaults too.
  const Config e = parsed("<quern><retention/></quern>");
  EXPECT_EQ(e.retention_completed_jobs, Period(30 * kDay));
  EXPECT_EQ(e.retention_logs, Period(14 * kDay));
}

TEST(RetentionConfig, ValuesAndOff) {
  Config c = parsed(R"(<quern><retention completed-jobs="90d" logs="36h"/></quern>)");
  EXPECT_EQ(c.retention_completed_jobs, Period(90 * kDay));
  EXPECT_EQ(c.retention_logs, Period(36h));
  c = parsed(R"(<quern><retention completed-jobs="off"/></quern>)");
  EXPECT_EQ(c.retention_completed_jobs, std::nullopt);
  EXPECT_EQ(c.retention_logs, Period(14 * kDay));  // the other keeps its default
  c = parsed(R"(<quern><retention completed-jobs=" 7d " logs="off"/></quern>)");
  EXPECT_EQ(c.retention_completed_jobs, Period(7 * kDay));
  EXPECT_EQ(c.retention_logs, std::nullopt);
  // Logs kept longer than their jobs are fine: they go with their job.
  c = parsed(R"(<quern><retention completed-jobs="1d" logs="30d"/></quern>)");
  EXPECT_EQ(c.retention_logs, Period(30 * kDay));
}

TEST(RetentionConfig, DaysAreADurationUnitEverywhere) {
  EXPECT_EQ(*parse_duration("2d"), std::chrono::milliseconds(2 * 24 * 3600 * 1000LL));
  EXPECT_EQ(*parse_duration("1.5d"), std::chrono::milliseconds(36 * 3600 * 1000LL));
}

TEST(RetentionConfig, BadValuesNameFileLineAndAttribute) {
  const std::string garbage = R"(expected "off" or a duration like "30d", "12h" or "90m" (at most 10 years))";
  EXPECT_EQ(error_of("<quern>\n<retention logs=\"0\"/></quern>"),
            "test.xml:2: <retention logs=\"0\">: must be at least 1s (write \"off\" to keep them forever)");
  EXPECT_EQ(error_of("<quern>\n<retention completed-jobs=\"0d\"/></quern>"),
            "test.xml:2: <retention completed-jobs=\"0d\">: must be at least 1s (write \"off\" to keep them "
            "forever)");
  EXPECT_EQ(
      error_of("<quern>\n<retention completed-jobs=\"500ms\"/></quern>"),
      "test.xml:2: <retention completed-jobs=\"500ms\">: must be at least 1s (write \"off\" to keep them "
      "forever)");
  for (const char* bad : {"-1d", "30 days", "", "OFF", "none", "30w", "1e3", "99999d"}) {
    EXPECT_EQ(error_of(std::string("<quern>\n\n<retention completed-jobs=\"") + bad + "\"/></quern>"),
              std::string("test.xml:3: <retention completed-jobs=\"") + bad + "\">: " + garbage)
        << bad;
  }
}

TEST(RetentionConfig, UnknownAttributesChildrenAndDuplicatesAreErrors) {
  EXPECT_NE(error_of(R"(<quern><retention jobs="30d"/></quern>)").find("jobs"), std::string::npos);
  EXPECT_NE(error_of(R"(<quern><retention><logs/></retention></quern>)").find("test.xml:1:"),
            std::string::npos);
  EXPECT_NE(error_of("<quern><retention/>\n<retention/></quern>").find("test.xml:2:"), std::string::npos);
}

}  // namespace
}  // namespace quern::config
