// The sql executor's script lexer: statement splitting, directives and
// :name rewriting, outside quotes, dollar quotes and comments only.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "sql_script.h"

namespace {

using quern::sql::parse_script;

std::vector<std::string> texts(const std::string& code, const std::vector<std::string>& names = {}) {
  std::vector<std::string> out;
  for (const auto& st : parse_script(code, names).statements) out.push_back(st.text);
  return out;
}

TEST(SqlScript, SplitsOnSemicolonsOutsideQuotesAndComments) {
  EXPECT_EQ(texts("select 1; select 2;"), (std::vector<std::string>{"select 1", "select 2"}));
  EXPECT_EQ(texts("select 'a;b'; select \"c;d\" from t"),
            (std::vector<std::string>{"select 'a;b'", "select \"c;d\" from t"}));
  EXPECT_EQ(texts("select 'it''s; fine'; select 2"),
            (std::vector<std::string>{"select 'it''s; fine'", "select 2"}));
  EXPECT_EQ(texts("select E'a\\';b'; select 2"), (std::vector<std::string>{"select E'a\\';b'", "select 2"}));
  EXPECT_EQ(texts("select 1 -- a; comment\n; select /* x; /* nested; */ y; */ 2"),
            (std::vector<std::string>{"select 1 -- a; comment", "select /* x; /* nested; */ y; */ 2"}));
  EXPECT_EQ(texts("do $$ begin perform 1; end $$; do $f$ select ';' $$ ; $f$"),
            (std::vector<std::string>{"do $$ begin perform 1; end $$", "do $f$ select ';' $$ ; $f$"}));
}

TEST(SqlScript, DropsEmptyStatements) {
  EXPECT_EQ(texts(";; -- only a comment\n; /* c */ ;select 1;  ;"), (std::vector<std::string>{"select 1"}));
  EXPECT_TRUE(texts("  -- nothing").empty());
}

TEST(SqlScript, StandardStringsTreatBackslashAsText) {
  // With standard_conforming_strings, 'a\' is a complete string.
  EXPECT_EQ(texts("select 'a\\'; select 2"), (std::vector<std::string>{"select 'a\\'", "select 2"}));
}

TEST(SqlScript, FindsPositionalParameters) {
  auto s = parse_script("select $2, $1 from t where x = $2; select abc$1 from t; select $$ $3 $$", {});
  ASSERT_EQ(s.statements.size(), 3u);
  EXPECT_EQ(s.statements[0].max_param, 2u);
  EXPECT_EQ(s.statements[0].referenced, (std::vector<bool>{true, true}));
  EXPECT_EQ(s.statements[1].max_param, 0u);  // abc$1 is an identifier
  EXPECT_EQ(s.statements[2].max_param, 0u);  // inside a dollar quote
  auto gap = parse_script("select $3", {});
  EXPECT_EQ(gap.statements[0].referenced, (std::vector<bool>{false, false, true}));
}

TEST(SqlScript, RewritesNamedPlaceholdersOnly) {
  const std::vector<std::string> names = {"id", "name"};
  auto s = parse_script("select :name, x::text, ':id', \":id\", a[1:2], :other -- :id\n, :id", names);
  ASSERT_EQ(s.statements.size(), 1u);
  EXPECT_EQ(s.statements[0].text, "select $2, x::text, ':id', \":id\", a[1:2], :other -- :id\n, $1");
  EXPECT_EQ(s.statements[0].referenced, (std::vector<bool>{true, true}));
  EXPECT_EQ(texts("select x:: name", names), (std::vector<std::string>{"select x:: name"}));
}

TEST(SqlScript, Directives) {
  auto s = parse_script("-- quern:resource  warehouse \n-- quern:no-transaction\nselect 1", {});
  EXPECT_EQ(s.resource, "warehouse");
  EXPECT_TRUE(s.no_transaction);
  auto plain = parse_script("-- just a comment: quern:resource x\nselect 'x -- quern:no-transaction'", {});
  EXPECT_FALSE(plain.resource.has_value());
  EXPECT_FALSE(plain.no_transaction);
  EXPECT_THROW(parse_script("-- quern:resurce x\nselect 1", {}), std::invalid_argument);
  EXPECT_THROW(parse_script("-- quern:resource\nselect 1", {}), std::invalid_argument);
  EXPECT_THROW(parse_script("-- quern:resource a\n-- quern:resource b\nselect 1", {}), std::invalid_argument);
}

TEST(SqlScript, UnterminatedThingsAreErrors) {
  EXPECT_THROW(parse_script("select 'abc", {}), std::invalid_argument);
  EXPECT_THROW(parse_script("select \"abc", {}), std::invalid_argument);
  EXPECT_THROW(parse_script("select /* abc", {}), std::invalid_argument);
  EXPECT_THROW(parse_script("do $x$ begin", {}), std::invalid_argument);
  EXPECT_THROW(parse_script("select E'abc\\'", {}), std::invalid_argument);
}

}  // namespace
