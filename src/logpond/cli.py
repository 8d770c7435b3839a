"""The ``logpond`` command: run the server and administer a data directory.

Every command takes ``--data-dir`` (default ``./.logpond``, or ``LOGPOND_DATA_DIR``). Commands that only
touch metadata (keys, projects) work while the server runs; commands that open the chDB store directly
(``demo`` and ``query`` without ``--host``) need the server stopped, because chDB allows one process per data dir.
"""

from __future__ import annotations

import json
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from logpond.config import Settings

app = typer.Typer(help="logpond: log analytics that speaks PostHog's APIs.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Personal API keys.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects (PostHog teams).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")
alerts_app = typer.Typer(help="Log alerts.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory [env: LOGPOND_DATA_DIR; default ./.logpond]")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _meta(settings: Settings) -> Any:
    from logpond.meta import MetaDB

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    meta = MetaDB(settings.effective_database_url)
    meta.migrate()
    return meta


def _ensure_installation(meta: Any, settings: Settings, *, err: bool = True) -> None:
    """Create the first organisation, project and admin if the data dir is new, and say so once.

    Whichever command runs first on a new data dir creates the installation, so every command prints the
    block (to stderr, keeping --json output clean); the admin password exists only in that output.
    """
    created = meta.bootstrap()
    if created is None:
        return
    lines = [
        f"logpond: created a new installation in {settings.data_dir}",
        f"  organisation   {created.organization.name} ({created.organization.slug})",
        f'  project        {created.project.id} "{created.project.name}", token {created.project.api_token}',
        f"  admin user     {created.user.email}, password {created.password}",
        "  (the password is shown only this once)",
        "  API key        logpond keys create --scopes '*' --json"
        + (f" --data-dir {settings.data_dir}" if str(settings.data_dir) != ".logpond" else ""),
    ]
    for line in lines:
        typer.echo(line, err=err)


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Bind address [env: LOGPOND_HOST; default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env: LOGPOND_PORT; default 8000]")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the HTTP server (ingestion, APIs) on the embedded store."""
    import uvicorn

    from logpond.app import build_services, create_app

    settings = _settings(data_dir, host=host, port=port)
    services = build_services(settings)
    _ensure_installation(services.meta, settings, err=False)
    application = create_app(settings, services=services)
    typer.echo(f"logpond: listening on http://{settings.host}:{settings.port} (data in {settings.data_dir})")
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        access_log=False,
    )


@keys_app.command("create")
def keys_create(
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes, e.g. '*' or 'logs:read,query:read'")] = "*",
    label: Annotated[str, typer.Option(help="A name for the key")] = "cli",
    project: Annotated[list[int] | None, typer.Option(help="Restrict the key to this project id (repeatable)")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a personal API key for the admin user; the key is printed once and stored hashed."""
    settings = _settings(data_dir)
    meta = _meta(settings)
    _ensure_installation(meta, settings)
    user = meta.get_admin_user()
    scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
    try:
        plain, key = meta.create_personal_api_key(user.id, label, scope_list, scoped_teams=project or None)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "key": plain,
                    "id": key.id,
                    "scopes": list(key.scopes),
                    "scoped_teams": list(key.scoped_teams) if key.scoped_teams else None,
                }
            )
        )
    else:
        typer.echo(f"{plain}\n(shown once; scopes: {', '.join(key.scopes)})")


@projects_app.command("list")
def projects_list(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """List projects with their ids and project tokens."""
    settings = _settings(data_dir)
    meta = _meta(settings)
    _ensure_installation(meta, settings)
    rows = [
        {"id": p.id, "name": p.name, "api_token": p.api_token, "organization": p.organization_id}
        for p in meta.list_projects()
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(f"{row['id']:>4}  {row['api_token']}  {row['name']}")


@projects_app.command("create")
def projects_create(name: str, data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """Create a project in the default organisation."""
    settings = _settings(data_dir)
    meta = _meta(settings)
    _ensure_installation(meta, settings)
    project = meta.create_project(name)
    row = {
        "id": project.id,
        "name": project.name,
        "api_token": project.api_token,
        "organization": project.organization_id,
    }
    typer.echo(json.dumps(row) if as_json else f"{row['id']}  {row['api_token']}  {row['name']}")


@app.command()
def demo(
    logs: Annotated[int, typer.Option("--logs", help="How many demo logs to generate")] = 100_000,
    days: Annotated[float, typer.Option(help="Spread them over this many days ending now")] = 1.0,
    project: Annotated[int, typer.Option(help="Project id to write into")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same logs)")] = 0,
    host: Annotated[
        str | None,
        typer.Option(
            help="Send through the OTLP endpoint of this server instead of writing to the store, e.g. http://127.0.0.1:8000"
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Project token for --host (default: the project's token from the data dir)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Generate realistic OpenTelemetry logs, through the OTLP endpoint or straight into the store."""
    from logpond.demo import generate_log_tables, generate_otlp_requests

    settings = _settings(data_dir)
    started = time.perf_counter()
    sent = 0
    if host:
        import httpx

        if token is None:
            meta = _meta(settings)
            found = meta.get_project(project)
            if found is None:
                typer.echo(f"error: project {project} not found", err=True)
                raise typer.Exit(2)
            token = found.api_token
        with httpx.Client(
            base_url=host,
            timeout=60,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
        ) as client:
            for body in generate_otlp_requests(logs, days=days, seed=seed):
                for _attempt in range(20):
                    response = client.post("/i/v1/logs", content=body)
                    if response.status_code in (429, 503):
                        time.sleep(float(response.headers.get("Retry-After", "1")))
                        continue
                    response.raise_for_status()
                    break
                sent += 1
    else:
        from logpond.store.chdb_store import ChDBStore

        meta = _meta(settings)
        meta.bootstrap()
        if meta.get_project(project) is None:
            typer.echo(f"error: project {project} not found", err=True)
            raise typer.Exit(2)
        store = ChDBStore(settings.store_dir, retention_days=settings.retention_days)
        store.migrate()
        for table in generate_log_tables(logs, team_id=project, days=days, seed=seed):
            store.insert_logs(table)
            sent += table.num_rows
    elapsed = time.perf_counter() - started
    typer.echo(f"logpond: wrote {logs:,} demo logs in {elapsed:.1f} s ({logs / max(elapsed, 1e-9):,.0f} logs/s)")


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def query(
    text: Annotated[
        str,
        typer.Argument(metavar="QUERY", help="A HogQL query, e.g. 'SELECT level, count() FROM logs GROUP BY level'"),
    ],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv (header + rows) or json (one JSON object per row)")
    ] = OutputFormat.table,
    project: Annotated[
        str | None,
        typer.Option(help="Project id [default: 1 locally, @current (the key's project) with --host]"),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Ask this PostHog-compatible server instead of the local store, e.g. https://us.posthog.com"),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Personal API key (phx_...) for --host [env: LOGPOND_API_KEY]"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Run a HogQL query on the local store, or on a server with --host, and print the rows."""
    if host:
        if data_dir is not None:
            _fail("--data-dir reads the local store; drop it when asking a server with --host", code=2)
        api_key = api_key or os.environ.get("LOGPOND_API_KEY")
        if not api_key:
            _fail("--host needs a personal API key: --api-key phx_... or LOGPOND_API_KEY", code=2)
        response = _query_remote(host, api_key, project or "@current", text)
    else:
        if api_key:
            _fail("--api-key is for --host; the local store needs no key", code=2)
        response = _query_local(_settings(data_dir, hogql_parse_processes=0), _local_project(project), text)
    rows, columns = response.get("results") or [], response.get("columns") or []
    if output is OutputFormat.csv:
        _print_csv(columns, rows)
    elif output is OutputFormat.json:
        _print_json_lines(columns, rows)
    else:
        _print_table(columns, rows)
    if response.get("hasMore"):
        typer.echo(f"logpond: more rows exist than the {len(rows)} shown; add a LIMIT or aggregate", err=True)


@alerts_app.command("list")
def alerts_list(
    project: Annotated[int | None, typer.Option(help="Only this project's alerts [default: every project]")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """List alerts with their state and schedule (reads the metadata only; works while the server runs)."""
    settings = _settings(data_dir)
    meta = _meta(settings)
    _ensure_installation(meta, settings)
    alerts = meta.alerts.list_all(project)
    destinations = meta.alerts.destinations([a.id for a in alerts])
    rows = [
        {
            "id": a.id,
            "project": a.team_id,
            "name": a.name,
            "enabled": a.enabled,
            "state": a.state,
            "rule": f"{a.threshold_operator} {a.threshold_count} in {a.window_minutes}m, "
            f"{a.datapoints_to_alarm} of {a.evaluation_periods}",
            "filters": dict(a.filters),
            "next_check_at": a.next_check_at.isoformat() if a.next_check_at else None,
            "last_checked_at": a.last_checked_at.isoformat() if a.last_checked_at else None,
            "consecutive_failures": a.consecutive_failures,
            "last_error_message": a.last_error_message,
            "last_delivery_error": a.last_delivery_error,
            "destinations": sorted({d.destination_type for d in destinations[a.id]}),
        }
        for a in alerts
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    columns = ["id", "project", "name", "enabled", "state", "rule", "next_check_at", "consecutive_failures"]
    _print_table(columns, [[row[c] for c in columns] for row in rows])


@alerts_app.command("simulate")
def alerts_simulate(
    alert: Annotated[
        str | None, typer.Argument(help="An alert's id: replay its rule (the options below override it)")
    ] = None,
    service: Annotated[list[str] | None, typer.Option(help="Service name to count (repeatable)")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="Severity level to count (repeatable)")] = None,
    threshold: Annotated[int | None, typer.Option(help="Threshold count [default 100]")] = None,
    operator: Annotated[str | None, typer.Option(help="above or below [default above]")] = None,
    window: Annotated[int | None, typer.Option(help="Window in minutes: 5, 10, 15, 30 or 60 [default 5]")] = None,
    periods: Annotated[int | None, typer.Option(help="Evaluation periods M [default 1]")] = None,
    datapoints: Annotated[int | None, typer.Option(help="Datapoints to alarm N (of M) [default 1]")] = None,
    cooldown: Annotated[int | None, typer.Option(help="Cooldown in minutes [default 0]")] = None,
    date_from: Annotated[str, typer.Option("--date-from", help="How far back, e.g. -7d (at most -30d)")] = "-7d",
    every_bucket: Annotated[bool, typer.Option("--all", help="Print every check, not only notifications")] = False,
    project: Annotated[str | None, typer.Option(help="Project id [default: 1 locally, @current with --host]")] = None,
    host: Annotated[str | None, typer.Option(help="Ask this server instead of the local store")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Personal API key for --host [env: LOGPOND_API_KEY]")
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay an alert rule over past logs: every 5-minute check with its count, state and notification."""
    body: dict[str, Any] = {"date_from": date_from}
    if host:
        api_key = api_key or os.environ.get("LOGPOND_API_KEY")
        if not api_key:
            _fail("--host needs a personal API key: --api-key phx_... or LOGPOND_API_KEY", code=2)
        if alert:
            body.update(_remote_alert_rule(host, api_key, project or "@current", alert))
        _apply_rule_options(body, service, severity, threshold, operator, window, periods, datapoints, cooldown)
        path = f"/api/projects/{project or '@current'}/logs/alerts/simulate/"
        response = _request_json("POST", host, api_key, path, body)
    else:
        response = _simulate_local(
            _settings(data_dir, alerts_scheduler=False),
            _local_project(project),
            alert,
            body,
            lambda doc: _apply_rule_options(
                doc, service, severity, threshold, operator, window, periods, datapoints, cooldown
            ),
        )
    if as_json:
        typer.echo(json.dumps(response))
        return
    buckets = response["buckets"]
    shown = buckets if every_bucket else [b for b in buckets if b["notification"] != "none"]
    columns = ["timestamp", "count", "threshold_breached", "state", "notification", "reason"]
    _print_table(columns, [[b[c] for c in columns] for b in shown])
    typer.echo(
        f"{response['total_buckets']} checks: {response['fire_count']} fired, {response['resolve_count']} resolved "
        f"(threshold {response['threshold_operator']} {response['threshold_count']})"
    )


_RULE_FIELDS = (
    "filters",
    "threshold_count",
    "threshold_operator",
    "window_minutes",
    "evaluation_periods",
    "datapoints_to_alarm",
    "cooldown_minutes",
)


def _apply_rule_options(
    body: dict[str, Any],
    services: list[str] | None,
    severities: list[str] | None,
    threshold: int | None,
    operator: str | None,
    window: int | None,
    periods: int | None,
    datapoints: int | None,
    cooldown: int | None,
) -> None:
    filters = dict(body.get("filters") or {})
    if services:
        filters["serviceNames"] = services
    if severities:
        filters["severityLevels"] = severities
    body["filters"] = filters
    for name, value in (
        ("threshold_count", threshold),
        ("threshold_operator", operator),
        ("window_minutes", window),
        ("evaluation_periods", periods),
        ("datapoints_to_alarm", datapoints),
        ("cooldown_minutes", cooldown),
    ):
        if value is not None:
            body[name] = value


def _simulate_local(
    settings: Settings, project_id: int, alert_id: str | None, body: dict[str, Any], apply: Any
) -> dict[str, Any]:
    from logpond.alerts.simulate import SimulateError, parse_request, simulate
    from logpond.api.logs import store_failure
    from logpond.logs.aggregates import LogCounter

    services, _project = _open_local(settings, project_id)
    if alert_id:
        found = services.meta.alerts.get(project_id, alert_id)
        if found is None:
            _fail(f"alert {alert_id} not found in project {project_id}", code=2)
        body.update({name: getattr(found, name) for name in _RULE_FIELDS})
        body["filters"] = dict(found.filters)
    apply(body)
    now = services.clock()
    try:
        request = parse_request(body, now=now)
        counter = LogCounter(lambda select: services.run_query(select, team_id=project_id))
        return simulate(counter, request, now=now)
    except SimulateError as exc:
        _fail(f"{exc.attr}: {exc.detail}", code=2)
    except Exception as exc:  # the API's mapping: our sentence, not the store's text
        _fail(store_failure(exc).detail)


def _remote_alert_rule(host: str, api_key: str, project: str, alert_id: str) -> dict[str, Any]:
    from urllib.parse import quote

    doc = _request_json("GET", host, api_key, f"/api/projects/{project}/logs/alerts/{quote(alert_id)}/", None)
    return {name: doc[name] for name in _RULE_FIELDS if name in doc}


def _request_json(method: str, host: str, api_key: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    import httpx

    url = f"{host.rstrip('/')}{path}"
    try:
        response = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=180)
    except httpx.HTTPError as exc:
        _fail(f"could not reach {host}: {exc}")
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code >= 400 or not isinstance(doc, dict):
        detail = doc.get("detail") if isinstance(doc, dict) else None
        attr = doc.get("attr") if isinstance(doc, dict) else None
        _fail(f"{attr}: {detail}" if attr and detail else str(detail) if detail else f"HTTP {response.status_code}")
    return doc


def _fail(message: str, *, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _local_project(project: str | None) -> int:
    if project is None:
        return 1
    if not project.isdigit():
        _fail(f"--project must be a project id locally, not {project!r} (@current needs --host)", code=2)
    return int(project)


def _open_local(settings: Settings, project_id: int) -> tuple[Any, Any]:
    """(services on the local data dir, project ``project_id``), or exit saying why not."""
    from logpond.app import build_services

    try:
        services = build_services(settings)
    except RuntimeError as exc:  # chDB allows one process per data dir
        _fail(
            f"cannot open the store in {settings.store_dir} ({str(exc).splitlines()[0]}). If `logpond serve` runs "
            "on this data dir, stop it, or ask the server: --host http://127.0.0.1:8000 --api-key phx_..."
        )
    _ensure_installation(services.meta, settings)
    project = services.meta.get_project(project_id)
    if project is None:
        _fail(f"project {project_id} not found in {settings.data_dir}", code=2)
    return services, project


def _query_local(settings: Settings, project_id: int, text: str) -> dict[str, Any]:
    """Run ``text`` through the same runner as the API, without a personal key's limits (60 s, OFFSET allowed)."""
    from logpond.api.query import query_failure
    from logpond.hogql.runner import HogQLRequest

    services, found = _open_local(settings, project_id)
    limits = services.hogql_limits(personal_key=False)
    assert services.hogql_runner is not None
    try:
        response: dict[str, Any] = services.hogql_runner.run(
            project_id,
            HogQLRequest(query=text),
            limits,
            execute=services.store.execute,
            now=services.clock(),
            timezone=found.timezone or "UTC",
        )
    except Exception as exc:  # the API's mapping, so the CLI says exactly what the server would
        _fail(query_failure(exc, limits).detail)
    return response


def _query_remote(host: str, api_key: str, project: str, text: str) -> dict[str, Any]:
    """POST the query to ``<host>/api/projects/<project>/query/`` as PostHog's clients do."""
    from urllib.parse import quote

    body = {"query": {"kind": "HogQLQuery", "query": text}}
    doc = _request_json("POST", host, api_key, f"/api/projects/{quote(project, safe='@')}/query/", body)
    if doc.get("error"):
        _fail(str(doc["error"]))
    return doc


def _cell(value: Any) -> str:
    """A value as text: strings as they are, NULL as empty, arrays and maps as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _unique(columns: list[str]) -> list[str]:
    """Column names usable as JSON keys: a repeated name gets ``_2``, ``_3``, ... so no value is lost."""
    seen: dict[str, int] = {}
    names = []
    for column in columns:
        seen[column] = seen.get(column, 0) + 1
        names.append(column if seen[column] == 1 else f"{column}_{seen[column]}")
    return names


def _print_csv(columns: list[str], rows: list[list[Any]]) -> None:
    import csv
    import sys

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)


def _print_json_lines(columns: list[str], rows: list[list[Any]]) -> None:
    names = _unique(columns)
    for row in rows:
        typer.echo(json.dumps(dict(zip(names, row, strict=False)), ensure_ascii=False))


def _print_table(columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    table = Table(caption=f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
    for column in columns:
        table.add_column(Text(column))
    for row in rows:
        # Text, not str: a value such as "[red]" is data, not rich markup
        table.add_row(*(Text(_cell(v), style="dim" if v is None else "") for v in row))
    console = Console(highlight=False)
    if not console.is_terminal:
        # piped: the table as wide as its content, rather than wrapped at 80 columns
        probe = Console(width=100_000)
        console = Console(highlight=False, width=max(40, Measurement.get(probe, probe.options, table).maximum))
    console.print(table)


if __name__ == "__main__":
    app()
