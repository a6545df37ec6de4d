"""``pi-lakeflow init``: a local config file to start from, every setting in it with what it means.

The keys come from pi_lakeflow.config.settings.KEYS, so the template names every key the
pipeline reads, with its doc and default; the ones a first run needs are set, the others are
commented out at their defaults.
"""

from __future__ import annotations

import textwrap

from pi_lakeflow.config.settings import KEYS

#: The keys a first run sets, with the value the template gives them.
FIRST_RUN = {
    "pi.url": None,  # from the command line
    "pi.auth": "basic",
    "pi.user": "svc-lakeflow",
    "pi.password": "env:PI_PASSWORD",
    "pi.tags.name_filter": '"*"',
    "pi.start": '"*-1d"',
}
#: Environment variables that secret keys are read from in the template.
SECRET_VARIABLES = {"pi.password": "PI_PASSWORD", "pi.token": "PI_TOKEN", "pi.oidc.secret": "PI_OIDC_SECRET"}

HEADER = """\
# A local pi-lakeflow config. Check it against the server first (no Spark):
#   pi-lakeflow check --config {path}
# then run: pi-lakeflow run --config {path}
# Secrets are references, never values: env:NAME, the environment variable NAME.
state_dir: ./pi-state        # local catalog (Derby metastore), tables (parquet), checkpoints, cursors
cores: 2                     # local Spark cores: how many tag partitions are read at once
# master: spark://HOST:7077  # a Spark cluster instead of local cores (README: on a Spark cluster)
configuration:               # the pipeline configuration: the same keys as in the asset bundle
"""


def config_template(path: str, url: str) -> str:
    """The text of a config file at ``path`` for the PI Web API at ``url``."""
    lines = [HEADER.format(path=path)]
    for key in KEYS:
        if key.name == "pi.state_path":  # local runs keep it under state_dir
            continue
        doc = textwrap.wrap(key.doc + (f" (default: {key.default})" if key.default else ""), 96)
        lines.extend(f"  # {line}\n" for line in doc)
        if key.name in FIRST_RUN:
            lines.append(f"  {key.name}: {FIRST_RUN[key.name] or url}\n")
        elif key.secret:
            lines.append(f"  # {key.name}: env:{SECRET_VARIABLES.get(key.name, 'NAME')}\n")
        else:
            lines.append(f"  # {key.name}: {_yaml_text(key.default or '')}\n")
    return "".join(lines)


def _yaml_text(value: str) -> str:
    """A value as YAML reads it back as the same text."""
    return f'"{value}"' if not value or value[0] in "*&!%@`'\"{[|>#" or ": " in value else value
