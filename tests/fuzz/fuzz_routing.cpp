// Fuzz target: routing rules (host/routing/routing.h).
//
// The input is cut into fields (FuzzedDataProvider): a tag template, a
// submission (language, path, role, group, explicit tag and priority, args as
// JSON text read with json_input) and one rule (languages, path glob, roles,
// groups, an argument matcher, tag template, priority, force).
//
// Properties: TagTemplate::parse and expand never crash; an expansion that
// succeeds is a valid tag (is_valid_tag), one that fails says why in valid
// UTF-8 (language and path are checked text where it runs); a template of plain tag characters
// parses and expands to itself; route() decides as routing.h says: the tag
// comes from the rule (then it is valid), the job, or the language, and
// route_into writes the same decision.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "host/common/json_input.h"
#include "host/common/utf8.h"
#include "host/routing/routing.h"

namespace {

using namespace quern;

std::vector<std::string> list_of(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

void check_expand(const routing::TagTemplate& t, const routing::Submission& s) {
  auto tag = t.expand(s);
  if (tag) {
    FUZZ_CHECK_MSG(routing::is_valid_tag(*tag), *tag);
  } else {
    FUZZ_CHECK(tag.code() == StatusCode::invalid_argument && !tag.message().empty());
    // A refused submission gets this message in its 400 answer: text, even
    // when it quotes part of what the job sent.
    if (text::is_valid_utf8(s.language) && text::is_valid_utf8(s.path))
      FUZZ_CHECK_MSG(text::is_valid_utf8(tag.message()), tag.message());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string template_text = in.ConsumeRandomLengthString(400);

  routing::Submission s;
  s.language = in.ConsumeRandomLengthString(40);
  s.path = in.ConsumeRandomLengthString(300);
  s.role = in.ConsumeRandomLengthString(20);
  s.group = in.ConsumeRandomLengthString(20);
  s.explicit_tag = in.ConsumeRandomLengthString(40);
  s.explicit_priority = in.ConsumeIntegralInRange<int>(0, 100);
  if (auto args = json_input::parse<nlohmann::ordered_json>(in.ConsumeRandomLengthString(1000), "args");
      args && args->is_object())
    s.args = std::move(args).value();

  auto parsed = routing::TagTemplate::parse(template_text);
  if (parsed) {
    FUZZ_CHECK(parsed->text() == template_text);
    check_expand(*parsed, s);
  } else {
    FUZZ_CHECK(parsed.code() == StatusCode::invalid_argument && !parsed.message().empty());
  }
  if (template_text.find('$') == std::string::npos && routing::is_valid_tag(template_text)) {
    FUZZ_CHECK_MSG(parsed.is_ok(), parsed.message());
    auto same = parsed->expand(s);
    FUZZ_CHECK_MSG(same.is_ok() && *same == template_text, same.message());
  }

  routing::Rule rule;
  rule.where = "fuzz.xml:1";
  rule.languages = list_of(in.ConsumeRandomLengthString(40));
  rule.path_glob = in.ConsumeRandomLengthString(40);
  rule.roles = list_of(in.ConsumeRandomLengthString(30));
  rule.groups = list_of(in.ConsumeRandomLengthString(30));
  if (in.ConsumeBool()) {
    routing::ArgMatch m;
    m.name = in.ConsumeRandomLengthString(20);
    m.op = static_cast<routing::ArgMatch::Op>(in.ConsumeIntegralInRange<int>(0, 2));
    m.value = in.ConsumeRandomLengthString(40);
    rule.arg = m;
  }
  if (in.ConsumeBool()) {
    if (auto t = routing::TagTemplate::parse(in.ConsumeRandomLengthString(100))) rule.tag = *t;
  } else if (parsed) {
    rule.tag = *parsed;
  }
  rule.priority = in.ConsumeIntegralInRange<int>(0, 100);
  rule.force = in.ConsumeBool();
  if (rule.tag) check_expand(*rule.tag, s);

  const std::vector<routing::Rule> rules{rule};
  const bool matched = routing::matches(rule, s);
  auto d = routing::route(rules, s);
  std::string tag = "unchanged";
  int priority = -1;
  const Status into = routing::route_into(rules, s, 42, tag, priority);
  FUZZ_CHECK(into.is_ok() == d.is_ok());
  if (!d) {
    FUZZ_CHECK(d.code() == StatusCode::invalid_argument);
    FUZZ_CHECK_MSG(d.message().rfind("routing rule 1 (fuzz.xml:1): ", 0) == 0, d.message());
    FUZZ_CHECK(matched && rule.tag);
    FUZZ_CHECK(tag == "unchanged" && priority == -1);
    return 0;
  }
  FUZZ_CHECK(d->rule_number == (matched ? 1 : 0));
  if (d->tag_source == "rule") {
    FUZZ_CHECK(matched && rule.tag && (s.explicit_tag.empty() || rule.force));
    FUZZ_CHECK_MSG(routing::is_valid_tag(d->tag), d->tag);
  } else if (d->tag_source == "explicit") {
    FUZZ_CHECK(d->tag == s.explicit_tag);
  } else {
    FUZZ_CHECK(d->tag_source == "language" && d->tag == s.language);
  }
  FUZZ_CHECK(d->priority >= 0 && d->priority <= 100);
  FUZZ_CHECK(tag == d->tag);
  FUZZ_CHECK(priority == (d->priority > 0 ? d->priority : 42));
  return 0;
}
