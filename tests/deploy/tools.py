"""What the deployment tests build once per machine and keep between runs: an environment per
Spark that Databricks pipelines run (the project's wheel installed into it afresh each time),
and the Databricks CLI built from its Go module.

Kept under ``$PI_LAKEFLOW_TEST_CACHE`` (default ``~/.cache/pi-lakeflow-tests``), keyed by what
they are made of, and made under a temporary name then renamed, so that two test processes
never see half of one. The first run on a machine downloads PySpark 4.0 and 4.1 (about 430 MB
each) and the CLI's Go modules; later runs reuse them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement  # pytest's own dependency

ROOT = Path(__file__).parents[2]
CACHE = Path(os.environ.get("PI_LAKEFLOW_TEST_CACHE", Path.home() / ".cache" / "pi-lakeflow-tests"))

#: The Spark of each runtime that Databricks pipelines run today: Databricks Runtime 17.3 LTS (the
#: CURRENT channel) runs Spark 4.0, 18.x (PREVIEW) Spark 4.1. Both call latestOffset() bare.
RUNTIME_SPARKS = {"4.0": "4.0.1", "4.1": "4.1.4"}
#: The Databricks CLI built for the bundle tests (dataset_catalog/dataset_schema need 0.281 or later).
CLI_VERSION = "0.298.0"
CLI_MODULE = "github.com/databricks/cli"


def build_wheel(folder: Path) -> Path:
    """The pi-lakeflow wheel, built as the bundle's artifact builds it."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(folder),
                    str(ROOT)], check=True, timeout=300)
    (wheel,) = folder.glob("pi_lakeflow-*.whl")
    return wheel


def requirements(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist, extras included (their markers name the extra)."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    return [Requirement(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("Requires-Dist:")]


def installed_by_default(wheel: Path) -> list[Requirement]:
    """The requirements a plain ``pip install`` of the wheel installs (no extra)."""
    return [r for r in requirements(wheel) if r.marker is None or r.marker.evaluate({"extra": ""})]


def lower_bounds(wheel: Path) -> dict[str, str]:
    """Name -> the ``>=`` bound of each requirement installed by default."""
    return {r.name.lower(): s.version for r in installed_by_default(wheel) for s in r.specifier if s.operator == ">="}


def _made_once(target: Path, make) -> Path:
    """``make(folder)`` into a temporary folder renamed to ``target``, unless ``target`` exists."""
    if target.exists():
        return target
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    make(partial)
    try:
        partial.rename(target)
    except OSError:  # another process made it first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def runtime_environment(wheel: Path, spark: str) -> Path:
    """The python of a virtual environment with pyspark ``spark`` and the wheel's numeric
    requirements at exactly their lower bounds, with ``wheel`` installed into it with its own
    requirements only (pip adds what is missing and changes nothing installed)."""
    floors = {name: version for name, version in lower_bounds(wheel).items() if name in ("pyarrow", "numpy", "pandas")}
    pins = [f"pyspark=={spark}", *(f"{name}=={version}" for name, version in sorted(floors.items()))]
    key = hashlib.sha256(" ".join(pins).encode()).hexdigest()[:12]

    def make(folder: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
        subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *pins],
                       check=True, timeout=1200)

    python = _made_once(CACHE / f"spark-{spark}-{key}", make) / "bin" / "python"
    pip = [str(python), "-m", "pip"]
    subprocess.run([*pip, "uninstall", "--quiet", "--yes", "pi-lakeflow"], check=True, timeout=120)
    subprocess.run([*pip, "install", "--quiet", str(wheel)], check=True, timeout=600)
    return python


def installed(python: Path) -> dict[str, str]:
    """Name -> version of what the environment of ``python`` holds."""
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], check=True, timeout=120,
                            capture_output=True, text=True).stdout
    return {line.split("==")[0].lower(): line.split("==")[1] for line in listed.splitlines() if "==" in line}


def databricks_cli() -> Path | None:
    """The Databricks CLI CLI_VERSION built from its Go module, or None without a Go toolchain.

    The Go module proxy serves the module's source but not its version list, so ``go install
    ...@version`` (which asks for the list) is refused: the source is downloaded with ``go mod
    download`` and built in a copy, with the version stamped as the release build stamps it."""
    go = shutil.which("go")
    if go is None:
        return None

    def make(folder: Path) -> None:
        found = subprocess.run([go, "mod", "download", "-json", f"{CLI_MODULE}@v{CLI_VERSION}"], check=True,
                               timeout=600, capture_output=True, text=True, cwd=folder.parent).stdout
        source = Path(json.loads(found)["Dir"])
        shutil.copytree(source, folder / "src")
        for path in (folder / "src").rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        stamp = f"-X {CLI_MODULE}/internal/build.buildVersion={CLI_VERSION}"
        subprocess.run([go, "build", "-ldflags", stamp, "-o", str(folder / "databricks"), "."], check=True,
                       timeout=1800, cwd=folder / "src")
        shutil.rmtree(folder / "src")

    return _made_once(CACHE / f"databricks-cli-{CLI_VERSION}", make) / "databricks"
