/*
 * Limits the Quern host applies to what plugins hand it, and a helper to
 * check one of them before parsing. Plain C (C11 / C++17), header-only.
 *
 * A result (set_result) is JSON text; the host fails the job with a clear
 * error when the text is not valid JSON, nests arrays/objects deeper than
 * QUERN_MAX_JSON_DEPTH, or holds "\u0000" (PostgreSQL's jsonb cannot store
 * it). Log lines and error messages are bytes: the host replaces invalid
 * UTF-8 and NUL bytes with U+FFFD and notes it once in the job's log.
 * docs/LIMITS.md lists every limit.
 *
 * Parse JSON of unbounded depth from outside (a job's output, an HTTP
 * response) only after quern_json_too_deep() says it is within the limit:
 * most JSON libraries copy, compare and print recursively, and a few
 * hundred kilobytes of "[[[[..." otherwise overflow the stack.
 */
#ifndef QUERN_LIMITS_H
#define QUERN_LIMITS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest nesting of arrays and objects the host accepts in any JSON. */
#define QUERN_MAX_JSON_DEPTH 128

/* Nonzero when the JSON text nests arrays/objects deeper than max_depth.
 * A lexical scan (strings and their escapes are skipped; nothing else is
 * validated), linear in size, without recursion. */
static inline int quern_json_too_deep(const char* text, size_t size, int max_depth) {
  int depth = 0;
  int in_string = 0;
  size_t i;
  for (i = 0; i < size; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i; /* the escaped character, whatever it is */
      else if (c == '"')
        in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return 1;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* QUERN_LIMITS_H */
