// Routing rules: a table of submissions against one config's <routing>
// section (glob, language, role, group, argument match, $args substitution,
// force against an explicit tag, no match, priority), evaluation errors, and
// the config parser's file:line errors for rules.
#include "host/routing/routing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "host/auth/permissions.h"
#include "host/common/utf8.h"
#include "host/config/config.h"

namespace quern::routing {
namespace {

using Json = nlohmann::ordered_json;
using ::testing::HasSubstr;

// Line numbers matter: the tests check them.
constexpr const char* kRules = R"(<quern>
<routing>
  <rule language="python3" path="f/ml/*" tag="gpu" priority="80"/>
  <rule arg="region" equals="eu" tag="eu-$language"/>
  <rule arg="region" matches="us-*" tag="$args[region]-$language"/>
  <rule role="developer" tag="sandbox" force="true"/>
  <rule group="edge,lab" tag="edge"/>
  <rule path="f/reports/*" tag="reports:$path" priority="20"/>
  <rule arg="tenant" tag="tenant-$args[tenant]"/>
  <rule language="sql, http" priority="70"/>
  <rule arg="size" equals="3" tag="big" priority="90" force="true"/>
  <rule language="ruby" tag="ruby-$args[zone]"/>
  <rule language="perl" tag="perl-$path"/>
</routing>
</quern>
)";

std::vector<Rule> rules() {
  auto cfg = config::parse_config(kRules, "rules.xml");
  EXPECT_TRUE(cfg) << cfg.message();
  return cfg ? cfg->routing_rules : std::vector<Rule>{};
}

struct Case {
  const char* name;
  Submission in;
  int rule;  // 1-based; 0 = none
  std::string tag;
  std::string tag_source;
  int priority;  // 0 = the queue's default
};

Submission sub(std::string language, std::string path = "", Json args = Json::object()) {
  Submission s;
  s.language = std::move(language);
  s.path = std::move(path);
  s.args = std::move(args);
  return s;
}

Submission with(Submission s, const std::function<void(Submission&)>& change) {
  change(s);
  return s;
}

TEST(routingTable, FirstMatchingRuleDecides) {
  const std::vector<Case> cases = {
      {"glob and language", sub("python3", "f/ml/train"), 1, "gpu", "rule", 80},
      {"glob crosses slashes", sub("python3", "f/ml/a/b/c"), 1, "gpu", "rule", 80},
      {"glob, other language: no match", sub("bash", "f/ml/train"), 0, "bash", "language", 0},
      {"glob, other folder: no match", sub("python3", "f/mlx/train"), 0, "python3", "language", 0},
      {"explicit tag wins, rule priority still applies",
       with(sub("python3", "f/ml/train"), [](Submission& s) { s.explicit_tag = "cpu"; }), 1, "cpu",
       "explicit", 80},
      {"explicit priority wins",
       with(sub("python3", "f/ml/train"), [](Submission& s) { s.explicit_priority = 10; }), 1, "gpu", "rule",
       10},
      {"arg equals", sub("bash", "", {{"region", "eu"}}), 2, "eu-bash", "rule", 0},
      {"arg equals is exact", sub("bash", "", {{"region", "eu-west"}}), 0, "bash", "language", 0},
      {"arg glob and $args substitution", sub("python3", "", {{"region", "us-east-1"}}), 3,
       "us-east-1-python3", "rule", 0},
      {"arg glob, no match", sub("bash", "", {{"region", "ap-south"}}), 0, "bash", "language", 0},
      {"first match wins", sub("python3", "f/ml/x", {{"region", "eu"}}), 1, "gpu", "rule", 80},
      {"role with force beats an explicit tag",
       with(sub("bash"),
            [](Submission& s) {
              s.role = "developer";
              s.explicit_tag = "mine";
            }),
       4, "sandbox", "rule", 0},
      {"other role: no match", with(sub("bash"), [](Submission& s) { s.role = "operator"; }), 0, "bash",
       "language", 0},
      {"token group, any of a list", with(sub("bash"), [](Submission& s) { s.group = "lab"; }), 5, "edge",
       "rule", 0},
      {"no token group: group rule never matches", sub("bash"), 0, "bash", "language", 0},
      {"$path substitution and priority", sub("bash", "f/reports/daily"), 6, "reports:f/reports/daily",
       "rule", 20},
      {"number argument substituted as its JSON text", sub("bash", "", {{"tenant", 42}}), 7, "tenant-42",
       "rule", 0},
      {"boolean argument", sub("bash", "", {{"tenant", true}}), 7, "tenant-true", "rule", 0},
      {"priority-only rule keeps the language tag", sub("http"), 8, "http", "language", 70},
      {"language list", sub("sql"), 8, "sql", "language", 70},
      {"number compared as its JSON text; force beats explicit tag and priority",
       with(sub("bash", "", {{"size", 3}}),
            [](Submission& s) {
              s.explicit_tag = "small";
              s.explicit_priority = 5;
            }),
       9, "big", "rule", 90},
      {"a string \"3\" compares equal too", sub("bash", "", {{"size", "3"}}), 9, "big", "rule", 90},
      {"no match: explicit tag and priority kept",
       with(sub("bash"),
            [](Submission& s) {
              s.explicit_tag = "mine";
              s.explicit_priority = 33;
            }),
       0, "mine", "explicit", 33},
      {"a rule's missing $args is not evaluated when an explicit tag wins",
       with(sub("ruby"), [](Submission& s) { s.explicit_tag = "ruby-any"; }), 10, "ruby-any", "explicit", 0},
  };
  const std::vector<Rule> table = rules();
  ASSERT_EQ(table.size(), 11u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto d = route(table, c.in);
    ASSERT_TRUE(d) << d.message();
    EXPECT_EQ(d->rule_number, c.rule);
    EXPECT_EQ(d->rule_where, c.rule > 0 ? "rules.xml:" + std::to_string(c.rule + 2) : "");
    EXPECT_EQ(d->tag, c.tag);
    EXPECT_EQ(d->tag_source, c.tag_source);
    EXPECT_EQ(d->priority, c.priority);
  }
}

TEST(routingTable, NoRulesMeansTheLanguage) {
  auto d = route({}, sub("python3", "f/a/b", {{"region", "eu"}}));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->rule_number, 0);
  EXPECT_EQ(d->tag, "python3");
  EXPECT_EQ(d->priority_source, "default");
}

TEST(routingEvaluation, ErrorsNameTheRuleAndItsLine) {
  const std::vector<Rule> table = rules();
  auto missing = route(table, sub("ruby"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.message(),
            "routing rule 10 (rules.xml:12): tag \"ruby-$args[zone]\" needs argument \"zone\", which the job "
            "does not have");
  auto inline_path = route(table, sub("perl"));
  ASSERT_FALSE(inline_path);
  EXPECT_THAT(inline_path.message(),
              HasSubstr("routing rule 11 (rules.xml:13): tag \"perl-$path\" uses $path"));
  auto object = route(table, sub("bash", "", {{"tenant", {{"a", 1}}}}));
  ASSERT_FALSE(object);
  EXPECT_THAT(object.message(), HasSubstr("argument \"tenant\" is object; only a string, number or boolean"));
  auto bad_tag = route(table, sub("bash", "", {{"tenant", "a b"}}));
  ASSERT_FALSE(bad_tag);
  EXPECT_THAT(bad_tag.message(),
              HasSubstr("tag \"tenant-a b\" (from \"tenant-$args[tenant]\") is not a valid tag"));
  // The invalid tag is quoted up to 100 bytes, never half a character.
  auto cut = route(table, sub("bash", "", {{"tenant", std::string(92, 'a') + "\xC3\xA9"}}));
  ASSERT_FALSE(cut);
  EXPECT_TRUE(text::is_valid_utf8(cut.message())) << cut.message();
}

TEST(routingTemplate, ParseAndExpand) {
  auto t = TagTemplate::parse("q:$language/$args[a.b]-$path");
  ASSERT_TRUE(t) << t.message();
  Submission s = sub("bash", "f/x/y", {{"a.b", "v"}});
  EXPECT_EQ(*t->expand(s), "q:bash/v-f/x/y");
  EXPECT_EQ(*TagTemplate::parse("plain")->expand(s), "plain");
  EXPECT_EQ(*TagTemplate::parse("$languagex")->expand(s), "bashx");  // the longest name, then literal text

  EXPECT_THAT(TagTemplate::parse("").message(), HasSubstr("expected a tag"));
  EXPECT_THAT(TagTemplate::parse("$lang").message(), HasSubstr("unknown substitution at \"$lang\""));
  EXPECT_THAT(TagTemplate::parse("x-$args[a").message(), HasSubstr("unclosed $args["));
  EXPECT_THAT(TagTemplate::parse("$args[]").message(), HasSubstr("bad argument name in $args[]"));
  EXPECT_THAT(TagTemplate::parse("a b").message(), HasSubstr("character ' ' cannot be part of a tag"));
  EXPECT_FALSE(is_valid_tag(std::string(301, 'a')));
  EXPECT_TRUE(is_valid_tag(std::string(300, 'a')));
}

// The parser accepts exactly the roles tokens can have.
TEST(routingConfig, KnownRolesAreTheTokenRoles) {
  std::vector<std::string> auth_roles;
  for (auth::Role r : auth::all_roles()) auth_roles.emplace_back(auth::to_string(r));
  EXPECT_EQ(known_roles(), auth_roles);
}

std::string error_of(const std::string& rules_xml) {
  auto cfg = config::parse_config("<quern>\n<routing>\n" + rules_xml + "\n</routing>\n</quern>", "r.xml");
  EXPECT_FALSE(cfg) << "accepted: " << rules_xml;
  return cfg ? "" : cfg.message();
}

TEST(routingConfig, ParseErrorsNameFileAndLine) {
  EXPECT_EQ(
      error_of("<rule tag='a'/>\n<rule langauge='bash' tag='b'/>"),
      "r.xml:4: <rule langauge=\"bash\">: unknown attribute \"langauge\" (allowed: language, path, role, "
      "group, arg, equals, matches, tag, priority, force)");
  EXPECT_EQ(error_of("<rule equals='eu' tag='x'/>"),
            "r.xml:3: <rule equals=\"eu\">: needs arg=\"NAME\" (the argument to compare)");
  EXPECT_THAT(error_of("<rule matches='eu*' tag='x'/>"),
              HasSubstr("r.xml:3: <rule matches=\"eu*\">: needs arg"));
  EXPECT_THAT(error_of("<rule arg='r' equals='a' matches='b*' tag='x'/>"),
              HasSubstr("give either equals or matches, not both"));
  EXPECT_THAT(error_of("<rule arg='a b' tag='x'/>"),
              HasSubstr("<rule arg=\"a b\">: expected an argument name"));
  EXPECT_EQ(error_of("<rule tag='$foo'/>"),
            "r.xml:3: <rule tag=\"$foo\">: unknown substitution at \"$foo\" (allowed: $language, $path, "
            "$args[name])");
  EXPECT_THAT(error_of("<rule tag='x-$args[region'/>"),
              HasSubstr("r.xml:3: <rule tag=\"x-$args[region\">: unclosed"));
  EXPECT_THAT(error_of("<rule\n  tag='a b'/>"), HasSubstr("r.xml:4: <rule tag=\"a b\">: character ' '"));
  EXPECT_THAT(error_of("<rule tag='x' priority='101'/>"),
              HasSubstr("<rule priority=\"101\">: expected a positive integer (1..100)"));
  EXPECT_THAT(error_of("<rule tag='x' priority='0'/>"), HasSubstr("expected a positive integer (1..100)"));
  EXPECT_THAT(error_of("<rule tag='x' force='yes'/>"),
              HasSubstr("<rule force=\"yes\">: expected true or false"));
  EXPECT_EQ(
      error_of("<rule role='root' tag='x'/>"),
      "r.xml:3: <rule role=\"root\">: bad role \"root\" (expected one of admin, developer, operator, agent)");
  EXPECT_EQ(error_of("<rule language='bash'/>"),
            "r.xml:3: <rule>: a rule must set tag or priority (or both): it would change nothing");
  EXPECT_THAT(error_of("<rule path='' tag='x'/>"), HasSubstr("<rule path=\"\">: expected a glob"));
  EXPECT_THAT(error_of("<rule language='' tag='x'/>"), HasSubstr("expected at least one language"));
  EXPECT_EQ(error_of("<rules/>"), "r.xml:3: unknown element <rules> inside <routing> (allowed: <rule>)");
  EXPECT_THAT(error_of("<rule tag='x'>text</rule>"), HasSubstr("unexpected text \"text\""));
}

TEST(routingConfig, EmptyRoutingIsNoRules) {
  auto cfg = config::parse_config("<quern><routing/></quern>", "r.xml");
  ASSERT_TRUE(cfg) << cfg.message();
  EXPECT_TRUE(cfg->routing_rules.empty());
  auto twice = config::parse_config("<quern><routing/>\n<routing/></quern>", "r.xml");
  ASSERT_FALSE(twice);
  EXPECT_THAT(twice.message(), HasSubstr("r.xml:2: <routing>: duplicate element (first at line 1)"));
}

}  // namespace
}  // namespace quern::routing
