// Lexical handling of a SQL job's code, without a server round trip:
// splitting into statements, finding the `-- quern:` directives, and
// rewriting :name placeholders into $k.
//
// The lexer knows PostgreSQL's quoting: '...' ('' escapes), E'...'
// (backslash escapes), "..." identifiers, $tag$...$tag$ dollar quotes,
// -- line comments and nested /* */ comments. Semicolons, placeholders and
// directives inside any of those are text, never syntax.
//
// Thread-safety: pure functions over their arguments.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quern::sql {

struct Statement {
  std::string text;  // one statement, without its ';', placeholders rewritten to $k
  // Highest $k the statement references (0 = none), and which of 1..max_param
  // it references (index k-1), so that unreferenced parameters can be typed.
  std::size_t max_param = 0;
  std::vector<bool> referenced;
};

struct Script {
  std::vector<Statement> statements;    // empty statements (only blanks/comments) dropped
  std::optional<std::string> resource;  // from `-- quern:resource NAME`
  bool no_transaction = false;          // from `-- quern:no-transaction`
};

// Splits code into statements. param_names are the job's argument names in
// order: `:name` outside quotes and comments, not part of a `::` cast, and
// naming one of them becomes `$k` (k = its 1-based position); any other
// `:word` is left alone (array slices, psql-like text). Throws
// std::invalid_argument for an unterminated quote, comment or dollar quote,
// and for a malformed directive.
Script parse_script(std::string_view code, const std::vector<std::string>& param_names);

}  // namespace quern::sql
