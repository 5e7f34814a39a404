/* Quern executor SDK: the job sandbox, as the SDK's spawn applies it.
 *
 * The host decides how a job's processes are confined and tells the plugin
 * through the job's environment (the "env" of the job document, which a
 * plugin passes to its child anyway): QUERN_SANDBOX holds a wrapper command
 * (bubblewrap and its arguments), its arguments separated by the unit
 * separator '\x1f', in which the token {workdir} stands for the child's
 * working directory. quern::sdk::spawn() / run_process() (process.hpp) and
 * quern_run_process() (process.h) take QUERN_SANDBOX out of the child's
 * environment and start the child as
 *     <wrapper with {workdir} replaced> <program resolved in PATH> <args...>
 * so a plugin that spawns through the SDK with the job's environment and
 * working directory is sandboxed with no code of its own. A plugin that
 * starts processes some other way must do the same itself (docs/PLUGINS.md).
 *
 * Header-only, C99/C++; the helper below allocates with malloc. */
#ifndef QUERN_SANDBOX_H
#define QUERN_SANDBOX_H

#include <stdlib.h>
#include <string.h>

#define QUERN_SANDBOX_ENV "QUERN_SANDBOX"
#define QUERN_SANDBOX_SEPARATOR '\x1f'
#define QUERN_SANDBOX_WORKDIR "{workdir}"

#ifdef __cplusplus
extern "C" {
#endif

/* The value of QUERN_SANDBOX in env (a NULL-terminated "NAME=value" array),
 * or NULL when there is none or it is empty. */
static inline const char* quern_sandbox_find(const char* const* env) {
  const size_t n = sizeof(QUERN_SANDBOX_ENV) - 1;
  if (env == NULL) return NULL;
  for (; *env != NULL; ++env)
    if (strncmp(*env, QUERN_SANDBOX_ENV "=", n + 1) == 0) return (*env)[n + 1] != '\0' ? *env + n + 1 : NULL;
  return NULL;
}

/* The wrapper's arguments (sandbox: QUERN_SANDBOX's value) with {workdir}
 * replaced by workdir, followed by program and argv[1..]: a NULL-terminated
 * array in one malloc'd block (free() it once). NULL when out of memory or
 * when the wrapper names {workdir} and workdir is NULL or empty. */
static inline char** quern_sandbox_argv(const char* sandbox, const char* workdir, const char* program,
                                        const char* const* argv) {
  const size_t token = sizeof(QUERN_SANDBOX_WORKDIR) - 1;
  const size_t wlen = workdir != NULL ? strlen(workdir) : 0;
  size_t count = 1, bytes = 0, i, extra = 0;
  const char* p;
  char** out;
  char* text;
  for (p = sandbox; *p != '\0'; ++p) count += *p == QUERN_SANDBOX_SEPARATOR;
  /* Room for every {workdir} replaced. */
  for (p = strstr(sandbox, QUERN_SANDBOX_WORKDIR); p != NULL; p = strstr(p + token, QUERN_SANDBOX_WORKDIR)) {
    if (wlen == 0) return NULL;
    bytes += wlen;
  }
  bytes += strlen(sandbox) + 1 + strlen(program) + 1;
  for (i = 1; argv[0] != NULL && argv[i] != NULL; ++i, ++extra) bytes += strlen(argv[i]) + 1;
  out = (char**)malloc((count + 1 + extra + 1) * sizeof(char*) + bytes);
  if (out == NULL) return NULL;
  text = (char*)(out + count + 1 + extra + 1);
  i = 0;
  out[i++] = text;
  for (p = sandbox; *p != '\0';) {
    if (strncmp(p, QUERN_SANDBOX_WORKDIR, token) == 0) {
      memcpy(text, workdir, wlen);
      text += wlen;
      p += token;
    } else if (*p == QUERN_SANDBOX_SEPARATOR) {
      *text++ = '\0';
      out[i++] = text;
      ++p;
    } else {
      *text++ = *p++;
    }
  }
  *text++ = '\0';
  out[i++] = strcpy(text, program);
  text += strlen(program) + 1;
  for (count = 1; count <= extra; ++count) {
    out[i++] = strcpy(text, argv[count]);
    text += strlen(argv[count]) + 1;
  }
  out[i] = NULL;
  return out;
}

#ifdef __cplusplus
}
#endif

#endif /* QUERN_SANDBOX_H */
