// The Python side of the python executor: a small program run with
// `python3 [-I] -c <kRunnerSource> MODE ...`, embedded here so the plugin is
// one file to install. See docs/PYTHON.md for the protocol.
//
//   run  MAIN_PY RESULT_PATH PYTHON_PATH_JSON
//       standard mode: reads the args object (JSON) from stdin, then points
//       stdin at /dev/null; imports MAIN_PY as module "main"; calls
//       main(**args); writes one outcome object to RESULT_PATH; exits 0.
//   warm MAIN_PY PYTHON_PATH_JSON
//       dedicated mode: imports MAIN_PY once and writes {"ready": true} (or
//       the import failure, then exits) on fd 3; then for each request line
//       {"args", "id", "attempt"} read from the original stdin, calls
//       main(**args) and writes one outcome line on fd 3. EOF on stdin: exit.
//
// An outcome is {"ok": true, "result": <value>} or {"ok": false, "error":
// <text>}; for an exception, error is the traceback without the runner's own
// frames. stdout and stderr are flushed before every outcome is written, so
// all output of a job precedes its outcome. The user's script never sees the
// request pipe or fd 3 (moved to non-inheritable fds; stdin is /dev/null).
#pragma once

namespace quern::python {

inline constexpr const char kRunnerSource[] = R"PY(
import json, os, sys  # traceback: imported only on failure (2 ms of start-up)

def _quern_runner():
    mode, main_path = sys.argv[1], sys.argv[2]
    result_path = sys.argv[3] if mode == "run" else None
    extra_path = json.loads(sys.argv[-1])
    sys.path[:0] = [p for p in extra_path if p not in sys.path]
    sys.argv = [main_path]
    sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
    sys.stderr.reconfigure(errors="backslashreplace")

    def flush():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    def describe(exc):
        # Drop the runner's frames: the traceback starts in the script.
        import traceback
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != main_path:
            tb = tb.tb_next
        return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")

    def failure(exc):
        text = describe(exc)
        flush()
        print(text, file=sys.stderr, flush=True)
        return {"ok": False, "error": text}

    def load():
        with open(main_path, "rb") as f:
            source = f.read()
        module = type(sys)("main")
        module.__file__ = main_path
        sys.modules["main"] = module
        exec(compile(source, main_path, "exec"), module.__dict__)
        return module

    def call(module, args):
        fn = getattr(module, "main", None)
        if not callable(fn):
            return {"ok": False, "error": "the script defines no main() function"}
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return {"ok": False, "error": "the job's args must be a JSON object"}
        try:
            value = fn(**args)
        except SystemExit as e:
            if e.code is None or e.code == 0:
                value = None
            else:
                return failure(e)
        except BaseException as e:
            return failure(e)
        try:
            text = json.dumps(value, allow_nan=False)
        except Exception as e:
            return {"ok": False, "error": "main() returned a value that is not JSON-serialisable (%s): %s"
                    % (type(value).__name__, e)}
        return {"ok": True, "result_text": text}

    def encode(outcome):
        if "result_text" in outcome:
            return '{"ok": true, "result": ' + outcome["result_text"] + '}\n'
        return json.dumps(outcome) + "\n"

    def to_devnull(fd):
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, fd)
        os.close(null)

    if mode == "run":
        args = json.loads(sys.stdin.buffer.read() or b"{}")
        to_devnull(0)
        try:
            module = load()
        except SystemExit as e:
            outcome = failure(e) if e.code not in (None, 0) else {"ok": False, "error": "the script exited while loading"}
        except BaseException as e:
            outcome = failure(e)
        else:
            outcome = call(module, args)
        flush()
        with open(result_path, "w") as f:
            f.write(encode(outcome))
        return

    # warm
    requests = os.fdopen(os.dup(0), "rb")   # os.dup: not inherited by the job's children
    to_devnull(0)
    reply_fd = os.dup(3)
    os.close(3)

    def reply(outcome):
        flush()
        data = encode(outcome).encode()
        while data:
            data = data[os.write(reply_fd, data):]

    try:
        module = load()
    except BaseException as e:
        out = failure(e)
        reply({"ready": False, "error": out["error"]})
        return
    reply({"ready": True})
    for line in requests:
        request = json.loads(line)
        os.environ["QUERN_JOB_ID"] = str(request.get("id", ""))
        os.environ["QUERN_ATTEMPT"] = str(request.get("attempt", ""))
        reply(call(module, request.get("args")))

_quern_runner()
)PY";

}  // namespace quern::python
