#include "sql_script.h"

#include <cctype>
#include <stdexcept>

namespace quern::sql {
namespace {

bool is_ident_start(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalpha(u) || c == '_' || u >= 0x80;
}
bool is_ident_char(char c) { return is_ident_start(c) || std::isdigit(static_cast<unsigned char>(c)); }
// PostgreSQL identifiers may contain '$' after their first character.
bool is_ident_or_dollar(char c) { return is_ident_char(c) || c == '$'; }

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

class Splitter {
 public:
  Splitter(std::string_view in, const std::vector<std::string>& names) : in_(in), names_(names) {}

  Script run() {
    while (i_ < in_.size()) step();
    finish_statement();
    return std::move(out_);
  }

 private:
  char at(std::size_t k) const { return k < in_.size() ? in_[k] : '\0'; }

  void copy(std::size_t from, std::size_t to, bool content) {
    cur_.text.append(in_.substr(from, to - from));
    if (content) has_content_ = true;
  }

  void step() {
    const char c = in_[i_];
    const char next = at(i_ + 1);
    if (c == '-' && next == '-') return line_comment();
    if (c == '/' && next == '*') return block_comment();
    if (c == '\'') return quoted('\'', escape_string_prefix());
    if (c == '"') return quoted('"', false);
    if (c == '$') return dollar();
    if (c == ':') return colon();
    if (c == ';') {
      ++i_;
      return finish_statement();
    }
    copy(i_, i_ + 1, !std::isspace(static_cast<unsigned char>(c)));
    ++i_;
  }

  // E'...' / e'...' strings take backslash escapes; the E must be a token of
  // its own (not the end of an identifier such as `table'`... which is not
  // valid SQL anyway, but `some_e'x'` must not be read as an E string).
  bool escape_string_prefix() const {
    if (i_ == 0 || (in_[i_ - 1] != 'E' && in_[i_ - 1] != 'e')) return false;
    return i_ < 2 || !is_ident_or_dollar(in_[i_ - 2]);
  }

  void line_comment() {
    std::size_t end = in_.find('\n', i_);
    if (end == std::string_view::npos) end = in_.size();
    directive(in_.substr(i_ + 2, end - i_ - 2));
    copy(i_, end, false);
    i_ = end;
  }

  // `-- quern:resource NAME` and `-- quern:no-transaction`.
  void directive(std::string_view body) {
    const std::string text = trim(body);
    if (text.rfind("quern:", 0) != 0) return;
    const std::string rest = text.substr(6);
    if (rest == "no-transaction") {
      out_.no_transaction = true;
      return;
    }
    if (rest.rfind("resource", 0) == 0 &&
        (rest.size() == 8 || std::isspace(static_cast<unsigned char>(rest[8])))) {
      const std::string name = trim(std::string_view(rest).substr(8));
      if (name.empty() || name.find_first_of(" \t") != std::string::npos)
        throw std::invalid_argument("-- quern:resource needs exactly one resource name");
      if (out_.resource && *out_.resource != name)
        throw std::invalid_argument("-- quern:resource given twice ('" + *out_.resource + "' and '" + name +
                                    "')");
      out_.resource = name;
      return;
    }
    throw std::invalid_argument("unknown directive '-- " + text +
                                "' (known: quern:resource NAME, quern:no-transaction)");
  }

  void block_comment() {
    const std::size_t start = i_;
    int depth = 0;
    while (i_ < in_.size()) {
      if (in_[i_] == '/' && at(i_ + 1) == '*') {
        ++depth;
        i_ += 2;
      } else if (in_[i_] == '*' && at(i_ + 1) == '/') {
        --depth;
        i_ += 2;
        if (depth == 0) break;
      } else {
        ++i_;
      }
    }
    if (depth != 0) throw std::invalid_argument("unterminated /* comment");
    copy(start, i_, false);
  }

  // '...' or "..." (a doubled quote is a literal quote); backslash escapes
  // too when escapes is set.
  void quoted(char q, bool escapes) {
    const std::size_t start = i_++;
    while (true) {
      if (i_ >= in_.size())
        throw std::invalid_argument(q == '\'' ? "unterminated quoted string"
                                              : "unterminated quoted identifier");
      const char c = in_[i_];
      if (escapes && c == '\\') {
        i_ += 2;
      } else if (c == q) {
        if (at(i_ + 1) == q) {
          i_ += 2;
        } else {
          ++i_;
          break;
        }
      } else {
        ++i_;
      }
    }
    copy(start, i_, true);
  }

  // $n parameter, $tag$...$tag$ dollar quote, or a '$' inside an identifier.
  void dollar() {
    const std::size_t start = i_;
    if (std::isdigit(static_cast<unsigned char>(at(i_ + 1)))) {
      if (i_ > 0 && is_ident_or_dollar(in_[i_ - 1])) {  // e.g. foo$1: part of an identifier
        ++i_;
        return copy(start, i_, true);
      }
      std::size_t j = i_ + 1;
      std::size_t k = 0;
      while (j < in_.size() && std::isdigit(static_cast<unsigned char>(in_[j]))) {
        k = k * 10 + static_cast<std::size_t>(in_[j] - '0');
        if (k > 65535) throw std::invalid_argument("parameter number too large");
        ++j;
      }
      reference(k);
      i_ = j;
      return copy(start, j, true);
    }
    if (i_ > 0 && is_ident_or_dollar(in_[i_ - 1])) {
      ++i_;
      return copy(start, i_, true);
    }
    std::size_t j = i_ + 1;
    if (j < in_.size() && is_ident_start(in_[j]))
      while (j < in_.size() && is_ident_char(in_[j])) ++j;
    if (at(j) != '$') {  // a lone '$': let the server complain
      ++i_;
      return copy(start, i_, true);
    }
    const std::string_view tag = in_.substr(i_, j - i_ + 1);
    const std::size_t close = in_.find(tag, j + 1);
    if (close == std::string_view::npos)
      throw std::invalid_argument("unterminated dollar-quoted string " + std::string(tag));
    i_ = close + tag.size();
    copy(start, i_, true);
  }

  // `::` cast, `:name` placeholder, or a plain colon.
  void colon() {
    if (at(i_ + 1) == ':') {
      copy(i_, i_ + 2, true);
      i_ += 2;
      return;
    }
    if (!is_ident_start(at(i_ + 1)) || static_cast<unsigned char>(at(i_ + 1)) >= 0x80) {
      copy(i_, i_ + 1, true);
      ++i_;
      return;
    }
    std::size_t j = i_ + 1;
    while (j < in_.size() && is_ident_char(in_[j]) && static_cast<unsigned char>(in_[j]) < 0x80) ++j;
    const std::string_view name = in_.substr(i_ + 1, j - i_ - 1);
    for (std::size_t k = 0; k < names_.size(); ++k) {
      if (names_[k] == name) {
        reference(k + 1);
        cur_.text += "$" + std::to_string(k + 1);
        has_content_ = true;
        i_ = j;
        return;
      }
    }
    copy(i_, j, true);
    i_ = j;
  }

  void reference(std::size_t k) {
    if (k == 0) throw std::invalid_argument("there is no parameter $0");
    if (k > cur_.max_param) {
      cur_.max_param = k;
      cur_.referenced.resize(k, false);
    }
    cur_.referenced[k - 1] = true;
  }

  void finish_statement() {
    if (has_content_) {
      cur_.text = trim(cur_.text);
      out_.statements.push_back(std::move(cur_));
    }
    cur_ = Statement{};
    has_content_ = false;
  }

  std::string_view in_;
  const std::vector<std::string>& names_;
  std::size_t i_ = 0;
  Script out_;
  Statement cur_;
  bool has_content_ = false;
};

}  // namespace

Script parse_script(std::string_view code, const std::vector<std::string>& param_names) {
  return Splitter(code, param_names).run();
}

}  // namespace quern::sql
