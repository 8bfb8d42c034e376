"""dbt-ops' warm dbt worker: runs dbt commands in one long-lived Python process.

Starting dbt costs about 1.5 s of imports and 1 s of first-call set-up; inside a warm
process a `dbt compile --select m` costs about 0.3 s. The validator (Rust) keeps one of
these per project and sends it one dbt invocation at a time: dbt is not safe to run twice
at once in one process.

Protocol: JSON, one object per line.
  start-up  -> {"ready": true, "pid": 123, "dbt_version": "1.11.16", "python": "3.11.2"}
               or {"ready": false, "error": "..."} and exit status 1
  request   <- {"id": 7, "args": ["compile", "--select", "orders", ...], "cwd": "/ws"}
  reply     -> {"id": 7, "ok": false, "output": "...", "exception": "DbtProfileError: ...",
                "rss_bytes": 212000000, "duration_ms": 310}
End of input ends the process.

Every invocation gets a fresh dbtRunner (no manifest passed in): a runner built with a
parsed manifest is faster but does not see the file the validator has just written.
dbt's partial parsing (target/partial_parse.msgpack) keeps re-parsing cheap instead.
"""

import io
import json
import os
import signal
import sys
import threading
import time
import traceback

# `python -c` puts the working directory first on sys.path, and this process changes
# directory into dbt projects: a project file must never shadow a module.
sys.path[:] = [entry for entry in sys.path if entry not in ("", ".")]


def die_with_parent():
    """Ends this worker's process group (dbt's own children included) soon after the
    validator that started it is gone: a validator killed with SIGKILL cannot end it, and
    an orphan would go on writing into a workspace the next validator has removed. The
    closed stdin is seen only between requests; this sees it during one."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                try:
                    # The validator starts the worker as the leader of its own group;
                    # anything else would be someone else's group.
                    if os.getpgid(0) == os.getpid():
                        os.killpg(os.getpid(), signal.SIGKILL)
                finally:
                    os._exit(1)

    threading.Thread(target=watch, name="dbt-ops-parent-watch", daemon=True).start()


def main():
    die_with_parent()
    # The protocol owns the real stdout. Anything else writing to file descriptor 1
    # (print, a C library, a plugin) is sent to stderr, so it cannot corrupt a reply line.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    home = os.getcwd()

    try:
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import (
            capture_stdout_logs,
            stop_capture_stdout_logs,
        )
        from dbt.version import __version__ as dbt_version
    except BaseException as error:  # an import can fail in many ways; all mean "no worker"
        send(protocol, {"ready": False, "error": f"{type(error).__name__}: {error}"})
        return 1

    send(
        protocol,
        {
            "ready": True,
            "pid": os.getpid(),
            "dbt_version": str(dbt_version),
            "python": sys.version.split()[0],
        },
    )

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        started = time.monotonic()
        try:
            request = json.loads(line)
            request_id = request["id"]
            args = [str(arg) for arg in request["args"]]
            cwd = str(request["cwd"])
        except (ValueError, KeyError, TypeError) as error:
            send(protocol, {"id": None, "ok": False, "output": "",
                            "exception": f"bad request: {error}", "rss_bytes": rss_bytes(),
                            "duration_ms": 0})
            continue

        captured = io.StringIO()
        ok = False
        exception = None
        try:
            # A relative DuckDB path in a profile resolves against the working directory,
            # so each invocation runs in its own workspace, as a dbt subprocess would.
            os.chdir(cwd)
            release_adapter_state()
            capture_stdout_logs(captured)
            result = dbtRunner().invoke(args)
            ok = bool(result.success)
            exception = result.exception
        except BaseException as error:  # dbtRunner catches nearly all; this is the rest
            exception = error
            if isinstance(error, KeyboardInterrupt):
                raise
        finally:
            try:
                stop_capture_stdout_logs()
            except Exception:
                pass
            release_adapter_state()
            try:
                os.chdir(home)
            except OSError:
                os.chdir("/")

        output = captured.getvalue()
        exception_text = None
        if exception is not None:
            exception_text = f"{type(exception).__name__}: {exception}"
            if str(exception) not in output:
                output += "\nEncountered an error:\n" + exception_text + "\n"
                if not is_dbt_exception(exception):
                    output += "".join(
                        traceback.format_exception(type(exception), exception,
                                                   exception.__traceback__)[-6:]
                    )
        send(
            protocol,
            {
                "id": request_id,
                "ok": ok,
                "output": output,
                "exception": exception_text,
                "rss_bytes": rss_bytes(),
                "duration_ms": int((time.monotonic() - started) * 1000),
            },
        )
    return 0


def release_adapter_state():
    """Forgets dbt-duckdb's process-wide database handle.

    dbt-duckdb keeps one DuckDB connection per process, reused while the credentials look
    the same. A relative `path` looks the same in every workspace, so without this the
    second workspace would write into the first one's database file (seen with dbt-duckdb
    1.11). Closing it also releases the file lock, so the workspace can be removed and a
    dbt subprocess may open the file.
    """
    manager = sys.modules.get("dbt.adapters.duckdb.connections")
    if manager is None:
        return
    cls = getattr(manager, "DuckDBConnectionManager", None)
    if cls is None or getattr(cls, "_ENV", None) is None:
        return
    lock = getattr(cls, "_LOCK", None)
    try:
        if lock is not None:
            lock.acquire()
        try:
            cls._ENV.close()
        except Exception:
            pass
        cls._ENV = None
    finally:
        if lock is not None:
            lock.release()


def is_dbt_exception(error):
    return type(error).__module__.startswith(("dbt.", "dbt_common.", "dbt_adapters."))


def rss_bytes():
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import resource

            # Peak, not current, and in KiB on Linux: the best there is without /proc.
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        except Exception:
            return 0


def send(protocol, message):
    protocol.write(json.dumps(message) + "\n")
    protocol.flush()


if __name__ == "__main__":
    sys.exit(main())
