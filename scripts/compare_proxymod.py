"""Run the same model scripts under the original proxymod and under ours; compare what they see.

Usage::

    python scripts/compare_proxymod.py ORIGINAL_CHECKOUT PYTHON

ORIGINAL_CHECKOUT is a checkout of IMMM-SFA/proxymod (its ``proxymod/`` package is imported from
there, never copied); PYTHON is an interpreter that can import ``configobj``, which the original
needs. The original opens files with mode ``'rU'``, which Python 3.11 removed: each run drops the
``U`` (nothing else) and makes ``time.sleep`` return at once (the original cannot sleep 0 s).

For every scenario: when the original succeeds, the exit status, stdout and every file written
(log time stamps masked) must be the same under ours; when it crashes, ours must fail too, or
succeed where this project chose to (``runtime = 0``), and the two reasons are printed side by side.
Exit status 1 when any scenario differs.
"""

# The scenario table keeps each model script on one line, as it is run.
# ruff: noqa: E501

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OURS = REPO / "pacifica" / "dispatcher_proxymod" / "runtime"
EXAMPLES = REPO / "examples" / "data"

# Python 3.11 removed open()'s 'U' mode, which the original uses; drop it, nothing else.
PRELUDE = """
import builtins, sys, time
_open = builtins.open
def _open_without_u(file, mode='r', *a, **k):
    return _open(file, mode.replace('U', ''), *a, **k)
builtins.open = _open_without_u
time.sleep = lambda s: None
sys.argv = ['model']
exec(compile(open('scenario.py').read(), 'scenario.py', 'exec'))
"""

INI = """[PROJECT]
runtime = {runtime}
failure = {failure}
[INPUTS]
in_dir = inputs
in_file_one = in_file_one.csv
in_file_two = in_file_two.csv
[OUTPUTS]
out_dir = outputs
"""

STAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}h\d{2}m\d{2}s")
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}")


def norm(text: str) -> str:
    return TIME.sub("<time>", STAMP.sub("<stamp>", text))


def run(python: str, root: Path, work: Path, script: str, files: dict[str, str]) -> dict[str, Any]:
    shutil.copytree(EXAMPLES / "inputs", work / "inputs")
    shutil.copytree(EXAMPLES / "models", work / "models")
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    (work / "scenario.py").write_text(script)
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{root}:{work / 'models'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }
    done = subprocess.run(
        [python, "-c", PRELUDE], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    tree: dict[str, str] = {}
    for path in sorted(work.rglob("*")):
        rel = str(path.relative_to(work))
        if path.is_file() and not rel.startswith(("inputs/", "models/", "scenario.py")):
            if rel in files:
                continue
            # files of one name but for the second they were made in are joined, in name order
            tree[norm(rel)] = tree.get(norm(rel), "") + norm(path.read_text(errors="replace"))
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return {
        "rc": done.returncode,
        "stdout": norm(done.stdout),
        "tree": tree,
        "error": last,
        "stderr": norm(done.stderr),
    }


S: dict[str, dict[str, Any]] = {}


def sc(name: str, script: str, files: dict[str, str] | None = None, stderr: bool = False) -> None:
    """Add the scenario ``name``."""
    S[name] = {"script": script, "files": files or {}, "stderr": stderr}


for p in ("loose_coupling", "tight_coupling", "tight_coupling_twoway"):
    sc(f"example {p}", f"import {p}\n{p}.{p}('config_1.ini', 'config_1.ini', 'config_1.ini')\n")

RANGE = """from proxymod.model import Prox
p = Prox('config_1.ini', 'm', start_yr=2010, end_yr=2030, step=5)
for _ in range(5):
    p.advance()
p.close()
print(p.param_1, p.param_2)
"""
sc(
    "csv: a row without a value outside the years",
    RANGE,
    {
        "inputs/in_file_one.csv": "year,value\n2005\n2010,0.5\n2015,0.75\n2020,1\n2025,1.25\n2030,1.5\n2090\n"
    },
)
sc(
    "csv: quirks",
    RANGE.replace("end_yr=2030", "end_yr=2020").replace("range(5)", "range(3)"),
    {
        "inputs/in_file_one.csv": "YEAR;VALUE\r\n2015,4.0,extra\r\n2010, 9.0 \r\n2020,1e3\r\n2020,2.5\r\n+2025,inf\r\n2030,-0.0\r\n2099,not-a-number\r\n1999,\r\n"
    },
)
sc("csv: blank line", RANGE, {"inputs/in_file_one.csv": "year,value\n2010,1\n\n2015,2\n"})
sc("csv: bad value in range", RANGE, {"inputs/in_file_one.csv": "year,value\n2010,x\n"})
sc(
    "csv: year with space",
    RANGE,
    {"inputs/in_file_one.csv": "year,value\n2010 ,1\n2015,2\n2020,3\n2025,4\n2030,5\n"},
)
sc("csv: no value in range", RANGE, {"inputs/in_file_one.csv": "year,value\n2010\n"})

ATTRS = """import proxymod, proxymod.model, proxymod.config_reader, proxymod.logger
from proxymod.model import Prox
p = Prox('config_1.ini', 'm', target_yr=2015)
def pub(o):
    return sorted(n for n in dir(o) if not n.startswith('_'))
print(pub(p)); print(pub(p.c)); print(pub(proxymod)); print(pub(proxymod.model)); print(pub(proxymod.logger))
print(proxymod.__all__, type(p.c).__name__, type(p.c).__module__)
print(p.c.runtime, p.c.failure, p.c.in_dir, p.c.in_file_one, p.c.out_dir, p.c.out_file_one, p.c.model_name)
print(list(p.yr_range), p.idx, p.set_yr, p.start_year, p.end_year, p.step, p.target_yr, p.out_file_1)
p.advance(); print(p.idx, p.set_yr, p.param_1); p.advance(); print(p.idx, p.set_yr)
p.close()
q = Prox('config_1.ini', 'r', start_yr='2010', end_yr=2020.0, step=5)
print(type(q.yr_range).__name__, list(q.yr_range), q.idx)
q.advance(); print(q.idx, q.set_yr); q.advance(); print(q.idx, q.set_yr); q.close()
print(Prox.read_csv('inputs/in_file_two.csv', range(2010, 2030, 10)))
Prox.build_output('direct.csv', {'2010': 1.5, 2011: 2, 'x': 'y'})
c = proxymod.config_reader.ReadConfig('config_1.ini', 'rc')
print(pub(c), c.in_file_two)
proxymod.logger.kill_log(c.log)
from proxymod.model import *
print(sorted(k for k in dir() if not k.startswith('_')))
"""
sc("public names and attributes", ATTRS)
sc(
    "star import from package",
    "from proxymod import *\nprint(sorted(k for k in dir() if not k.startswith('_')))\n",
)

INIQ = """[PROJECT]
runtime = 1.9   # seconds
failure = 0.0
root = .
[INPUTS]
base = inputs
in_dir = "%(base)s"
in_file_one = 'in_file_one.csv'#comment right after
in_file_two = in_file_two.csv
[ OUTPUTS ]
\tout_dir = out dir/"x"
"""
sc(
    "ini: quirks",
    "from proxymod.model import Prox\np = Prox('config_1.ini', 'm', target_yr=2020)\np.advance(); p.close(); print(p.c.runtime, p.c.failure, p.c.in_dir, p.c.out_dir)\n",
    {"config_1.ini": INIQ},
)
sc(
    "ini: BOM, interpolation from DEFAULT, literals",
    "from proxymod.model import Prox\np = Prox('config_1.ini', 'm', target_yr=2020)\np.advance(); p.close(); print(p.c.runtime, p.c.failure, p.c.in_dir)\n",
    {
        "config_1.ini": "\ufefftop = 1\n[PROJECT]\nruntime = 0x2\nfailure = False\n[[DEFAULT]]\nx = y\n[INPUTS]\nin_dir = inputs\nin_file_one = %(name)s_one.csv\nin_file_two = '''in_file_two.csv'''\n[[DEFAULT]]\nname = in_file\n[OUTPUTS]\nout_dir = outputs\n"
    },
)
sc(
    "ini: runtime = 0",
    "from proxymod.model import Prox\nProx('config_1.ini', 'm', target_yr=2020).close()\n",
    {"config_1.ini": _ZERO}
    if (
        _ZERO
        := "[PROJECT]\nruntime = 0\nfailure = 0\n[INPUTS]\nin_dir = inputs\nin_file_one = in_file_one.csv\nin_file_two = in_file_two.csv\n[OUTPUTS]\nout_dir = outputs\n"
    )
    else {},
)
sc(
    "ini: list value",
    "from proxymod.model import Prox\nProx('config_1.ini', 'm', target_yr=2020).close()\n",
    {
        "config_1.ini": _ZERO.replace("runtime = 0", "runtime = 1").replace(
            "in_dir = inputs", "in_dir = inputs, other"
        )
    },
)
sc(
    "ini: semicolon comment",
    "from proxymod.model import Prox\nProx('config_1.ini', 'm', target_yr=2020).close()\n",
    {"config_1.ini": "; c\n" + _ZERO.replace("runtime = 0", "runtime = 1")},
)
sc(
    "ini: failure = 1.0",
    "from proxymod.model import Prox\ntry:\n    Prox('config_1.ini', 'm', target_yr=2020)\nexcept RuntimeError as e:\n    print('raised', e)\n",
    {
        "config_1.ini": _ZERO.replace("runtime = 0", "runtime = 1").replace(
            "failure = 0", "failure = 1.0"
        )
    },
)
sc(
    "ini: missing PROJECT",
    "from proxymod.model import Prox\nProx('config_1.ini', 'm', target_yr=2020).close()\n",
    {
        "config_1.ini": "[INPUTS]\nin_dir = inputs\nin_file_one = a\nin_file_two = b\n[OUTPUTS]\nout_dir = outputs\n"
    },
)

NAMES = """from proxymod.model import Prox
for name in (7, None, '', 'a b'):
    p = Prox('config_1.ini', name, target_yr=2010)
    p.advance(); p.close()
    print(repr(p.c.model_name), p.out_file_1)
"""
sc("model names that are not plain", NAMES)
sc(
    "model name with a slash",
    "from proxymod.model import Prox\nProx('config_1.ini', 'a/b', target_yr=2010)\n",
)

INPUTS = """from proxymod.model import Prox
d = {'2010': 16, '2015': 81.0, 'x': 1}
p = Prox('config_1.ini', 'm', target_yr=2010, in_one=d, in_two='inputs/in_file_one.csv')
print(p.param_1 is d, p.c.in_file_one is d, p.c.in_file_two)
p.advance(); p.advance(); p.close(); print(d)
q = Prox('config_1.ini', 'n', start_yr=2010, end_yr=2020, step=5, target_yr=2015)
print(list(q.yr_range), q.out_file_1, q.param_1)
q.advance(); q.advance(); q.close()
"""
sc("inputs passed in; target with a range", INPUTS)
sc(
    "no INPUTS, both passed",
    "from proxymod.model import Prox\np = Prox('config_1.ini', 'm', target_yr=2010, in_one='x/in_file_one.csv', in_two={'2010': 4.0})\np.advance(); p.close()\nprint(hasattr(p.c, 'in_dir'))\n",
    {
        "config_1.ini": "[PROJECT]\nruntime = 1\nfailure = 0\n[OUTPUTS]\nout_dir = outputs\n",
        "x/in_file_one.csv": "year,value\n2010,9\n",
    },
)
sc(
    "a Path as input",
    "from pathlib import Path\nfrom proxymod.model import Prox\nProx('config_1.ini', 'm', target_yr=2010, in_one=Path('inputs/in_file_one.csv'))\n",
)
sc(
    "two unclosed of one name",
    "from proxymod.model import Prox\na = Prox('config_1.ini', 'm', target_yr=2010)\nb = Prox('config_1.ini', 'm', target_yr=2015)\nb.advance(); b.close(); a.advance(); a.close()\n",
)
sc(
    "root logging configured",
    "import logging, sys\nlogging.basicConfig(stream=sys.stderr, format='ROOT %(message)s')\nfrom proxymod.model import Prox\np = Prox('config_1.ini', 'm', target_yr=2010); p.close()\n",
    stderr=True,
)
sc(
    "advance past the data",
    "from proxymod.model import Prox\np = Prox('config_1.ini', 'm', start_yr=2095, end_yr=2110, step=5)\ntry:\n    p.advance(); p.advance(); p.advance()\nexcept KeyError:\n    print('KeyError', p.set_yr, p.param_1)\np.close()\n",
)
sc(
    "failure on purpose",
    "from proxymod.model import Prox\ntry:\n    Prox('config_1.ini', 'm', target_yr=2010)\nexcept RuntimeError as e:\n    print(type(e).__name__, e)\n",
    {
        "config_1.ini": _ZERO.replace("runtime = 0", "runtime = 1").replace(
            "failure = 0", "failure = 1"
        )
    },
)
sc(
    "no years",
    "from proxymod.model import Prox\ntry:\n    Prox('config_1.ini', 'm')\nexcept ValueError as e:\n    print('ValueError', e)\n",
)
sc(
    "negative value",
    "from proxymod.model import Prox\np = Prox('config_1.ini', 'm', target_yr=2010, in_one={'2010': -1.0}, in_two={'2010': 1.0})\np.advance()\n",
)
sc("no arguments: command line", "from proxymod.model import Prox\nProx()\n")


def scenarios() -> dict[str, dict[str, Any]]:
    """Each scenario: a model script, the files it needs beside the examples' data."""
    return S


def main(original: Path, python: str) -> int:
    cases = scenarios()
    same = differ = crash = 0
    for name, scenario in cases.items():
        files = {
            k: v.format(runtime=1, failure=0) if k.endswith(".ini") and "{" in v else v
            for k, v in scenario.get("files", {}).items()
        }
        files.setdefault("config_1.ini", INI.format(runtime=1, failure=0))
        results = {}
        for label, root in (("real", original), ("ours", OURS)):
            with tempfile.TemporaryDirectory() as tmp:
                results[label] = run(python, root, Path(tmp), scenario["script"], files)
        real, ours = results["real"], results["ours"]
        if real["rc"] != 0:
            crash += 1
            print(
                f"[real crashes] {name}: real: {real['error']}\n    ours: rc={ours['rc']} "
                f"{ours['error'] or 'succeeded'}"
            )
            continue
        keys = ("rc", "stdout", "tree") + (("stderr",) if scenario.get("stderr") else ())
        if all(real[k] == ours[k] for k in keys):
            same += 1
            print(f"[same] {name}: {len(real['tree'])} files, {len(real['stdout'])} chars stdout")
        else:
            differ += 1
            print(f"[DIFFERENT] {name}")
            for k in keys:
                if real[k] != ours[k]:
                    a, b = real[k], ours[k]
                    if isinstance(a, dict):
                        a, b = json.dumps(a, indent=1), json.dumps(b, indent=1)
                    a, b = str(a).splitlines(), str(b).splitlines()
                    print(f"  {k}:")
                    print("\n".join(difflib.unified_diff(a, b, "real", "ours", lineterm="", n=0)))
    print(f"{same} same, {differ} different, {crash} where the original crashes")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
