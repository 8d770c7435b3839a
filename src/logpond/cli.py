"""The ``logpond`` command: run the server and administer a data directory.

Every command takes ``--data-dir`` (default ``./.logpond``, or ``LOGPOND_DATA_DIR``). Commands that only
touch metadata (keys, projects) work while the server runs; commands that open the chDB store directly
(``demo`` without ``--host``) need the server stopped, because chDB allows one process per data dir.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from logpond.config import Settings

app = typer.Typer(help="logpond: log analytics that speaks PostHog's APIs.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Personal API keys.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects (PostHog teams).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")

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


if __name__ == "__main__":
    app()
