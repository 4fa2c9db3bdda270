"""Peak memory of one call, measured in a fresh interpreter.

tracemalloc sees only Python's allocator; liblzma, libzstd and SQLite allocate with malloc,
so a bound on what a hostile input makes a C library allocate is checked on the process's
peak resident set (``ru_maxrss``), before and after the call, in a subprocess of its own so
that nothing else this test process did counts.
"""

import subprocess
import sys
import textwrap

_RUNNER = """
import resource
{setup}
def _measured():
{call}
_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    _measured()
    _outcome = "returned"
except Exception as _exc:
    _outcome = f"{{type(_exc).__name__}}: {{_exc}}"
_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(_after - _before)
print(_outcome)
"""


def peak_growth(setup: str, call: str) -> tuple[int, str]:
    """(bytes the peak RSS grew by while ``call`` ran, how it ended: "returned" or
    "ErrorType: message"). ``setup`` runs first and is not counted; ``call`` is the body
    of a function, so it may use what ``setup`` defined."""
    code = _RUNNER.format(setup=textwrap.dedent(setup), call=textwrap.indent(textwrap.dedent(call), "    "))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    growth, outcome = done.stdout.strip().split("\n", 1)
    return int(growth) * 1024, outcome  # Linux reports ru_maxrss in KiB
