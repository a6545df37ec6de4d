"""``pi-lakeflow report``: the quality dashboard's panels, from the local tables, as one HTML file.

The panels are the Databricks AI/BI (Lakeview) dashboard's, read from the same file that the
bundle deploys (pi_lakeflow/dashboards/pi_quality.lvdash.json): each widget's dataset query runs
on the local catalog with Spark, the widget's fields are computed from it as the widget names
them, and plotly draws the result. The file carries plotly.js inline: it opens without a network.
Widgets over tables only Databricks writes (registry.PLATFORM_TABLES: the event log) are named in
the report's header as left out.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from pi_lakeflow.local.query import folder_session
from pi_lakeflow.local.config import LocalConfig
from pi_lakeflow.tables.registry import PLATFORM_TABLES

DASHBOARD = Path(__file__).parent.parent / "dashboards" / "pi_quality.lvdash.json"
_AGGREGATE = re.compile(r"^\s*(SUM|AVG|COUNT|MIN|MAX)\s*\(", re.IGNORECASE)
#: Columns of the Lakeview grid, and the size of its rows in the report.
GRID_COLUMNS = 6
ROW_PIXELS, GAP_PIXELS = 70, 12
#: Height of a panel's title and description above its chart.
TITLE_PIXELS = 64


@dataclass(frozen=True)
class Panel:
    """One widget of the dashboard and the rows it shows."""

    name: str
    title: str
    description: str
    kind: str  # counter, line, bar or table
    encodings: dict
    position: dict
    rows: pd.DataFrame


def load_dashboard(path: Path = DASHBOARD) -> dict:
    return json.loads(path.read_text())


def dataset_queries(dashboard: dict) -> dict[str, str]:
    """Each dataset's SQL, by dataset name."""
    return {d["name"]: "".join(d["queryLines"]) for d in dashboard["datasets"]}


def widget_sql(dataset_sql: str, query: dict) -> str:
    """The SQL of a widget's query over its dataset: its fields, grouped by the fields that are
    not aggregates unless the query is disaggregated (the way Lakeview computes them)."""
    fields = query["fields"]
    select = ", ".join(f"{f['expression']} AS `{f['name']}`" for f in fields)
    sql = f"SELECT {select} FROM ({dataset_sql}) AS dataset"
    if query.get("disaggregated", False):
        return sql
    keys = [f["expression"] for f in fields if not _AGGREGATE.match(f["expression"])]
    return sql + (f" GROUP BY {', '.join(keys)}" if keys else "")


def platform_only(dataset_sql: str) -> bool:
    """Whether a dataset reads a table that only Databricks writes (registry.PLATFORM_TABLES)."""
    return any(re.search(rf"\b{name}\b", dataset_sql) for name in PLATFORM_TABLES)


def local_widgets(dashboard: dict) -> tuple[list[dict], list[dict]]:
    """The layout items a local run can draw, and those it cannot (platform_only)."""
    queries = dataset_queries(dashboard)
    items = [item for page in dashboard["pages"] for item in page["layout"]]
    local = [i for i in items if not platform_only(queries[i["widget"]["queries"][0]["query"]["datasetName"]])]
    return local, [i for i in items if i not in local]


def panels(spark, dashboard: dict) -> list[Panel]:
    """Every widget a local run can draw, with its rows from the local tables."""
    queries = dataset_queries(dashboard)
    found = []
    for item in local_widgets(dashboard)[0]:
        widget = item["widget"]
        query = widget["queries"][0]["query"]
        rows = spark.sql(widget_sql(queries[query["datasetName"]], query)).toPandas()
        spec = widget["spec"]
        found.append(Panel(widget["name"], spec["frame"]["title"], spec["frame"].get("description", ""),
                           spec["widgetType"], spec["encodings"], item["position"], rows))
    return found


#: A bar chart without colours whose values span this factor or more is drawn on a log axis: a
#: back-fill and the incremental runs after it differ by orders of magnitude.
LOG_SPAN = 100


def ranked_categories(rows: pd.DataFrame, x: str, y: str) -> list:
    """The x categories by their total y, largest first (Lakeview's sort by y-reversed)."""
    totals = rows.groupby(x, sort=False)[y].sum()
    return sorted(totals.index, key=lambda category: (-totals[category], str(category)))


def log_axis(rows: pd.DataFrame, y: str) -> bool:
    """Whether the values span LOG_SPAN or more (only positive values can go on a log axis)."""
    values = rows[y][rows[y] > 0]
    return len(values) > 1 and values.max() >= LOG_SPAN * values.min()


def counter_text(value) -> str:
    """A counter's figure: whole numbers with thousands separators, others with two decimals."""
    if value is None or pd.isna(value):
        return "none yet"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def figure(panel: Panel):
    """The plotly figure of a line, bar or table panel (its title is the section's)."""
    import plotly.graph_objects as go

    if panel.kind == "table":
        columns = panel.encodings["columns"]
        cells = [["" if pd.isna(v) else str(v) for v in panel.rows[c["fieldName"]]] for c in columns]
        chart = go.Figure(go.Table(header={"values": [c["displayName"] for c in columns]}, cells={"values": cells}))
    else:
        x, y = panel.encodings["x"], panel.encodings["y"]
        color = panel.encodings.get("color")
        rows = panel.rows.sort_values(x["fieldName"])
        order = (ranked_categories(rows, x["fieldName"], y["fieldName"])
                 if x["scale"].get("sort", {}).get("by") == "y-reversed" else None)
        groups = rows.groupby(color["fieldName"], sort=True) if color else [(None, rows)]
        labelled = panel.encodings.get("label", {}).get("show", False)
        chart = go.Figure()
        for name, part in groups:
            trace = go.Scatter(mode="lines+markers") if panel.kind == "line" else go.Bar()
            if labelled:
                trace.update(text=[f"{v:,}" for v in part[y["fieldName"]]], textposition="outside")
            chart.add_trace(trace.update(x=part[x["fieldName"]].tolist(), y=part[y["fieldName"]].tolist(),
                                         name=str(name) if color else y["displayName"]))
        log = panel.kind == "bar" and not color and log_axis(rows, y["fieldName"])
        chart.update_layout(barmode="stack", xaxis_title=x["displayName"],
                            yaxis_title=y["displayName"] + (" (log scale)" if log else ""),
                            yaxis_type="log" if log else None, yaxis_dtick=1 if log else None,  # 1, 10, 100, ...
                            xaxis_type="category" if x["scale"]["type"] == "categorical" else None,
                            showlegend=bool(color), legend_title=color["displayName"] if color else None)
        if order is not None:
            chart.update_xaxes(categoryorder="array", categoryarray=order)
    rows = panel.position["height"]
    chart.update_layout(margin={"l": 50, "r": 20, "t": 20, "b": 50},
                        height=rows * ROW_PIXELS + (rows - 1) * GAP_PIXELS - TITLE_PIXELS)
    return chart


def panel_body(panel: Panel) -> str:
    """A section's content below its title and description."""
    if panel.rows.empty:
        return '<p class="empty">No rows yet (see above).</p>'
    if panel.kind == "counter":
        field = panel.encodings["value"]["fieldName"]
        value = panel.rows[field].iloc[0]
        raw = "" if value is None or pd.isna(value) else str(value)
        return f'<p class="counter" data-value="{html.escape(raw)}">{html.escape(counter_text(value))}</p>'
    return figure(panel).to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{panel.name}")


def render(found: list[Panel], source: str, left_out: list[str]) -> str:
    """The report as one HTML page: plotly.js inline, one section per panel on the dashboard's
    grid, each with its title and description; ``left_out``: the titles of the panels only a
    workspace can draw."""
    from plotly.offline import get_plotlyjs

    sections = []
    for panel in found:
        position = panel.position
        style = (f"grid-column: {position['x'] + 1} / span {position['width']}; "
                 f"grid-row: {position['y'] + 1} / span {position['height']}")
        sections.append(f'<section class="panel" data-panel="{html.escape(panel.name)}" '
                        f'data-rows="{len(panel.rows)}" style="{style}"><h2>{html.escape(panel.title)}</h2>'
                        f'<p class="description">{html.escape(panel.description)}</p>{panel_body(panel)}</section>')
    made = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    note = (f" Only on the deployed dashboard (the pipeline's event log): {html.escape('; '.join(left_out))}."
            if left_out else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PI data quality</title>
<script>{get_plotlyjs()}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; background: #f6f7f9; }}
main {{ display: grid; grid-template-columns: repeat({GRID_COLUMNS}, 1fr); grid-auto-rows: {ROW_PIXELS}px; gap: {GAP_PIXELS}px; }}
.panel {{ background: white; border: 1px solid #dde1e6; border-radius: 6px; overflow: hidden; padding: 0 0.75rem; }}
.panel h2 {{ font-size: 1rem; margin: 0.6rem 0 0.2rem; }}
.description {{ color: #555; font-size: 0.8rem; margin: 0 0 0.3rem; }}
.counter {{ font-size: 2rem; font-weight: 600; margin: 0.2rem 0; }}
.empty {{ color: #888; }}
</style></head>
<body><h1>PI data quality</h1><p>From {html.escape(source)}, {made}.{note}</p>
<main>{''.join(sections)}</main></body></html>
"""


def write_report(config: LocalConfig, out: Path) -> list[Panel]:
    """Runs the dashboard's queries on the local tables and writes the report to ``out``."""
    dashboard = load_dashboard()
    spark = folder_session(config)
    try:
        found = panels(spark, dashboard)
    finally:
        spark.stop()
    left_out = [item["widget"]["spec"]["frame"]["title"] for item in local_widgets(dashboard)[1]]
    out.write_text(render(found, str(config.path), left_out), encoding="utf-8")
    return found
